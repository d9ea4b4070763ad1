"""The Typer app, shared options, and the one place user errors become ``error: ...`` lines."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from losslens import __version__
from losslens.cli.commands import LazyGroup
from losslens.errors import LossLensError

app = typer.Typer(
    name="losslens",
    cls=LazyGroup,
    help="Diagnose neural networks through their loss landscapes: ingest checkpoints, compute "
    "multi-scale metrics into a SQLite catalog, browse it with Datasette, export static views.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)

# C0 controls but tab and newline, DEL and the C1 controls (``\x9b`` is a one-byte CSI).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with every control character as a visible escape (``\x1b``); tab and newline kept."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class SafeConsole(Console):
    """A console whose text never acts on the terminal: names come from files others wrote (sidecars, checkpoint
    metadata, specs), and an ESC sequence in one could clear the screen, retitle the window or write the
    clipboard. Control characters in any text it renders (strings, Text, table cells, error lines) print as
    :func:`visible` escapes; Rich's own styling and cursor control (control segments) are untouched.

    Strings (messages, table cells) are made visible before Rich measures them, so columns fit the escapes;
    the check of every rendered segment is the safety net for Text built elsewhere."""

    def render_str(self, text: str, **kwargs: Any) -> Any:
        return super().render_str(visible(text), **kwargs)

    def render(self, renderable: Any, options: Any = None) -> Any:
        from rich.segment import Segment

        for segment in super().render(renderable, options):
            if segment.control or not CONTROL.search(segment.text):
                yield segment
            else:
                yield Segment(visible(segment.text), segment.style, segment.control)


# Markup off: every message, name and label prints verbatim ("[model]", "[/data/run1]", "a<b&c").
# Styled parts are rich Text objects (:func:`labelled`), never markup strings.
console = SafeConsole(soft_wrap=True, markup=False, highlight=False)
err_console = SafeConsole(stderr=True, soft_wrap=True, markup=False, highlight=False)


def labelled(label: str, message: str, style: str = "bold red") -> Text:
    """``label`` styled, then ``message`` verbatim: ``error: <where>: <what> — <hint>``."""
    return Text.assemble((label, style), " ", visible(message))


def text_column(field: str = "description", style: str = "progress.description") -> Any:
    """A progress column showing a task field verbatim (TextColumn reads markup by default)."""
    from rich.progress import TextColumn

    return TextColumn(f"{{task.{field}}}", style=style, markup=False)


CatalogOpt = Annotated[
    Path,
    typer.Option(
        "--catalog",
        envvar="LOSSLENS_CATALOG",
        help="Catalog SQLite file (artifacts live beside it). Env: LOSSLENS_CATALOG.",
        show_default=True,
    ),
]
DEFAULT_CATALOG = Path("catalog/losslens.db")
ExperimentOpt = Annotated[str | None, typer.Option("--experiment", "-e", help="Only this experiment (default: all).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn a LossLensError into one ``error:`` line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LossLensError as exc:
            err_console.print(labelled("error:", exc.line()), soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _version(value: bool) -> None:
    if value:
        console.print(f"losslens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """LossLens command line."""
