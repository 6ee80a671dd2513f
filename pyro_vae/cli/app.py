"""The command-line application: its groups, the one-line error reporting every command shares, and main()."""

from __future__ import annotations

import functools
import inspect
import signal

import typer

from ..errors import Interrupted, UserError
from ..spec import spelled_as_options

app = typer.Typer(
    help=(
        "Variational autoencoders written as Pyro probabilistic programs: "
        "train, sample, reconstruct, study the latent space, compare."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


data_app = typer.Typer(help="Fetch and cache data sets (train does this on first use).", no_args_is_help=True)


app.add_typer(data_app, name="data")


reproductions_app = typer.Typer(
    help="The reproductions table (docs/reproductions.md): published numbers beside those of our recipe runs.",
    no_args_is_help=True,
)


app.add_typer(reproductions_app, name="reproductions")


def prose(text: str | None) -> str | None:
    """A docstring as paragraphs of one line each, so that --help wraps them at the terminal's width.

    Typer's rich help keeps a docstring's line breaks, which cut sentences short on a wide
    terminal and leave ragged lines on a narrow one; blank lines still separate paragraphs.
    """
    if not text:
        return text
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in inspect.cleandoc(text).split("\n\n"))


def command(group: typer.Typer, name: str | None = None):
    """``group.command(name)``, with the function's docstring given to Typer as :func:`prose`."""
    return lambda function: group.command(name, help=prose(function.__doc__))(function)


DEBUG = {"on": False}  # set by --debug (or PYRO_VAE_DEBUG=1): show tracebacks instead of one-line errors


@app.callback()
def options(
    debug: bool = typer.Option(
        False,
        "--debug",
        envvar="PYRO_VAE_DEBUG",
        help="Show the full traceback of an error, not only its one-line message.",
    ),
):
    DEBUG["on"] = debug


def reports_errors(command):
    """Turn a UserError into one line on stderr and exit status 2, and Ctrl-C into exit status 130
    (SIGTERM 143, SIGHUP 129), instead of a traceback (``--debug`` shows it)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with spelled_as_options():  # a setting is named as its option (--lr), not as Python names it (lr)
                return command(*args, **kwargs)
        except UserError as e:
            if DEBUG["on"]:
                raise
            typer.secho(f"error: {one_line(str(e))}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except MemoryError:  # torch.OutOfMemoryError too: a size no check foresaw, on this machine's memory
            if DEBUG["on"]:
                raise
            typer.secho(
                f"error: {command.__name__.replace('_', '-')} ran out of memory; lower the sizes it was given "
                "(--n, --steps, --pairs, --batch-size, --hidden-dim, --max-rows) or use a device with more memory",
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(2) from None
        except Interrupted as e:  # Ctrl-C, SIGTERM or SIGHUP during training, after a checkpoint was saved
            by = "" if e.signum == signal.SIGINT else f" by {signal.Signals(e.signum).name}"
            typer.secho(f"interrupted{by}: {e}", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(128 + e.signum) from None
        except KeyboardInterrupt:
            if DEBUG["on"]:
                raise
            typer.secho("interrupted (nothing of this command was saved)", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(130) from None

    return wrapper


def one_line(message: str) -> str:
    """``message`` with its control characters written as escapes: a newline in a path stays inside the line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def main() -> int:
    """The console script: ``app()``, except that a mistyped command or option is one line too."""
    for name in ("SIGTERM", "SIGHUP"):  # stop as Ctrl-C does: training saves its point, and every lock is let go
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.default_int_handler)
    try:
        return app(standalone_mode=False) or 0
    except typer.TyperException as e:  # Click's usage errors (Typer's public base class of them)
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError":  # nothing was asked for: show what can be
            typer.echo(ctx.get_help() if ctx else str(e), err=True)
        else:
            where = f" (see `{ctx.command_path} --help`)" if ctx else ""
            typer.secho(f"error: {e.format_message()}{where}", fg=typer.colors.RED, err=True)
        return e.exit_code
    except typer.Abort:
        typer.secho("interrupted", fg=typer.colors.YELLOW, err=True)
        return 130
