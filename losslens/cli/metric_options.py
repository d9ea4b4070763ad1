"""``losslens compute`` options generated from the metrics' parameter dataclasses, when first needed.

Importing the metrics imports torch (seconds), so the options are not built when the CLI starts: the
``compute`` command builds them the first time Click asks it for its parameters (to parse its own
arguments, for ``--help``, for ``docs/cli.md``). Typer builds them from a generated signature, so they
get the types, ``Choice`` for ``Literal`` fields and ``--x/--no-x`` for flags like any hand-written option.

Each field is ``--METRIC.FIELD`` in its metric's help panel. The bare ``--FIELD`` sets the field of every
named metric that has it; it is listed in a panel of its own when several metrics share the name
(``--steps``) and accepted without a listing when one metric has it (``--k``, said in the epilog), so the
help names each option once. ``--METRIC.FIELD`` wins over the bare option.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from typing import Annotated, Any, get_args, get_origin

import typer
import typer.main
from rich.markup import escape
from typer.core import TyperCommand

from losslens.jobs.options import OptionField, literal_choices, optional_inner

SHARED_PANEL = "Options shared by several metrics"
META_KEY = "losslens.metric_options"


def _cli_type(tp: Any) -> Any:
    """The annotation Typer gets for a field: scalars and Literal as they are, sequences as comma-separated text."""
    tp = optional_inner(tp)
    if tp in (bool, int, float, str) or literal_choices(tp) is not None:
        return tp
    return str


def _metavar(tp: Any) -> str | None:
    tp = optional_inner(tp)
    if get_origin(tp) in (tuple, list):
        (item, *_) = get_args(tp) or (str,)
        return f"{getattr(item, '__name__', 'TEXT').upper()},..."
    return None


def _shown(default: Any) -> str | None:
    """The default as help shows it; None (the metric decides, its help says how) is not shown."""
    if default is None:
        return None
    if isinstance(default, tuple | list):
        return ",".join(map(str, default)) or "none"
    return str(default)


def _decls(flags: list[str], tp: Any) -> list[str]:
    """``--k``; for flags ``--esd/--no-esd`` and ``--hessian.esd/--hessian.no-esd``."""
    if _cli_type(tp) is not bool:
        return [f"--{f}" for f in flags]
    decls = []
    for f in flags:
        prefix, _, bare = f.rpartition(".")
        decls.append(f"--{f}/--{prefix + '.' if prefix else ''}no-{bare}")
    return decls


def _option(
    name: str, flags: list[str], tp: Any, help: str, default: str | None, panel: str, hidden: bool = False
) -> inspect.Parameter:
    """A keyword parameter whose default is None, so that an option not given leaves the metric's default."""
    cli_type = _cli_type(tp)
    shown = f"{help} [default: {default}]" if default is not None else help
    info = typer.Option(
        *_decls(flags, tp),
        help=escape(shown),
        show_default=False,
        metavar=_metavar(tp),
        rich_help_panel=panel,
        hidden=hidden,
    )
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[cli_type | None, info])


def _panel(metric: Any) -> str:
    requires = f", runs {', '.join(metric.requires)} first" if metric.requires else ""
    return f"{metric.name} ({metric.scope} scope{requires})"


def generate(taken: set[str]) -> tuple[list[Any], dict[str, str]]:
    """Click parameters for every metric field, and the :func:`build_params` key of each parameter name.

    ``taken`` holds the command's own option names (``--device``): a bare field flag never shadows one."""
    from losslens.jobs.options import option_fields
    from losslens.metrics.registry import all_metrics

    metrics = dict(sorted(all_metrics().items()))
    fields = {name: option_fields(metric) for name, metric in metrics.items()}
    by_flag: dict[str, list[OptionField]] = defaultdict(list)
    for rows in fields.values():
        for f in rows:
            by_flag[f.flag].append(f)
    params: list[inspect.Parameter] = []
    keys: dict[str, str] = {}
    for flag, rows in sorted(by_flag.items()):
        if f"--{flag}" in taken:
            continue
        types = {_cli_type(f.type) for f in rows}
        tp = rows[0].type if len(types) == 1 else str
        owners = ", ".join(f.metric for f in rows)
        helps = {f.help for f in rows}
        help = f"For {owners}: {rows[0].help}" if len(helps) == 1 else f"For {owners} (see each metric's panel)."
        defaults = {_shown(f.default) for f in rows}
        name = f"bare_{len(params)}"
        shown = defaults.pop() if len(defaults) == 1 else None
        params.append(_option(name, [flag], tp, help, shown, SHARED_PANEL, hidden=len(rows) == 1))
        keys[name] = flag
    for metric_name, rows in fields.items():
        for f in rows:
            name = f"field_{len(params)}"
            params.append(
                _option(name, [f"{metric_name}.{f.flag}"], f.type, f.help, _shown(f.default), _panel(metrics[metric_name]))
            )
            keys[name] = f"{metric_name}.{f.flag}"
    return _click_params(params), keys


