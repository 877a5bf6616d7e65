"""`lmbench translate train|eval|text`: translators on parallel corpora (see lmbench.text.parallel)."""

from __future__ import annotations

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
    warn_unknown,
)
from lmbench.errors import LmbenchError
from lmbench.evaluate.bleu import BLEU_METRICS
from lmbench.evaluate.harness import train
from lmbench.evaluate.translation import evaluate_translator
from lmbench.models.base import Translator, read_checkpoint_header
from lmbench.models.neural.trainer import load_for_resume
from lmbench.models.registry import create_model, load_translator
from lmbench.text.parallel import load_pairs
from lmbench.text.tokenize import tokenizer_for

PAIRS_HELP = ("Parallel corpus: FILE.tsv[?source=N&split=90/10&seed=0], SRC,TGT (two aligned files), a directory "
              "with train.src/train.tgt, or synthetic:ko-en.")


def _with_source_column(spec: str, column: int | None) -> str:
    if column is None:
        return spec
    if column < 1:
        raise LmbenchError(f"--source-column must be ≥ 1 (columns count from 1), got {column}")
    return f"{spec}{'&' if '?' in spec else '?'}source={column}"


@cli.group("translate")
def translate_group() -> None:
    """Translation: `train` a translator on sentence pairs, `eval` with BLEU, `text` for one sentence."""


@translate_group.command("train")
@click.argument("model_name", metavar="[MODEL]", default="seq2seq", required=False)
@click.option("--pairs", "spec", required=True, help=PAIRS_HELP)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Directory to write the model to.")
@click.option("-p", "--param", "param_pairs", multiple=True, metavar="KEY=VALUE", help="Model hyper-parameter.")
@click.option("--resume", "resume", type=click.Path(file_okay=False), default=None,
              help="Continue the training run checkpointed in this directory.")
@click.option("--source-column", type=int, default=None, help="TSV column (1-based) that holds the source side.")
@tokenizer_options
@plugin_option
@quiet_option
@json_option
@threads_option
def train_command(model_name: str, spec: str, out: str, param_pairs: tuple[str, ...], resume: str | None,
                  source_column: int | None, tokenizer_kind: str | None, lowercase: bool, jamo: bool, min_count: int,
                  max_size: int | None, quiet: bool, as_json: bool) -> None:
    """Train a translator (default seq2seq) on the pairs' train split and save it to --out."""
    out_dir = Path(out)
    if out_dir.exists() and any(out_dir.iterdir()) and (resume is None or out_dir.resolve() != Path(resume).resolve()):
        read_checkpoint_header(out_dir)  # only an existing model may be replaced, never other files
    params = parse_params(param_pairs)
    spec = _with_source_column(spec, source_column)
    if resume is not None:
        model = load_for_resume(resume, None, params)
        if not isinstance(model, Translator):
            raise LmbenchError(f"{resume} holds a {model.name} model, which is not a translator")
        data = load_pairs(spec, model.tokenizer, model.tgt_tokenizer, min_count=min_count, max_size=max_size)
    else:
        model = create_model(model_name, params)  # validate before reading the corpus
        if not isinstance(model, Translator):
            raise LmbenchError(f"{model_name} is not a translator; train language models with `lmbench train`")
        tokenizer = tokenizer_for(spec, tokenizer_kind, lowercase, jamo, nfc_requested())
        data = load_pairs(spec, tokenizer, tokenizer, min_count=min_count, max_size=max_size)
    info(f"training {model.name} on {data.name}: {len(data.train):,} pairs, vocabularies {len(data.src_vocab):,} "
         f"(source) / {len(data.tgt_vocab):,} (target)", quiet=as_json or quiet)
    result = train(model, data, out=out_dir, progress=progress_mode(as_json, quiet))
    fit_info = model.fit_info
    history = fit_info.get("history", [])
    summary = {**result.to_dict(), "corpus": data.name, "out": str(out_dir), "train_pairs": len(data.train),
               "src_vocab_size": len(data.src_vocab), "tgt_vocab_size": len(data.tgt_vocab),
               "epochs": fit_info.get("epochs_done"), "steps": fit_info.get("steps")}
    if as_json:
        emit_json(summary)
        return
    last = history[-1] if history else {}
    valid = f", valid loss {last['valid_loss']:.4f}" if "valid_loss" in last else ""
    loss = f", train loss {last['train_loss']:.4f}" if "train_loss" in last else ""
    done = f" for {summary['epochs']} epochs ({summary['steps']:,} steps)" if summary["epochs"] is not None else ""
    click.echo(f"trained {model.name}{done} in {result.train_seconds:.1f} s{loss}{valid} → {out_dir}")


