"""N-gram commands: export a model as ARPA, import an ARPA file, and the sparsity table."""

from __future__ import annotations

import click

from lmbench.cli.app import cli, emit_json, info, json_option, nfc_requested, plugin_option, tokenizer_options
from lmbench.errors import LmbenchError
from lmbench.models.base import read_checkpoint_header
from lmbench.models.ngram.model import ArpaModel, BackoffLanguageModel
from lmbench.models.registry import load_language_model
from lmbench.outpaths import check_output_path
from lmbench.text.sources import load_corpus
from lmbench.text.tokenize import TOKENIZER_KINDS, Tokenizer, tokenizer_for


@cli.command("export")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--arpa", "arpa_path", required=True, type=click.Path(dir_okay=False), help="ARPA file to write.")
@click.option("--force", is_flag=True, help="Overwrite the ARPA file if it exists.")
@plugin_option
@json_option
def export_command(model_dir: str, arpa_path: str, force: bool, as_json: bool) -> None:
    """Write a trained n-gram model (or an imported one) as an ARPA file."""
    check_output_path(arpa_path, "file", "--arpa", overwrite=force)
    model = load_language_model(model_dir)
    if not isinstance(model, BackoffLanguageModel):
        raise LmbenchError(f"{model_dir} holds a {model.name} model; only n-gram and arpa models have an ARPA form")
    model.export_arpa(arpa_path)
    tables = model.require_tables()
    summary = {"model": model.name, "arpa": arpa_path, "ngrams": [int(k.size) for k in tables.keys]}
    if as_json:
        emit_json(summary)
    else:
        sizes = " / ".join(f"{n:,}" for n in summary["ngrams"])
        click.echo(f"wrote {arpa_path}: order {tables.order}, n-grams {sizes}")


@cli.command("import-arpa")
@click.argument("arpa_path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--tokenizer", "tokenizer_kind", type=click.Choice(TOKENIZER_KINDS), default="whitespace",
              show_default=True, help="How `lmbench eval` will tokenize text for this model.")
@click.option("--lowercase", is_flag=True, help="Lower-case text before tokenizing.")
@json_option
def import_arpa_command(arpa_path: str, out: str, tokenizer_kind: str, lowercase: bool, as_json: bool) -> None:
    """Turn an ARPA file (KenLM, SRILM, lmbench export) into an lmbench model scored by the same harness."""
    out_dir = check_output_path(out, "dir")
    if out_dir.exists() and any(out_dir.iterdir()):
        read_checkpoint_header(out_dir)  # only an existing model may be replaced, never other files
    model = ArpaModel.from_arpa(arpa_path)
    model.tokenizer = Tokenizer(tokenizer_kind, lowercase=lowercase)
    model.save(out_dir)
    summary = {"model": "arpa", "source": arpa_path, "out": str(out_dir), "vocab_size": len(model.vocab),
               **{k: v for k, v in model.fit_info.items() if k != "source"}}
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"imported {arpa_path}: order {summary['order']}, vocabulary {summary['vocab_size']:,} → {out_dir}")


@cli.command("sparsity")
@click.option("--corpus", "spec", required=True, help="Corpus spec: DIR, FILE, synthetic:NAME or nltk:NAME.")
@click.option("--max-order", type=int, default=5, show_default=True, help="Highest n-gram order.")
@tokenizer_options
@json_option
def sparsity_command(spec: str, max_order: int, tokenizer_kind: str | None, lowercase: bool, jamo: bool,
                     min_count: int, max_size: int | None, as_json: bool) -> None:
    """N-gram sparsity per order: types, tokens, n1..n4, unseen test n-grams, MLE zero-probability events."""
    from lmbench.evaluate.sparsity import sparsity_table  # imports pandas (seconds): only this command needs it

    if max_order < 1:
        raise LmbenchError(f"--max-order must be ≥ 1, got {max_order}")
    tokenizer = tokenizer_for(spec, tokenizer_kind, lowercase, jamo, nfc_requested())
    corpora = load_corpus(spec, tokenizer, min_count=min_count, max_size=max_size)
    info(f"counting n-grams of orders 1..{max_order} in {corpora.name}", quiet=as_json)
    table = sparsity_table(corpora, max_order)
    if as_json:
        emit_json({"corpus": corpora.name, "tokenizer": tokenizer.to_json(), "max_order": max_order,
                   "rows": table.to_dict(orient="records")})
        return
    click.echo(f"corpus {corpora.name}  (tokenizer: {tokenizer.kind})")
    click.echo(f"{'split':<6} {'n':>2} {'types':>9} {'tokens':>9} {'n1':>8} {'n2':>7} {'n3':>7} {'n4':>7} "
               f"{'unseen':>8} {'MLE p=0':>8} {'OOV':>6}")
    for r in table.to_dict(orient="records"):
        held_out = r["split"] != "train"
        unseen = f"{r['unseen_fraction']:8.2%}" if held_out else f"{'':8}"
        zero = f"{r['mle_zero_prob']:8,}" if held_out else f"{'':8}"
        oov = f"{r['oov_rate']:6.2%}" if held_out else f"{'':6}"
        click.echo(f"{r['split']:<6} {r['order']:>2} {r['types']:>9,} {r['tokens']:>9,} {r['n1']:>8,} {r['n2']:>7,} "
                   f"{r['n3']:>7,} {r['n4']:>7,} {unseen} {zero} {oov}")
