"""lmbench: compare count-based n-gram and neural language models on one tokenizer and one harness."""

from lmbench.errors import LmbenchError
from lmbench.evaluate.harness import Evaluation, TrainResult, evaluate, sentence_logprobs, train
from lmbench.models.base import LanguageModel, Model, Param
from lmbench.models.registry import (
    create_model,
    get_model_class,
    load_language_model,
    load_model,
    load_plugin_file,
    model_names,
)
from lmbench.text.corpus import Corpus
from lmbench.text.sources import CorpusSet, TextSplits, load_corpus, read_splits
from lmbench.text.tokenize import Tokenizer
from lmbench.text.vocab import Vocabulary

__version__ = "0.1.0"

__all__ = [
    "Corpus",
    "CorpusSet",
    "Evaluation",
    "LanguageModel",
    "LmbenchError",
    "Model",
    "Param",
    "TextSplits",
    "Tokenizer",
    "TrainResult",
    "Vocabulary",
    "create_model",
    "evaluate",
    "get_model_class",
    "load_corpus",
    "load_language_model",
    "load_model",
    "load_plugin_file",
    "model_names",
    "read_splits",
    "sentence_logprobs",
    "train",
]
