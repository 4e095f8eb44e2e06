"""Models: one file per model, config dataclass on top."""
from .classifier import ClassifierConfig, SequenceClassifier
from .conv_text import ConvTextClassifier, ConvTextConfig
from .dmn import DMN, DMNConfig
from .ensemble import Ensemble
from .forecast import ForecastConfig, Forecaster
from .lm import LanguageModel, LMConfig
from .seq2seq import Seq2Seq, Seq2SeqConfig
from .sequence_tasks import SequenceModel, SequenceModelConfig

__all__ = ["ClassifierConfig", "ConvTextClassifier", "ConvTextConfig", "DMN", "DMNConfig", "Ensemble", "ForecastConfig",
           "Forecaster", "LanguageModel", "LMConfig", "SequenceClassifier", "SequenceModel", "SequenceModelConfig",
           "Seq2Seq", "Seq2SeqConfig"]
