"""Neural-model commands: `lmbench generate`, and the checkpoint check behind `lmbench train --resume`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from lmbench.cli.app import cli, emit_json, json_option, plugin_option, warn_unknown
from lmbench.errors import LmbenchError

# Parameters a resumed run may change: how long it goes on, nothing about what it computes.
RESUMABLE_OVERRIDES = ("epochs", "max_steps")


def load_for_resume(directory: str | Path, model_name: str, overrides: dict[str, Any]) -> Any:
    """The model saved in `directory`, ready to continue training; a clear error when it cannot."""
    from lmbench.models.base import load_model, read_checkpoint_header

    header = read_checkpoint_header(directory)
    if header["model"] != model_name:
        raise LmbenchError(f"cannot resume {directory}: it holds a {header['model']} model, not {model_name}")
    model = load_model(directory)
    if not model.has("resume") or getattr(model, "train_state", None) is None:
        raise LmbenchError(f"cannot resume {directory}: model {model_name} has no saved training state")
    for key, value in overrides.items():
        if key not in RESUMABLE_OVERRIDES:
            raise LmbenchError(f"cannot change -p {key} when resuming; only {', '.join(RESUMABLE_OVERRIDES)} "
                               "may change (the rest comes from the checkpoint)")
        model.params[key] = model.param_spec[key].coerce(key, value)
    return model


def check_resume_vocabulary(model: Any, vocab: Any, directory: str | Path) -> None:
    """A resumed model must see the vocabulary it was trained with."""
    if model.vocab != vocab:
        raise LmbenchError(f"cannot resume {directory}: its vocabulary ({len(model.vocab):,} entries) differs from "
                           f"the corpus's ({len(vocab):,}); use the corpus and tokenizer options of the first run")


@cli.command("generate")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--prompt", default="", help="Text the generated sentence starts with.")
@click.option("--tokens", "n_tokens", type=click.IntRange(1, 100_000), default=30, show_default=True,
              help="How many tokens to generate (</s> ends a line and counts as one).")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Softmax temperature (> 0).")
@click.option("--seed", type=int, default=None, help="Random seed (the same seed gives the same text).")
@plugin_option
@json_option
def generate_command(model_dir: str, prompt: str, n_tokens: int, temperature: float, seed: int | None,
                     as_json: bool) -> None:
    """Sample text from a trained language model that can sample (rnn, lstm, gru)."""
    from lmbench.models.base import load_language_model
    from lmbench.text.vocab import EOS_ID, UNK_ID

    if not temperature > 0:
        raise LmbenchError(f"--temperature must be > 0, got {temperature}")
    model = load_language_model(model_dir)
    if not model.has("sample"):
        raise LmbenchError(f"model {model.name} in {model_dir} cannot sample (it lacks the 'sample' capability)")
    if model.tokenizer is None:
        raise LmbenchError(f"{model_dir}: the model records no tokenizer; it cannot read a prompt")
    prompt_tokens = model.tokenizer(prompt)
    prefix = model.vocab.encode(prompt_tokens)
    unknown = model.vocab.unknown(prompt_tokens)
    warn_unknown(unknown, "prompt")
    ids = model.sample(prefix.tolist(), n_tokens, temperature, np.random.default_rng(seed))
    words = model.vocab.decode(ids)
    lines, current = [], list(prompt_tokens)
    for i, w in zip(ids, words):
        if i == EOS_ID:
            lines.append(model.tokenizer.detokenize(current))
            current = []
        else:
            current.append(w)
    if current:
        lines.append(model.tokenizer.detokenize(current))
    text = "\n".join(lines)
    if as_json:
        emit_json({"model": model.name, "prompt": prompt, "prompt_unknown": int(np.sum(prefix == UNK_ID)),
                   "unknown_tokens": unknown,
                   "ids": ids, "tokens": words, "text": text, "temperature": temperature, "seed": seed})
    else:
        click.echo(text)
