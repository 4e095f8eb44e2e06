"""Data: files -> vocabularies -> tensors -> batches."""
from .batching import Batch, StreamBatches, TensorBatches
from .normalise import Normaliser
from .series_csv import Series, load_series
from .synthetic import GeneratedBatches
from .tokenize import Tokenizer
from .windows import WindowBatches, WindowDataset

__all__ = ["Batch", "GeneratedBatches", "Normaliser", "Series", "StreamBatches", "TensorBatches", "Tokenizer", "WindowBatches",
           "WindowDataset", "load_series"]