@translate_group.command("eval")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--pairs", "spec", required=True, help=PAIRS_HELP)
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "valid", "test"]))
@click.option("--beam", type=int, default=None, help="Beam size (1: greedy) [default: the model's].")
@click.option("--length-norm", type=float, default=None, help="Rank beams by score / length^A [default: model's].")
@click.option("--source-column", type=int, default=None, help="TSV column (1-based) that holds the source side.")
@click.option("--samples", type=int, default=5, show_default=True, help="Sample translations to show.")
@click.option("--bleu", type=click.Choice(BLEU_METRICS), default="sacrebleu", show_default=True,
              help="BLEU implementation: sacreBLEU (comparable with published figures) or NLTK's (older lmbench).")
@plugin_option
@json_option
@threads_option
def eval_command(model_dir: str, spec: str, split: str, beam: int | None, length_norm: float | None,
                 source_column: int | None, samples: int, bleu: str, as_json: bool) -> None:
    """Translate a split and score it: corpus BLEU, exact match, BLEU by source length, target perplexity."""
    if beam is not None and beam < 1:
        raise LmbenchError(f"--beam must be ≥ 1, got {beam}")
    if length_norm is not None and not 0 <= length_norm < float("inf"):  # nan fails both comparisons
        raise LmbenchError(f"--length-norm must be a finite number ≥ 0, got {length_norm}")
    if samples < 0:
        raise LmbenchError(f"--samples must be ≥ 0, got {samples}")
    model = load_translator(model_dir)
    data = load_pairs(_with_source_column(spec, source_column), model.tokenizer, model.tgt_tokenizer,
                      model.src_vocab, model.vocab)
    result = evaluate_translator(model, data, split, beam, length_norm, samples, bleu)
    if as_json:
        emit_json(result)
        return
    perplexity = (f", target perplexity {result['target_perplexity']:.3f}" if "target_perplexity" in result
                  else "")
    click.echo(f"{model.name} on {result['corpus']}/{split} (beam {result['beam']}): BLEU {result['bleu']:.2f}, "
               f"chrF {result['chrf']:.2f}, exact match {result['exact_match']:.1%}{perplexity} "
               f"over {result['sentences']:,} sentences")
    click.echo(f"BLEU signature: {result['bleu_signature']}")
    click.echo(f"{'source length':>14} {'sentences':>10} {'BLEU':>7} {'exact':>7}")
    for row in result["bleu_by_length"]:
        click.echo(f"{row['bucket']:>14} {row['sentences']:>10,} {row['bleu']:>7.2f} {row['exact_match']:>7.1%}")
    for s in result["samples"]:
        click.echo(f"  {s['source']}\n    → {s['translation']}\n    (reference: {s['reference']})")


@translate_group.command("text")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("sentences", nargs=-1, required=True)
@click.option("--beam", type=int, default=None, help="Beam size (1: greedy) [default: the model's].")
@plugin_option
@json_option
def text_command(model_dir: str, sentences: tuple[str, ...], beam: int | None, as_json: bool) -> None:
    """Translate one or more sentences given on the command line."""
    if beam is not None and beam < 1:
        raise LmbenchError(f"--beam must be ≥ 1, got {beam}")
    model = load_translator(model_dir)
    if model.tokenizer is None or model.src_vocab is None:
        raise LmbenchError(f"{model_dir}: the translator records no source tokenizer or vocabulary")
    unknown = [model.src_vocab.unknown(model.tokenizer(s)) for s in sentences]
    for i, u in enumerate(unknown, 1):
        warn_unknown(u, f"sentence {i}" if len(sentences) > 1 else "source")
    translations = model.translate(list(sentences), beam=beam)
    if as_json:
        emit_json({"translations": [{"source": s, "translation": t, "unknown_tokens": u}
                                    for s, t, u in zip(sentences, translations, unknown)]})
        return
    for t in translations:
        click.echo(t)