def _click_params(params: list[inspect.Parameter]) -> list[Any]:
    """Let Typer turn a generated signature into Click parameters, as it does for a written function."""

    def options(**kwargs: Any) -> None:
        """Metric options."""

    options.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    options.__annotations__ = {p.name: p.annotation for p in params}
    sub = typer.Typer(add_completion=False, rich_markup_mode="rich")
    sub.command()(options)
    return list(typer.main.get_command(sub).params)


def epilog() -> str:
    """One line per metric: name, scope, what it needs first and its summary."""
    from losslens.metrics.registry import all_metrics

    lines = [
        "Metrics (each has a panel of options above). --METRIC.OPTION sets one metric's option; the bare --OPTION "
        "(--k 20) sets it for every named metric that has it, and --METRIC.OPTION wins over it:"
    ]
    for name, metric in sorted(all_metrics().items()):
        req = f"; runs {', '.join(metric.requires)} first" if metric.requires else ""
        lines.append(f"{escape(name)} ({metric.scope} scope{req}): {escape(metric.summary)}")
    return "\n\n".join(lines)


def print_metric_panels(ctx: Any, params: list[Any], epilog: str) -> None:
    """One panel per metric (and one of the shared options), as Typer draws its own, but with each option's
    names stacked in a column that is never cut (it folds only below ~40 columns) and the type and help
    wrapped beside them; then the epilog. Written here because Typer's table has no setting for it."""
    from rich.console import Console
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text
    from typer import rich_utils

    console = Console(width=rich_utils.MAX_WIDTH, force_terminal=rich_utils.FORCE_TERMINAL, highlight=False)
    panels: dict[str, list[Any]] = defaultdict(list)
    for param in params:
        if not param.hidden:
            panels[param.rich_help_panel].append(param)
    for title, rows in panels.items():
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(no_wrap=True, overflow="fold", style=rich_utils.STYLE_OPTION)
        table.add_column(ratio=1)
        for param in rows:
            kind = "" if param.is_flag else param.display_type_rich(ctx=ctx) or ""
            about = Text.assemble((kind + " ", rich_utils.STYLE_TYPES) if kind else "", Text.from_markup(param.help or ""))
            table.add_row("\n".join([*param.opts, *param.secondary_opts]), about)
        console.print(Panel(table, border_style=rich_utils.STYLE_OPTIONS_PANEL_BORDER, title=title, title_align="left"))
    if epilog:
        console.print(Padding(Text.from_markup(epilog), 1))


class MetricOptionsCommand(TyperCommand):
    """A Typer command whose metric options (and epilog) are generated the first time they are needed.

    The values given on the command line reach the callback as ``ctx.meta[META_KEY]``: a list of
    ``(key, value)`` pairs for :func:`losslens.jobs.options.build_params`."""

    _generated: tuple[list[Any], dict[str, str]] | None = None
    _epilog: str | None = None
    _own_help = False  # while Typer formats the help of the command's own options

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Typer's help for the command's own options, then the metric panels of :func:`print_metric_panels`
        and the epilog. Typer's option table shortens long names (``--connectivity.p…``) to fit 80 columns;
        those panels keep every name whole."""
        epilog = self.epilog
        self._own_help, self._epilog = True, ""
        try:
            super().format_help(ctx, formatter)
        finally:
            self._own_help, self._epilog = False, epilog
        print_metric_panels(ctx, self._metric_params()[0], epilog or "")

    @property
    def epilog(self) -> str | None:
        if self._epilog is None:
            self._epilog = epilog()
        return self._epilog

    @epilog.setter
    def epilog(self, value: str | None) -> None:
        self._epilog = value

    def _metric_params(self) -> tuple[list[Any], dict[str, str]]:
        if self._generated is None:
            taken = {opt for p in self.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
            self._generated = generate(taken)
        return self._generated

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        if self._own_help:
            return params
        extra, _ = self._metric_params()
        help_option = self.get_help_option(ctx)
        if params and params[-1] is help_option:
            return [*params[:-1], *extra, help_option]
        return [*params, *extra]

    def take_metric_options(self, ctx: Any) -> list[tuple[str, Any]]:
        """Remove the metric options from ``ctx.params`` (the callback does not declare them) and
        return those given, as ``(key, value)`` pairs."""
        _, keys = self._metric_params()
        given = [(keys[name], ctx.params.pop(name)) for name in list(ctx.params) if name in keys]
        return [(k, v) for k, v in given if v is not None]

    def invoke(self, ctx: Any) -> Any:
        ctx.meta[META_KEY] = self.take_metric_options(ctx)
        return super().invoke(ctx)


def given_options(ctx: typer.Context) -> list[tuple[str, Any]]:
    """The metric options of this invocation, for :func:`losslens.jobs.options.build_params`."""
    return list(ctx.meta.get(META_KEY, []))


__all__ = ["MetricOptionsCommand", "given_options"]
