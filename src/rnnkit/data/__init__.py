"""Data: files -> vocabularies -> tensors -> batches."""
from .batching import Batch, StreamBatches, TensorBatches

__all__ = ["Batch", "StreamBatches", "TensorBatches"]
