"""Long-range probes: `lmbench probe distance|pairs|make-pairs` and `lmbench gradflow`."""

from __future__ import annotations

import click

from lmbench.cli.app import POSITIVE_INT, SEED, cli, emit_json, json_option, plugin_option
from lmbench.errors import LmbenchError
from lmbench.evaluate.gradflow import (
    fresh_copy,
    lag_profile,
    require_hidden_states,
    training_grad_norms,
    unigram_windows,
)
from lmbench.evaluate.probes import distance_probe, pairs_probe, parse_distances, read_pairs
from lmbench.models.registry import load_model
from lmbench.outpaths import check_output_path
from lmbench.text.sources import load_corpus
from lmbench.text.synthetic.dependency import process_from_spec
from lmbench.text.synthetic.pairs import write_pairs


def _ci(row: dict) -> str:
    lo, hi = row["ci95"]
    return f"[{lo:.2f}, {hi:.2f}]"


@cli.group("probe")
def probe_group() -> None:
    """Long-range probes: accuracy by distance, BLiMP-style minimal pairs, pair generators."""


@probe_group.command("distance")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--distances", default="1,2,4,8,16,32,64,128", show_default=True, help="Comma-separated d ≥ 1.")
@click.option("--items", "n_items", type=int, default=200, show_default=True, help="Items per distance.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--corpus", "spec", default="synthetic:dependency", show_default=True,
              help="The synthetic:dependency spec the model was trained on (its pairs and filler).")
@plugin_option
@json_option
def probe_distance(model_dir: str, distances: str, n_items: int, seed: int, spec: str, as_json: bool) -> None:
    """Accuracy of ranking the right closer first when its trigger is d tokens back."""
    wanted = parse_distances(distances)  # bad input fails before the model is read
    if n_items < 1:
        raise LmbenchError(f"--items must be ≥ 1, got {n_items}")
    report = distance_probe(load_model(model_dir), process_from_spec(spec), wanted, n_items, seed)
    if as_json:
        emit_json(report)
        return
    click.echo(f"{report['model']}: closer accuracy by distance (chance {report['chance']:.2f}, "
               f"{n_items} items each)")
    click.echo(f"{'distance':>8} {'accuracy':>9}  95% interval")
    for row in report["distances"]:
        click.echo(f"{row['distance']:>8} {row['accuracy']:>9.3f}  {_ci(row)}")
    for row in report["not_generated"]:
        click.echo(f"{row['distance']:>8} {'—':>9}  not measured: {row['reason']}")


@probe_group.command("pairs")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("pairs_file", type=click.Path(dir_okay=False))
@click.option("--group-by", "group_by", multiple=True, help="A field to group accuracy by (repeatable or a,b).")
@plugin_option
@json_option
def probe_pairs(model_dir: str, pairs_file: str, group_by: tuple[str, ...], as_json: bool) -> None:
    """Share of minimal pairs (JSONL: sentence_good, sentence_bad, ...) where the good one scores higher."""
    pairs = read_pairs(pairs_file)
    fields = [f.strip() for spec in group_by for f in spec.split(",") if f.strip()]
    report = pairs_probe(load_model(model_dir), pairs, fields)
    report["file"] = pairs_file
    if as_json:
        emit_json(report)
        return
    click.echo(f"{report['model']} on {pairs_file}: accuracy {report['accuracy']:.3f} {_ci(report)} over "
               f"{report['pairs']} pairs ({report['correct']} right, {report['wrong']} wrong, {report['ties']} ties; "
               f"chance 0.5; {report['unknown_tokens']} unknown tokens)")
    for field, table in report["groups"].items():
        click.echo(f"by {field}:")
        for row in table:
            click.echo(f"  {str(row['value']):>10}  {row['accuracy']:.3f} {_ci(row)}  n={row['pairs']}  "
                       f"ties={row['ties']}")


@probe_group.command("make-pairs")
@click.argument("kind", type=click.Choice(["agreement", "korean-npi"]))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="JSONL file to write.")
@click.option("--n", "n_pairs", type=POSITIVE_INT, default=400, show_default=True, help="Number of pairs.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@json_option
def make_pairs(kind: str, out: str, n_pairs: int, seed: int, as_json: bool) -> None:
    """Write seeded minimal pairs (the vocabulary of synthetic:agreement or synthetic:korean-npi)."""
    check_output_path(out, "file")
    n = write_pairs(kind, out, n_pairs, seed)
    if as_json:
        emit_json({"kind": kind, "out": out, "pairs": n})
    else:
        click.echo(f"wrote {n} {kind} pairs to {out}")


@cli.command("gradflow")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--corpus", "spec", default=None,
              help="Corpus spec for the windows [default: token windows drawn from the vocabulary's training "
                   "counts].")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "valid", "test"]))
@click.option("--max-lag", "max_lag", type=int, default=100, show_default=True)
@click.option("--positions", type=POSITIVE_INT, default=64, show_default=True, help="Windows averaged over.")
@click.option("--init", "with_init", is_flag=True, help="Also profile the same architecture untrained.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@plugin_option
@json_option
def gradflow_command(model_dir: str, spec: str | None, split: str, max_lag: int, positions: int, with_init: bool,
                     seed: int, as_json: bool) -> None:
    """‖∂L_t/∂h_{t−k}‖ by lag k and layer (vanishing), and training-time gradient norms (exploding)."""
    if max_lag < 0:
        raise LmbenchError(f"--max-lag must be ≥ 0, got {max_lag}")
    model = require_hidden_states(load_model(model_dir))
    if spec:
        corpus = load_corpus(spec, model.tokenizer, vocab=model.vocab).get(split)
    else:
        corpus = unigram_windows(model.require_fitted(), max_lag + 2, positions, seed)
    report: dict = {"model": model.name, "corpus": corpus.name, "split": split if spec else None,
                    "trained": lag_profile(model, corpus, max_lag, positions, seed)}
    if with_init:
        report["init"] = lag_profile(fresh_copy(model), corpus, max_lag, positions, seed)
    report["training"] = training_grad_norms(model)
    if as_json:
        emit_json(report)
        return
    lags = sorted({k for k in (0, 1, 2, 5, 10, 20, 50, 100, max_lag) if k <= max_lag})
    click.echo(f"{model.name}: mean ‖∂L_t/∂h_(t−k)‖ over {report['trained']['positions']} positions of {corpus.name}")
    click.echo(f"{'':>14}" + "".join(f"{'k=' + str(k):>11}" for k in lags))
    for name in ("trained", "init"):
        if name in report:
            for layer, prof in enumerate(report[name]["layers"]):
                click.echo(f"{name + ' L' + str(layer):>14}" + "".join(f"{prof[k]:>11.3e}" for k in lags))
    tr = report["training"]
    if tr:
        click.echo(f"training: {tr['steps']} steps, global gradient norm median {tr['median']:.3g}, "
                   f"max {tr['max']:.3g}; clipping (at {tr['clip']:g}) fired on {tr['clipped_fraction']:.1%} "
                   "of steps")
    else:
        click.echo("training: no per-step gradient norms recorded in this checkpoint")
