"""The click group, shared options, and the one place where errors become a line on stderr + exit 2."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any

import click

from lmbench.errors import Interrupted, LmbenchError
from lmbench.evaluate.harness import json_safe
from lmbench.models.registry import load_plugin_file
from lmbench.seeding import parse_seed
from lmbench.text.tokenize import TOKENIZER_HELP


def _load_plugins(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    for path in value:
        load_plugin_file(path)
    return value


plugin_option = click.option(
    "--plugin",
    "plugins",
    multiple=True,
    type=click.Path(dir_okay=False),
    is_eager=True,
    expose_value=False,
    callback=_load_plugins,
    help="A Python file defining LanguageModel subclasses to register (repeatable).",
)
class SeedType(click.ParamType):
    """A --seed value: a non-negative integer, through the one seed parser (lmbench.seeding)."""

    name = "seed"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """The seed, or a usage error naming the option."""
        try:
            return parse_seed(value, "--seed")
        except LmbenchError as e:
            self.fail(str(e), param, ctx)


class FiniteFloat(click.ParamType):
    """A finite float (never nan or inf), optionally with a lower bound (`low`, exclusive when `open`)."""

    name = "float"

    def __init__(self, low: float | None = None, open_: bool = False) -> None:
        self.low, self.open = low, open_

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        """The number, or a usage error saying what is allowed."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.low is not None and (number <= self.low if self.open else number < self.low):
            self.fail(f"{value!r} must be {'>' if self.open else '≥'} {self.low:g}", param, ctx)
        return number


SEED = SeedType()
NONNEG_FLOAT = FiniteFloat(0.0)
NONNEG_INT = click.IntRange(min=0)
POSITIVE_INT = click.IntRange(min=1)

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout and nothing else.")
quiet_option = click.option("--quiet", "-q", is_flag=True,
                            help="No progress on stderr (a bar on a terminal, else a line per epoch or cell).")


def progress_mode(as_json: bool, quiet: bool) -> bool | None:
    """The `progress` argument of long jobs: off with --json or --quiet, else chosen by the terminal."""
    return False if as_json or quiet else None


def _set_nfc(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    ctx.meta["lmbench.nfc"] = not value
    return value


# Stored on the click context (not a parameter), so commands need no extra argument for it.
no_nfc_option = click.option("--no-nfc", is_flag=True, expose_value=False, callback=_set_nfc,
                             help="Do not NFC-normalise the input text (default: normalise).")


def _set_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    from lmbench.models.neural import parallel

    parallel.set_threads(value)
    parallel.get_threads()  # without --threads, a malformed $LMBENCH_THREADS is an error now, not mid-run
    return value


# Neural models compute with this many threads; their results are the same for every count.
threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None, expose_value=False, callback=_set_threads,
    help="Threads the neural models compute with (results are identical for any count) [default: "
         "$LMBENCH_THREADS, else every core].")


def nfc_requested() -> bool:
    """False when the running command was given --no-nfc."""
    ctx = click.get_current_context(silent=True)
    return True if ctx is None else ctx.meta.get("lmbench.nfc", True)


def tokenizer_options(fn: Callable) -> Callable:
    """Add --tokenizer/--lowercase/--jamo/--min-count/--max-size to a command."""
    fn = click.option("--max-size", type=int, default=None, help="Keep at most this many word types.")(fn)
    fn = click.option("--min-count", type=int, default=1, show_default=True, help="Rarer words become <unk>.")(fn)
    fn = click.option("--jamo", is_flag=True, help="With --tokenizer char: decompose Hangul syllables into jamo.")(fn)
    fn = click.option("--lowercase", is_flag=True, help="Lower-case the text before tokenizing.")(fn)
    fn = no_nfc_option(fn)
    fn = click.option(
        "--tokenizer",
        "tokenizer_kind",
        default=None,
        metavar="KIND",
        help=f"Tokenizer: {TOKENIZER_HELP} [default: whitespace for synthetic: corpora, word otherwise].",
    )(fn)
    return fn


def warn_unknown(tokens: list[str], what: str) -> None:
    """One warning line on stderr naming input tokens the model has never seen (they read as <unk>)."""
    if tokens:
        shown = ", ".join(tokens[:20]) + (f", … ({len(tokens)} in all)" if len(tokens) > 20 else "")
        click.echo(f"lmbench: warning: {what}: unknown to the model (read as <unk>): {shown}", err=True)


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    """Parse repeated `-p key=value` options."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise LmbenchError(f"malformed -p {pair!r}: expected -p key=value, e.g. -p order=3")
        params[key.strip()] = value.strip()
    return params


def emit_json(obj: Any) -> None:
    """Print one strict-JSON object on stdout."""
    click.echo(json.dumps(json_safe(obj), ensure_ascii=False))


def info(message: str, quiet: bool = False) -> None:
    """A human progress line on stderr, shown on a terminal only (never in --json mode or in pipes/CI,
    so that a failing command still prints exactly one line there)."""
    if not quiet and sys.stderr.isatty():
        click.echo(message, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lmbench")
@plugin_option
def cli() -> None:
    """lmbench: compare n-gram and neural language models on one tokenizer and one harness."""


def one_line(message: str) -> str:
    """A message as one line: click lays some out on several (a Choice's list of choices, one per line)."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI; bad input → one line on stderr and exit status 2."""
    try:
        code = cli.main(args=argv, prog_name="lmbench", standalone_mode=False)
    except LmbenchError as e:
        click.echo(f"lmbench: error: {one_line(str(e))}", err=True)
        sys.exit(2)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help() if e.ctx else str(e))
        sys.exit(0)
    except click.UsageError as e:
        hint = f" (see 'lmbench {e.ctx.command_path.partition(' ')[2]} --help')".replace("  ", " ") if e.ctx else ""
        click.echo(f"lmbench: error: {one_line(e.format_message())}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"lmbench: error: {one_line(e.format_message())}", err=True)
        sys.exit(2)
    except (click.Abort, KeyboardInterrupt) as e:
        # click turns Ctrl-C into Abort; an Interrupted underneath knows what was saved: that is the one line.
        cause = e if isinstance(e, Interrupted) else e.__cause__
        message = str(cause) if isinstance(cause, Interrupted) and str(cause) else "interrupted"
        click.echo(f"lmbench: {message}", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as e:  # the machine refused (a full disk, a read-only or vanished path): one line, not a traceback
        where = f": {e.filename}" if e.filename else ""
        click.echo(f"lmbench: error: {one_line(f'{e.strerror or e}{where}')} (nothing was left half-written)", err=True)
        sys.exit(2)
    except MemoryError:
        click.echo("lmbench: error: out of memory; ask for smaller sizes (model, corpus or probe)", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
