"""Core commands: models, corpus, train, eval."""

from __future__ import annotations

import copy
from pathlib import Path

import click

from lmbench.cli.app import (
    cli,
    emit_json,
    info,
    json_option,
    nfc_requested,
    parse_params,
    plugin_option,
    progress_mode,
    quiet_option,
    threads_option,
    tokenizer_options,
)
from lmbench.errors import LmbenchError
from lmbench.evaluate.floor import floor_fields
from lmbench.evaluate.harness import evaluate, train
from lmbench.evaluate.units import per_unit_figures, text_units
from lmbench.models.base import read_checkpoint_header
from lmbench.models.neural.trainer import check_resume_tokenizer, check_resume_vocabulary, load_for_resume
from lmbench.models.ngram.counts import parse_memory
from lmbench.models.registry import create_model, get_model_class, load_language_model, model_names
from lmbench.outpaths import check_output_path
from lmbench.resources import check_model_memory
from lmbench.text.cache import cache_dir, clear, list_entries
from lmbench.text.sources import load_corpus, read_splits
from lmbench.text.stats import corpus_info
from lmbench.text.synthetic import generators
from lmbench.text.tokenize import tokenizer_for


@cli.command("models")
@plugin_option
@json_option
def models_command(as_json: bool) -> None:
    """List registered models (built-ins, entry points, plugins) with their parameters."""
    rows = []
    for name in model_names():
        cls = get_model_class(name)
        params = {k: {"default": p.default, "help": p.help} for k, p in cls.param_spec.items()}
        rows.append({"name": name, "description": cls.description, "capabilities": sorted(cls.capabilities),
                     "normalized": cls.normalized, "params": params})
    if as_json:
        emit_json({"models": rows})
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['description']}")


@cli.group("corpus")
def corpus_group() -> None:
    """Inspect corpora: `lmbench corpus info SPEC`, `corpus list`, `corpus fetch NAME`, `corpus cache list|clear`."""


@corpus_group.command("list")
@json_option
def corpus_list(as_json: bool) -> None:
    """List the built-in synthetic corpora (--corpus synthetic:NAME) and the corpora fetched by name."""
    from lmbench.text.fetch import corpus_dir, fetched, recipes

    gens = generators()
    named = {n: {"description": r.description, "license": r.license, "fetched": fetched(n) is not None,
                 "path": str(corpus_dir(n))} for n, r in recipes().items()}
    if as_json:
        emit_json({"synthetic": {n: g.description for n, g in gens.items()}, "recipes": named})
        return
    for name, gen in gens.items():
        click.echo(f"synthetic:{name:<14} {gen.description}")
    for name, r in named.items():
        where = r["path"] if r["fetched"] else f"not fetched: lmbench corpus fetch {name}"
        click.echo(f"{name:<24} {r['description']} [{where}]")


@corpus_group.command("info")
@click.argument("spec")
@tokenizer_options
@json_option
def corpus_info_command(spec: str, tokenizer_kind: str | None, lowercase: bool, jamo: bool,
                        min_count: int, max_size: int | None, as_json: bool) -> None:
    """Sentences, tokens, types, OOV rate of valid/test against train, and type–token growth of SPEC."""
    tokenizer = tokenizer_for(spec, tokenizer_kind, lowercase, jamo, nfc_requested())
    splits = read_splits(spec)
    tabbed = next((line for line in splits.train[:100] if "\t" in line), None)
    if tabbed is not None:  # a TSV read whole mixes its columns (Tatoeba's attribution column, say)
        columns = len(tabbed.split("\t"))
        click.echo(f"lmbench: note: the lines are tab-separated ({columns} columns); "
                   "add ?column=N to read one column", err=True)
    report = corpus_info(splits, tokenizer)
    if as_json:
        emit_json(report)
        return
    click.echo(f"corpus {report['corpus']}  (tokenizer: {tokenizer.kind}{', lower-cased' if lowercase else ''})")
    click.echo(f"{'split':<6} {'sentences':>10} {'tokens':>11} {'types':>9} {'OOV rate':>9}  most common")
    for split, s in report["splits"].items():
        common = " ".join(t for t, _ in s["most_common"][:6])
        click.echo(f"{split:<6} {s['sentences']:>10,} {s['tokens']:>11,} {s['types']:>9,} "
                   f"{s['oov_rate']:>9.2%}  {common}")
    growth = ", ".join(f"{g['tokens']:,}→{g['types']:,}" for g in report["type_token_growth"])
    click.echo(f"type-token growth (train tokens→types): {growth}")
    for key, value in report.items():
        if key not in ("corpus", "tokenizer", "splits", "type_token_growth"):
            click.echo(f"{key}: {value}")


