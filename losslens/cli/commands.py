"""The command table: which module defines each ``losslens`` command, imported only when it runs.

Command modules import what their work needs (torch, the metrics, Datasette), which takes seconds. The
root group imports a command's module when that command is invoked (or documented), so ``losslens
--version``, ``--help``, ``ls`` and ``status`` start at once. ``losslens --help`` lists the commands
from the summaries below without importing them; ``tests/test_cli.py`` checks that each summary is the
first paragraph of the command's own help, so the two cannot drift apart.

Adding a command: its module registers it on :data:`losslens.cli.app.app` as before, and gets one line here.
"""

from __future__ import annotations

import importlib
import re
import weakref
from typing import Any, NamedTuple

from typer.core import TyperCommand, TyperGroup


class Entry(NamedTuple):
    module: str
    summary: str  # the first paragraph of the command's help


COMMANDS: dict[str, Entry] = {
    "init": Entry("losslens.cli.catalog_cmds", "Create the catalog, or migrate an existing one forward (after a backup copy)."),
    "ls": Entry("losslens.cli.catalog_cmds", "List experiments and settings (and checkpoints with --checkpoints)."),
    "status": Entry("losslens.cli.catalog_cmds", "Metric coverage per experiment: subjects done, failed and missing."),
    "compute": Entry(
        "losslens.cli.compute_cmd", "Compute METRIC... for every checkpoint (or pair, setting) of the catalog's experiments."
    ),
    "demo": Entry(
        "losslens.cli.demo_cmd",
        "A case study end to end: train, ingest, compute every metric, export the views. By default the PINN "
        "(β ∈ {1, 10, 30} × 3 seeds); ``--study lm`` a tiny causal language model (docs/lm.md).",
    ),
    "ingest": Entry(
        "losslens.cli.ingest_cmd",
        "Load checkpoints safely, check them against the model, hash them and add them to the catalog.",
    ),
    "serve": Entry(
        "losslens.cli.serve_cmd", "Browse the catalog in Datasette, read-only, with the LossLens views at /-/losslens/<database>."
    ),
    "taxonomy": Entry(
        "losslens.cli.taxonomy_cmd",
        "Settings with training loss/error, Hessian sharpness, mc, CKA and their phase (run `compute taxonomy` first).",
    ),
    "report": Entry("losslens.cli.demo_cmd", "Reports generated from real runs."),
    "export": Entry(
        "losslens.cli.export_cmd",
        "Static exports: one chart, every view of an experiment, the offline viewer, or a landscape grid for ParaView.",
    ),
    "train": Entry(
        "losslens.cli.train_cmd", "Train the case-study models into checkpoints, sidecars and a ready experiment spec."
    ),
}


LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s")


def reflow(text: str | None) -> str | None:
    """Help text with each paragraph's line breaks joined, so the terminal wraps it (Typer's rich help keeps a
    docstring's single line breaks after the first paragraph, breaking sentences mid-line). Lines that start a
    list item and paragraphs marked ``\\b`` (Click's "keep as written") keep their breaks."""
    if not text:
        return text
    out = []
    for paragraph in text.split("\n\n"):
        if paragraph.startswith("\b"):
            out.append(paragraph)
            continue
        lines: list[str] = []
        for line in paragraph.splitlines():
            if lines and not LIST_ITEM.match(line):
                lines[-1] += " " + line.strip()
            else:
                lines.append(line.rstrip())
        out.append("\n".join(lines))
    return "\n\n".join(out)


def reflow_help(command: Any) -> None:
    """:func:`reflow` the help of ``command``, its options and, for a group, its subcommands."""
    command.help = reflow(command.help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = reflow(param.help)
    for sub in getattr(command, "commands", {}).values():
        reflow_help(sub)


def load_all() -> None:
    """Import every command module (for tests and tools that need the whole tree)."""
    for entry in COMMANDS.values():
        importlib.import_module(entry.module)


_REFLOWED: weakref.WeakSet[Any] = weakref.WeakSet()  # commands whose help :func:`reflow_help` has rewritten


class LazyGroup(TyperGroup):
    """The root group: commands come from :data:`COMMANDS` and are built when first asked for.

    While the group prints its own help, a command not loaded yet is listed from its summary."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            if self._listing:
                return TyperCommand(cmd_name, help=COMMANDS[cmd_name].summary)
            importlib.import_module(COMMANDS[cmd_name].module)
            from typer.main import get_command

            from losslens.cli.app import app  # the Typer app the module registered on

            for name, command in getattr(get_command(app), "commands", {}).items():
                self.commands.setdefault(name, command)
        command = super().get_command(ctx, cmd_name)
        if command is not None and command not in _REFLOWED:
            reflow_help(command)
            _REFLOWED.add(command)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
