"""Neural-model commands: `lmbench generate`."""

from __future__ import annotations

import click
import numpy as np

from lmbench.cli.app import SEED, cli, emit_json, json_option, plugin_option, warn_unknown
from lmbench.errors import LmbenchError
from lmbench.models.registry import load_language_model
from lmbench.text.vocab import EOS_ID, UNK_ID


@cli.command("generate")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--prompt", default="", help="Text the generated sentence starts with.")
@click.option("--tokens", "n_tokens", type=click.IntRange(1, 100_000), default=30, show_default=True,
              help="How many tokens to generate (</s> ends a line and counts as one).")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Softmax temperature (> 0).")
@click.option("--seed", type=SEED, default=None, help="Random seed (the same seed gives the same text).")
@plugin_option
@json_option
def generate_command(model_dir: str, prompt: str, n_tokens: int, temperature: float, seed: int | None,
                     as_json: bool) -> None:
    """Sample text from a trained language model that can sample (rnn, lstm, gru)."""
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