@corpus_group.group("cache")
def corpus_cache_group() -> None:
    """Encoded corpora cached on disk (location: $LMBENCH_CACHE or the platform's cache directory)."""


@corpus_cache_group.command("list")
@json_option
def corpus_cache_list(as_json: bool) -> None:
    """List the cached encoded corpora."""
    entries = list(list_entries())
    if as_json:
        emit_json({"cache": str(cache_dir()), "entries": entries})
        return
    click.echo(f"cache {cache_dir()}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
    for e in entries:
        files = ", ".join(e["files"].values())
        click.echo(f"{e['key'][:12]}  {e['name']:<20} {e['bytes'] / 2**20:>9.1f} MB  {e['created']}  "
                   f"tokenizer={e['tokenizer'].get('kind')}  {files}")


@corpus_cache_group.command("clear")
@json_option
def corpus_cache_clear(as_json: bool) -> None:
    """Remove every cached encoded corpus."""
    removed = clear()
    if as_json:
        emit_json({"cache": str(cache_dir()), "removed": removed})
    else:
        click.echo(f"removed {removed} cached corpora from {cache_dir()}")


@corpus_group.command("fetch")
@click.argument("name")
@click.option("--force", is_flag=True, help="Download and unpack again even when the corpus is already fetched.")
@json_option
def corpus_fetch(name: str, force: bool, as_json: bool) -> None:
    """Download a standard corpus by NAME (see `lmbench corpus list`), verify its SHA-256 and unpack it."""
    from lmbench.text.fetch import fetch, find_recipe

    recipe = find_recipe(name)
    dest = fetch(name, force=force, log=lambda m: info(m, quiet=as_json))
    if as_json:
        emit_json({"name": recipe.name, "path": str(dest), "license": recipe.license, "tokenizer": recipe.tokenizer})
        return
    click.echo(f"{recipe.name}: {dest} (license: {recipe.license}); use it as --corpus {recipe.name}")


@cli.command("train")
@click.argument("model_name", metavar="MODEL")
@click.option("--corpus", "spec", required=True, help="Corpus spec: DIR, FILE, synthetic:NAME or nltk:NAME.")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False),
              help="Directory to write the model to (required, except with --resume, where it defaults to DIR).")
@click.option("--resume", "resume", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="Continue the run checkpointed in DIR bit for bit (models that can resume); -p may only "
                   "change epochs/max_steps.")
@click.option("-p", "--param", "param_pairs", multiple=True, metavar="KEY=VALUE", help="Model hyper-parameter.")
@click.option("--memory", default=None, metavar="SIZE",
              help="n-gram models: memory for counting, like lmplz -S (e.g. 2G); sorted runs beyond it spill to "
                   "disk. Default: $LMBENCH_MEMORY or 1G.")
