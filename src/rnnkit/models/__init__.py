"""Models: one file per model, config dataclass on top."""
from .lm import LanguageModel, LMConfig

__all__ = ["LanguageModel", "LMConfig"]
