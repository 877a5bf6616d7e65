"""Benchmark suites as TOML: corpora × models (grids expanded) × seeds, and the metrics to measure.

A suite file looks like

    name = "quick"
    description = "..."
    seeds = [0]
    metrics = ["perplexity", "learning_curve", "speed"]

    [[corpus]]
    spec = "synthetic:grammar?sentences=1500"     # or  pairs = "synthetic:ko-en"  for a translator corpus
    tokenizer = "whitespace"                      # optional: word | whitespace | char | morph | bpe:N | ...
    if_present = true                             # optional: skip (noted in the manifest) when the file is absent

    [[model]]
    name = "lstm"
    label = "lstm"                                # optional; default: name + the grid values that vary
    params = { hidden = [32, 64], epochs = 2 }    # a list is a grid: one configuration per value

    [metric_options.distance]                     # optional keyword options of a metric
    distances = [1, 2, 4, 8]

Built-in suites live in corpora/suites/*.toml at the top of the repository (installed as lmbench/corpora/suites,
see setup.py); `lmbench run PATH.toml` runs any other file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmbench.bench.metrics import check_metric_available, check_metric_options, get_metric
from lmbench.errors import LmbenchError
from lmbench.models.base import LanguageModel
from lmbench.models.registry import create_model, get_model_class
from lmbench.resources import check_model_memory
from lmbench.text.fetch import corpora_root
from lmbench.text.files import read_text
from lmbench.text.sources import check_corpus_spec, local_path, parse_options
from lmbench.text.tokenize import parse_tokenizer_spec

_TOP_KEYS = {"name", "description", "seeds", "metrics", "corpus", "model", "metric_options", "needs_corpus"}
_CORPUS_KEYS = {"spec", "pairs", "label", "tokenizer", "lowercase", "min_count", "max_size", "metrics", "models",
                "if_present"}
_MODEL_KEYS = {"name", "label", "params"}


@dataclass(frozen=True)
class CorpusConfig:
    """One corpus of a suite: a language-model corpus (`spec`) or a parallel one (`pairs`)."""

    spec: str
    kind: str  # "lm" or "parallel"
    label: str
    tokenizer: str | None = None
    lowercase: bool = False
    min_count: int = 1
    max_size: int | None = None
    metrics: tuple[str, ...] | None = None  # this corpus's metrics (default: the suite's)
    models: tuple[str, ...] | None = None  # names or labels of the models run on it (default: all that fit)
    if_present: bool = False  # a corpus on disk that may be absent (e.g. ../shared): skipped, not an error

    def present(self) -> bool:
        """Whether the corpus can be read: generated ones always, files and directories when they exist."""
        base = self.spec.partition("?")[0]
        if base.startswith(("synthetic:", "nltk:")):
            return True
        try:
            return all(local_path(part).exists() for part in base.split(","))
        except LmbenchError:  # a corpus name not fetched yet
            return False

    def key(self) -> dict[str, Any]:
        """Everything that determines the encoded corpus (part of each cell's identity)."""
        return {"spec": self.spec, "kind": self.kind, "tokenizer": self.tokenizer, "lowercase": self.lowercase,
                "min_count": self.min_count, "max_size": self.max_size}


@dataclass(frozen=True)
class ModelConfig:
    """One model configuration: a registered name and one point of its parameter grid."""

    name: str
    label: str
    params: tuple[tuple[str, Any], ...]  # sorted (key, value) pairs: hashable and order-independent
    kind: str  # "lm" or "translator"

    @property
    def param_dict(self) -> dict[str, Any]:
        """The parameters as a dict."""
        return dict(self.params)


@dataclass(frozen=True)
class Cell:
    """One unit of work saved on its own: a model configuration on a corpus with a seed, or a corpus metric."""

    corpus: CorpusConfig
    model: ModelConfig | None  # None: a corpus cell (metrics of the corpus alone, e.g. sparsity)
    seed: int
    metrics: tuple[str, ...]
    metric_options: tuple[tuple[str, str], ...] = ()  # (metric, canonical JSON of its options)

    @property
    def config(self) -> str:
        """The model configuration's label, or "(corpus)" for a corpus cell."""
        return self.model.label if self.model else "(corpus)"

    @property
    def id(self) -> str:
        """A stable file-name-safe identity: readable prefix + digest of everything that defines the cell."""
        key = {
            "corpus": self.corpus.key(),
            "model": None if self.model is None else {"name": self.model.name, "params": self.model.param_dict},
            "seed": self.seed,
            "metrics": list(self.metrics),
            "metric_options": [list(p) for p in self.metric_options],
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
        slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in f"{self.corpus.label}-{self.config}")
        return f"{slug[:60]}-s{self.seed}-{digest}"


@dataclass
class Suite:
    """A parsed, validated suite."""

    name: str
    description: str
    path: str
    seeds: list[int]
    metrics: list[str]
    corpora: list[CorpusConfig]
    models: list[ModelConfig]
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    needs_corpus: bool = False
    text: str = ""

    def cells(self) -> list[Cell]:
        """Every cell in run order: per corpus, its corpus cell (if any corpus metric), then models × seeds."""
        cells = []
        for corpus in self.corpora:
            if corpus.if_present and not corpus.present():
                continue  # listed by skipped_corpora()
            corpus_kind = "lm" if corpus.kind == "lm" else "translator"
            wanted = corpus.metrics if corpus.metrics is not None else self.metrics
            corpus_metrics = tuple(m for m in wanted
                                   if get_metric(m).scope == "corpus" and corpus_kind in get_metric(m).kinds)
            if corpus_metrics:
                cells.append(Cell(corpus, None, 0, corpus_metrics, self._options(corpus_metrics)))
            model_metrics = tuple(m for m in wanted
                                  if get_metric(m).scope == "model" and corpus_kind in get_metric(m).kinds)
            labels = {m.label for m in self.models}
            for model in self.models:
                if model.kind != corpus_kind:
                    continue  # language models run on text corpora, translators on parallel ones
                # An entry that is some configuration's label picks that one; otherwise a model name picks all.
                if corpus.models is not None and model.label not in corpus.models \
                        and (model.name not in corpus.models or model.name in labels):
                    continue
                for seed in self.seeds:
                    cells.append(Cell(corpus, model, seed, model_metrics, self._options(model_metrics)))
        return cells

    def skipped_corpora(self) -> list[str]:
        """The `if_present` corpora that are absent on this machine, as notes."""
        return [f"{c.label}: {c.spec} not found, skipped (if_present)" for c in self.corpora
                if c.if_present and not c.present()]

    def _options(self, metrics: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        return tuple((m, json.dumps(self.metric_options[m], sort_keys=True))
                     for m in metrics if m in self.metric_options)

    def with_corpus(self, spec: str) -> Suite:
        """The same suite on the user's corpus (`--corpus SPEC`): replaces the suite's text corpora."""
        kind = "lm"
        old = next((c for c in self.corpora if c.kind == kind), None)
        tokenizer = old.tokenizer if old else None
        new = CorpusConfig(spec, kind, _corpus_label(spec), tokenizer=tokenizer,
                           lowercase=old.lowercase if old else False, min_count=old.min_count if old else 1,
                           max_size=old.max_size if old else None, metrics=old.metrics if old else None,
                           models=old.models if old else None)
        corpora = [new] + [c for c in self.corpora if c.kind != kind]
        return dataclasses.replace(self, corpora=corpora, needs_corpus=False)

    def with_tokenizer(self, tokenizer: str | None, lowercase: bool) -> Suite:
        """The same suite with every text corpus read by `tokenizer` (when given) and lower-cased (when asked)."""
        if tokenizer is not None:
            parse_tokenizer_spec(tokenizer)  # a bad spec fails here, naming the choices
        corpora = [dataclasses.replace(c, tokenizer=tokenizer or c.tokenizer, lowercase=lowercase or c.lowercase)
                   if c.kind == "lm" else c for c in self.corpora]
        return dataclasses.replace(self, corpora=corpora)

    def to_json(self) -> dict[str, Any]:
        """A plain description (saved with every run)."""
        return {
            "name": self.name, "description": self.description, "path": self.path, "seeds": self.seeds,
            "metrics": self.metrics, "metric_options": self.metric_options,
            "corpora": [{**c.key(), "label": c.label} for c in self.corpora],
            "models": [{"name": m.name, "label": m.label, "params": m.param_dict, "kind": m.kind}
                       for m in self.models],
        }


def builtin_suites() -> dict[str, Path]:
    """Built-in suite names → their TOML files."""
    return {p.stem: p for p in sorted((corpora_root() / "suites").glob("*.toml"))}


def resolve_suite_path(name_or_path: str) -> Path:
    """A built-in suite name or a path to a TOML file; a clear error listing the built-ins otherwise."""
    builtins = builtin_suites()
    if name_or_path in builtins:
        return builtins[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise LmbenchError(f"suite file not found: {path}")
        return path
    raise LmbenchError(f"unknown suite {name_or_path!r}; built-in suites: {', '.join(builtins)} (or a path to a .toml)")


def load_suite(name_or_path: str, corpus: str | None = None, tokenizer: str | None = None,
               lowercase: bool = False) -> Suite:
    """Read, expand and validate a suite; `corpus` replaces its text corpora (required when it has none),
    `tokenizer` and `lowercase` apply to every text corpus."""
    path = resolve_suite_path(name_or_path)
    suite = parse_suite(read_text(path, "suite file"), str(path))
    if corpus is not None:
        suite = suite.with_corpus(corpus)
    elif suite.needs_corpus or not suite.corpora:
        raise LmbenchError(f"suite {suite.name!r} runs on your corpus: give it with --corpus SPEC "
                           "(a directory with train.txt/valid.txt/test.txt, a text file, synthetic:NAME, nltk:NAME)")
    if tokenizer is not None or lowercase:
        suite = suite.with_tokenizer(tokenizer, lowercase)
    return suite


def parse_suite(text: str, where: str = "<suite>") -> Suite:
    """Parse suite TOML text; every error names the file and what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LmbenchError(f"{where}: malformed TOML: {e}") from None
    _reject_unknown(data, _TOP_KEYS, where, "top level")
    name = _typed(data, "name", str, where, default=Path(where).stem)
    description = _typed(data, "description", str, where, default="")
    seeds = _typed(data, "seeds", list, where, default=[0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise LmbenchError(f"{where}: seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise LmbenchError(f"{where}: seeds {seeds!r} repeat a value")
    metrics = _parse_metrics(data, where)
    metric_options = _typed(data, "metric_options", dict, where, default={})
    for metric_name, opts in metric_options.items():
        if metric_name not in metrics:
            raise LmbenchError(f"{where}: metric_options.{metric_name} given, but the suite does not ask for "
                               f"metric {metric_name!r} (metrics = {metrics})")
        if not isinstance(opts, dict):
            raise LmbenchError(f"{where}: metric_options.{metric_name} must be a table of options")
    corpora = [_parse_corpus(c, where, i) for i, c in enumerate(_typed(data, "corpus", list, where, default=[]))]
    models = [m for i, entry in enumerate(_typed(data, "model", list, where, default=[]))
              for m in _expand_model(entry, where, i)]
    if not models:
        raise LmbenchError(f"{where}: the suite has no [[model]] entries")
    labels = [m.label for m in models]
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise LmbenchError(f"{where}: model labels repeat: {', '.join(dupes)} (give each [[model]] a distinct label)")
    for corpus in corpora:
        if corpus.models is not None:
            known = {m.name for m in models} | {m.label for m in models}
            missing = [m for m in corpus.models if m not in known]
            if missing:
                raise LmbenchError(f"{where}: corpus {corpus.label!r} lists model(s) {', '.join(missing)} that the "
                                   f"suite does not define; defined: {', '.join(sorted(known))}")
        if corpus.metrics is not None:
            for metric_name in corpus.metrics:
                if metric_name not in metrics:
                    raise LmbenchError(f"{where}: corpus {corpus.label!r} asks for metric {metric_name!r}; list it "
                                       f"in the suite's metrics too (metrics = {metrics})")
    _check_metric_kinds(metrics, models, where)
    _check_metric_options(metrics, metric_options, where)
    needs_corpus = bool(_typed(data, "needs_corpus", bool, where, default=False))
    return Suite(name, description, where, seeds, metrics, corpora, models, metric_options, needs_corpus, text)


def _typed(data: dict, key: str, kind: type, where: str, default: Any) -> Any:
    if key not in data:
        return default
    value = data[key]
    if not isinstance(value, kind):
        raise LmbenchError(f"{where}: {key} must be a {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def _reject_unknown(table: dict, allowed: set[str], where: str, what: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise LmbenchError(f"{where}: unknown key(s) {', '.join(unknown)} in {what}; "
                           f"allowed: {', '.join(sorted(allowed))}")


def _parse_metrics(data: dict, where: str) -> list[str]:
    metrics = _typed(data, "metrics", list, where, default=["perplexity"])
    if not metrics or not all(isinstance(m, str) for m in metrics):
        raise LmbenchError(f"{where}: metrics must be a non-empty list of metric names")
    for m in metrics:
        get_metric(m, where)  # unknown → lists the valid names
        check_metric_available(m, where)  # optional module missing → says which
    if len(set(metrics)) != len(metrics):
        raise LmbenchError(f"{where}: metrics {metrics} repeat a name")
    return metrics


def _corpus_label(spec: str) -> str:
    base = spec.partition("?")[0].rstrip("/")
    if base.startswith(("synthetic:", "nltk:")):
        return base.replace(":", "-")
    return Path(base).name or base


def _parse_corpus(entry: Any, where: str, i: int) -> CorpusConfig:
    what = f"[[corpus]] #{i + 1}"
    if not isinstance(entry, dict):
        raise LmbenchError(f"{where}: {what} must be a table")
    _reject_unknown(entry, _CORPUS_KEYS, where, what)
    if ("spec" in entry) == ("pairs" in entry):
        raise LmbenchError(f"{where}: {what} needs exactly one of spec = \"...\" (text) or pairs = \"...\" (parallel)")
    kind = "lm" if "spec" in entry else "parallel"
    spec = entry.get("spec", entry.get("pairs"))
    if not isinstance(spec, str) or not spec:
        raise LmbenchError(f"{where}: {what}: the corpus spec must be a non-empty string")
    tokenizer = entry.get("tokenizer")
    if tokenizer is not None:
        try:
            parse_tokenizer_spec(str(tokenizer))
        except LmbenchError as e:
            raise LmbenchError(f"{where}: {what}: {e}") from None
    min_count = entry.get("min_count", 1)
    max_size = entry.get("max_size")
    if not isinstance(min_count, int) or min_count < 1 or (max_size is not None and (not isinstance(max_size, int)
                                                                                     or max_size < 1)):
        raise LmbenchError(f"{where}: {what}: min_count and max_size must be positive integers")
    if not isinstance(entry.get("if_present", False), bool):
        raise LmbenchError(f"{where}: {what}: if_present must be true or false")
    lists = {}
    for key in ("metrics", "models"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise LmbenchError(f"{where}: {what}: {key} must be a list of names")
        lists[key] = tuple(value) if value is not None else None
    return CorpusConfig(spec, kind, str(entry.get("label", _corpus_label(spec))), tokenizer,
                        bool(entry.get("lowercase", False)), min_count, max_size, **lists,
                        if_present=entry.get("if_present", False))


def expand_grid(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the list-valued parameters (a scalar is a one-value list), in file order."""
    keys = list(params)
    values = [v if isinstance(v, list) else [v] for v in params.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _expand_model(entry: Any, where: str, i: int) -> list[ModelConfig]:
    what = f"[[model]] #{i + 1}"
    if not isinstance(entry, dict):
        raise LmbenchError(f"{where}: {what} must be a table")
    _reject_unknown(entry, _MODEL_KEYS, where, what)
    name = entry.get("name")
    if not isinstance(name, str):
        raise LmbenchError(f"{where}: {what} needs name = \"MODEL\" (see `lmbench models`)")
    try:
        cls = get_model_class(name)
    except LmbenchError as e:
        raise LmbenchError(f"{where}: {what}: {e}") from None
    params = entry.get("params", {})
    if not isinstance(params, dict):
        raise LmbenchError(f"{where}: {what} ({name}): params must be a table, e.g. params = {{ order = 3 }}")
    for key, value in params.items():
        if isinstance(value, list) and not value:
            raise LmbenchError(f"{where}: {what} ({name}): grid {key} = [] has no values")
    grid = expand_grid(params)
    varying = [k for k, v in params.items() if isinstance(v, list) and len(v) > 1]
    kind = "lm" if issubclass(cls, LanguageModel) else "translator"
    configs = []
    for point in grid:
        try:
            cls(**point)  # validates every value and combination now, before any work is done
        except LmbenchError as e:
            raise LmbenchError(f"{where}: {what} ({name}): {e}") from None
        label = entry.get("label", name)
        if varying:
            label = f"{label} " + " ".join(f"{k}={point[k]}" for k in varying)
        configs.append(ModelConfig(name, str(label), tuple(sorted(point.items())), kind))
    return configs


def _check_metric_kinds(metrics: list[str], models: list[ModelConfig], where: str) -> None:
    """A metric for translators in a suite without one (or vice versa) is a mistake worth naming."""
    kinds = {m.kind for m in models}
    for name in metrics:
        metric = get_metric(name)
        if metric.scope == "model" and not kinds & set(metric.kinds):
            raise LmbenchError(f"{where}: metric {name!r} measures {' or '.join(metric.kinds)} models, "
                               f"and the suite has none")


def _check_metric_options(metrics: list[str], options: dict[str, dict[str, Any]], where: str) -> None:
    for name, opts in options.items():
        check_metric_options(name, opts, where)


def check_suite_inputs(suite: Suite) -> None:
    """Check what parsing cannot see, before the first cell: every corpus is there, every model fits in memory."""
    for corpus in suite.corpora:
        try:
            if corpus.kind == "lm":
                check_corpus_spec(corpus.spec)
            else:
                _check_pairs_spec(corpus.spec)
        except LmbenchError as e:
            raise LmbenchError(f"{suite.path}: corpus {corpus.label!r}: {e}") from None
    for model in suite.models:
        check_model_memory(create_model(model.name, model.param_dict))


def _check_pairs_spec(spec: str) -> None:
    """A parallel corpus's files exist (their content is checked when read)."""
    base, _ = parse_options(spec)
    if base.startswith("synthetic:"):
        if base != "synthetic:ko-en":
            raise LmbenchError(f"unknown synthetic parallel corpus {base.removeprefix('synthetic:')!r}; known: ko-en")
        return
    paths = [base] if local_path(base).exists() or "," not in base else base.split(",")
    for p in paths:
        if not local_path(p).exists():
            raise LmbenchError(f"no such file or directory: {p}")
