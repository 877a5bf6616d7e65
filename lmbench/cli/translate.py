"""`lmbench translate train|eval|text`: the seq2seq translator on parallel corpora (see lmbench.text.parallel)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from lmbench.cli.app import (
    cli,
    emit_json,
    info,
    json_option,
    parse_params,
    plugin_option,
    tokenizer_options,
    warn_unknown,
)
from lmbench.errors import LmbenchError

PAIRS_HELP = ("Parallel corpus: FILE.tsv[?source=N&split=90/10&seed=0], SRC,TGT (two aligned files), a directory "
              "with train.src/train.tgt, or synthetic:ko-en.")
RESUMABLE = ("epochs", "max_steps")  # the only parameters a resumed run may change


def _with_source_column(spec: str, column: int | None) -> str:
    if column is None:
        return spec
    if column < 1:
        raise LmbenchError(f"--source-column must be ≥ 1 (columns count from 1), got {column}")
    return f"{spec}{'&' if '?' in spec else '?'}source={column}"


def load_translator(model_dir: str) -> Any:
    """Load a checkpoint and check that it is a translator."""
    from lmbench.models.base import load_model

    model = load_model(model_dir)
    if not model.has("translate"):
        raise LmbenchError(f"{model_dir} holds a {model.name} model, which is not a translator "
                           "(train one with `lmbench translate train`)")
    return model


@cli.group("translate")
def translate_group() -> None:
    """Seq2Seq translation: `train` on sentence pairs, `eval` with BLEU, `text` for one sentence."""


@translate_group.command("train")
@click.option("--pairs", "spec", required=True, help=PAIRS_HELP)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Directory to write the model to.")
@click.option("-p", "--param", "param_pairs", multiple=True, metavar="KEY=VALUE", help="Model hyper-parameter.")
@click.option("--resume", "resume", type=click.Path(file_okay=False), default=None,
              help="Continue the training run checkpointed in this directory.")
@click.option("--source-column", type=int, default=None, help="TSV column (1-based) that holds the source side.")
@tokenizer_options
@plugin_option
@json_option
def train_command(spec: str, out: str, param_pairs: tuple[str, ...], resume: str | None, source_column: int | None,
                  tokenizer_kind: str | None, lowercase: bool, jamo: bool, min_count: int, max_size: int | None,
                  as_json: bool) -> None:
    """Train a seq2seq translator on the pairs' train split (checkpoint after every epoch) and save it to --out."""
    from lmbench.models.base import read_checkpoint_header
    from lmbench.models.registry import create_model
    from lmbench.text.parallel import default_pair_tokenizer, load_pairs
    from lmbench.text.tokenize import Tokenizer

    out_dir = Path(out)
    if out_dir.exists() and any(out_dir.iterdir()) and (resume is None or out_dir.resolve() != Path(resume).resolve()):
        read_checkpoint_header(out_dir)  # only an existing model may be replaced, never other files
    params = parse_params(param_pairs)
    spec = _with_source_column(spec, source_column)
    if resume is not None:
        model = load_translator(resume)
        for key, value in params.items():
            if key not in model.param_spec:
                raise LmbenchError(f"model seq2seq: unknown parameter {key}")
            coerced = model.param_spec[key].coerce(key, value)
            if key not in RESUMABLE and coerced != model.params[key]:
                raise LmbenchError(f"--resume: {key} was {model.params[key]!r} in {resume}; only "
                                   f"{', '.join(RESUMABLE)} may change when resuming")
            model.params[key] = coerced
        if model.train_state["epoch"] < model.params["epochs"] and not (
                model.params["max_steps"] and model.train_state["step"] >= model.params["max_steps"]):
            model.train_state["done"] = False
        data = load_pairs(spec, model.tokenizer, model.tgt_tokenizer, min_count=min_count, max_size=max_size)
    else:
        model = create_model("seq2seq", params)  # validate before reading the corpus
        base = default_pair_tokenizer(spec) if tokenizer_kind is None else Tokenizer(tokenizer_kind)
        tokenizer = Tokenizer(base.kind, lowercase=lowercase, jamo=jamo)
        data = load_pairs(spec, tokenizer, tokenizer, min_count=min_count, max_size=max_size)
    info(f"training seq2seq on {data.name}: {len(data.train):,} pairs, vocabularies {len(data.src_vocab):,} "
         f"(source) / {len(data.tgt_vocab):,} (target)"
         + (f", resuming after epoch {model.train_state['epoch']}" if resume else ""), quiet=as_json)
    start = time.perf_counter()
    model.fit(data, progress=None if not as_json else False, on_epoch=lambda m: m.save(out_dir))
    seconds = time.perf_counter() - start
    model.save(out_dir)
    history = model.train_state["history"]
    summary = {"model": "seq2seq", "params": model.params, "corpus": data.name, "out": str(out_dir),
               "train_pairs": len(data.train), "src_vocab_size": len(data.src_vocab),
               "tgt_vocab_size": len(data.tgt_vocab), "epochs": model.train_state["epoch"],
               "steps": model.train_state["step"], "train_seconds": seconds, "history": history}
    if as_json:
        emit_json(summary)
        return
    last = history[-1] if history else {}
    valid = f", valid loss {last['valid_loss']:.4f}" if "valid_loss" in last else ""
    loss = f", train loss {last['train_loss']:.4f}" if last else ""
    click.echo(f"trained seq2seq for {summary['epochs']} epochs ({summary['steps']:,} steps) in {seconds:.1f} s"
               f"{loss}{valid} → {out_dir}")