@tokenizer_options
@plugin_option
@quiet_option
@json_option
@threads_option
def train_command(model_name: str, spec: str, out: str | None, resume: str | None, param_pairs: tuple[str, ...],
                  memory: str | None, tokenizer_kind: str | None, lowercase: bool, jamo: bool, min_count: int,
                  max_size: int | None, quiet: bool, as_json: bool) -> None:
    """Train MODEL on the corpus's train split and save it to --out (neural models: after every epoch too)."""
    if out is None and resume is None:
        raise LmbenchError("train needs --out DIR (or --resume DIR to continue a run)")
    out_dir = Path(out if out is not None else resume)
    check_output_path(out_dir, "dir", "--out" if out is not None else "--resume")  # before any work
    if out_dir.exists() and any(out_dir.iterdir()):
        read_checkpoint_header(out_dir)  # only an existing model may be replaced, never other files
    if resume is not None:
        model = load_for_resume(resume, model_name, parse_params(param_pairs))
        check_resume_tokenizer(model.tokenizer, tokenizer_kind, lowercase, jamo, resume)
        tokenizer = model.tokenizer or tokenizer_for(spec, tokenizer_kind, lowercase, jamo, nfc_requested())
    else:
        model = create_model(model_name, parse_params(param_pairs))  # validate before reading the corpus
        tokenizer = tokenizer_for(spec, tokenizer_kind, lowercase, jamo, nfc_requested())
    if memory is not None:
        model.memory = parse_memory(memory)  # checked before the corpus is read
    check_model_memory(model)  # the weights alone may already be absurd: refuse before reading the corpus
    corpora = load_corpus(spec, tokenizer, min_count=min_count, max_size=max_size)
    check_model_memory(model, len(corpora.vocab), corpora.train.n_predicted)
    if resume is not None:
        check_resume_vocabulary(model, corpora.vocab, resume)
    position = _training_position(model)
    info(f"training {model_name} on {corpora.name}: {corpora.train.n_predicted:,} tokens, "
         f"vocabulary {len(corpora.vocab):,}", quiet=as_json or quiet)
    result = train(model, corpora, out=out_dir, progress=progress_mode(as_json, quiet))
    summary = {**result.to_dict(), "corpus": corpora.name, "out": str(out_dir)}
    if resume is not None and position is not None and _training_position(model) == position:
        # Nothing was trained (the run had already finished): no time or speed to report.
        summary.update(trained=False, train_seconds=0.0, train_tokens_per_second=None)
        if as_json:
            emit_json(summary)
        else:
            click.echo(f"{resume} had already finished training ({_describe_position(position)}); nothing to do "
                       "(raise -p epochs or -p max_steps to train further)")
        return
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"trained {model_name} on {summary['train_tokens']:,} tokens in {result.train_seconds:.2f} s "
                   f"({result.train_tokens_per_second:,.0f} tokens/s) → {out_dir}")


def _training_position(model: object) -> dict | None:
    """Where a resumable model's training stands (a copy), or None for models without training state."""
    state = getattr(model, "train_state", None)
    return copy.deepcopy({k: v for k, v in state.items() if k != "done"}) if isinstance(state, dict) else None


def _describe_position(position: dict) -> str:
    parts = [f"{key} {position[key]}" for key in ("epoch", "step") if key in position]
    return ", ".join(parts) or "its last checkpoint"


@cli.command("eval")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--corpus", "spec", required=True, help="Corpus spec (encoded with the model's tokenizer and vocab).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "valid", "test"]))
@plugin_option
@json_option
@threads_option
def eval_command(model_dir: str, spec: str, split: str, as_json: bool) -> None:
    """Evaluate a trained model on a corpus split: perplexity, cross-entropy, OOV rate, zero-prob events."""
    model = load_language_model(model_dir)
    if model.tokenizer is None:
        raise LmbenchError(f"{model_dir}: the model records no tokenizer; it cannot encode raw text")
    splits = read_splits(spec)
    corpora = load_corpus(splits, model.tokenizer, vocab=model.vocab)
    result = evaluate(model, corpora.get(split)).to_dict()
    result["split"] = split
    # Comparable across tokenizers: the same total log-probability per character and per word of the text.
    chars, words, _ = text_units(splits.get(split) or [], model.tokenizer)
    result.update(per_unit_figures(result["log_likelihood"], chars, words))
    result.update(floor_fields(corpora, split, result["cross_entropy_bits"]))  # synthetic corpora with a known floor
    if as_json:
        emit_json(result)
        return
    flag = "" if result["normalized"] else "  (unnormalised scores: not a comparable perplexity)"
    click.echo(f"{result['model']} on {result['corpus']}: perplexity {result['perplexity']:.3f}, "
               f"{result['cross_entropy_bits']:.4f} bits/token over {result['tokens']:,} tokens{flag}")
    click.echo(f"{result['bits_per_character']:.4f} bits/character, word perplexity {result['word_perplexity']:.3f} "
               f"(comparable across tokenizers)")
    click.echo(f"OOV rate {result['oov_rate']:.2%}, zero-probability events {result['zero_prob_events']:,}, "
               f"{result['eval_tokens_per_second']:,.0f} tokens/s")
    if "bayes_floor_perplexity" in result:
        click.echo(f"Bayes floor perplexity {result['bayes_floor_perplexity']:.3f}; "
                   f"excess {result['excess_bits_per_token']:.4f} bits/token")
