"""Data: files -> vocabularies -> tensors -> batches."""
from .batching import Batch, StreamBatches, TensorBatches
from .synthetic import GeneratedBatches
from .tokenize import Tokenizer

__all__ = ["Batch", "GeneratedBatches", "StreamBatches", "TensorBatches", "Tokenizer"]