def evaluate_translator(model: Any, spec: str, split: str, beam: int | None, length_norm: float | None,
                        samples: int = 5, bleu: str = "sacrebleu") -> dict[str, Any]:
    """BLEU (sacreBLEU unless bleu="nltk"), chrF, exact match, BLEU by source length, target perplexity."""
    import math

    from lmbench.evaluate.bleu import score_translations
    from lmbench.text.parallel import load_pairs

    data = load_pairs(spec, model.tokenizer, model.tgt_tokenizer, model.src_vocab, model.vocab)
    pairs = data.get(split)
    raw = data.raw.get(split) or []
    start = time.perf_counter()
    hyp = model.translate_corpus(pairs.src, beam=beam, alpha=length_norm)
    seconds = time.perf_counter() - start
    detok = model.tgt_tokenizer or model.tokenizer
    # BLEU compares readable text: detokenized output against the reference as written.
    hyps = [detok.detokenize(model.vocab.decode(t.tolist())) for t in hyp.tokens]
    scores = score_translations(hyps, [t for _, t in raw], pairs.src.lengths, bleu=bleu)
    lp, counts = model.sentence_logprobs(pairs) if hasattr(model, "sentence_logprobs") else (np.zeros(1), np.zeros(1))
    scores.update({
        "model": model.name, "corpus": data.name, "split": split,
        "beam": beam or model.params["beam"],
        "length_norm": model.params["length_norm"] if length_norm is None else length_norm,
        "target_perplexity": math.exp(-lp.sum() / counts.sum()) if counts.sum() else float("nan"),
        "target_oov_rate": pairs.tgt.oov_rate, "decode_seconds": seconds,
        "sentences_per_second": len(hyps) / seconds if seconds > 0 else float("inf"),
        "samples": [{"source": s, "reference": t, "translation": h}
                    for (s, t), h in list(zip(raw, hyps))[:samples]],
    })
    return scores


@translate_group.command("eval")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--pairs", "spec", required=True, help=PAIRS_HELP)
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "valid", "test"]))
@click.option("--beam", type=int, default=None, help="Beam size (1: greedy) [default: the model's].")
@click.option("--length-norm", type=float, default=None, help="Rank beams by score / length^A [default: model's].")
@click.option("--source-column", type=int, default=None, help="TSV column (1-based) that holds the source side.")
@click.option("--samples", type=int, default=5, show_default=True, help="Sample translations to show.")
@click.option("--bleu", type=click.Choice(["sacrebleu", "nltk"]), default="sacrebleu", show_default=True,
              help="BLEU implementation: sacreBLEU (comparable with published figures) or NLTK's (older lmbench).")
@plugin_option
@json_option
def eval_command(model_dir: str, spec: str, split: str, beam: int | None, length_norm: float | None,
                 source_column: int | None, samples: int, bleu: str, as_json: bool) -> None:
    """Translate a split and score it: corpus BLEU, exact match, BLEU by source length, target perplexity."""
    if beam is not None and beam < 1:
        raise LmbenchError(f"--beam must be ≥ 1, got {beam}")
    if length_norm is not None and length_norm < 0:
        raise LmbenchError(f"--length-norm must be ≥ 0, got {length_norm}")
    model = load_translator(model_dir)
    result = evaluate_translator(model, _with_source_column(spec, source_column), split, beam, length_norm, samples,
                                 bleu)
    if as_json:
        emit_json(result)
        return
    click.echo(f"{model.name} on {result['corpus']}/{split} (beam {result['beam']}): BLEU {result['bleu']:.2f}, "
               f"chrF {result['chrf']:.2f}, exact match {result['exact_match']:.1%}, "
               f"target perplexity {result['target_perplexity']:.3f} over {result['sentences']:,} sentences")
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
