"""Training: the loop, truncated BPTT, losses, optimizers, run directories, diagnostics."""
from .checkpoint import CheckpointError
from .diagnostics import hidden_gradient_norms
from .evaluate import evaluate
from .losses import classification_loss, binary_classification_loss, masked_mae, masked_mse, sequence_loss
from .optim import make_optimizer, make_scheduler
from .trainer import NonFiniteLossError, TrainConfig, Trainer, TrainingInterrupted, seed_everything

__all__ = [
    "CheckpointError", "NonFiniteLossError", "TrainConfig", "Trainer", "TrainingInterrupted",
    "binary_classification_loss", "classification_loss", "evaluate", "hidden_gradient_norms",
    "make_optimizer", "make_scheduler", "masked_mae", "masked_mse", "seed_everything", "sequence_loss",
]
