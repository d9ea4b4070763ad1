"""Metric parameters from command-line values: ``k=10`` for every metric with a field ``k``,
``landscape.steps=41`` for one.

Every metric declares its options as a dataclass. Unqualified options go to every selected metric
that has a field of that name; ``metric.field`` targets one metric and wins over the unqualified one.
This module knows no command-line library: ``losslens/cli/metric_options.py`` turns the fields into
Click options, and library callers pass values directly.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from losslens.errors import LossLensError, did_you_mean, unknown

if TYPE_CHECKING:
    from losslens.metrics.registry import Metric


@dataclass(frozen=True)
class OptionField:
    """One field of a metric's parameters, as the command line shows it."""

    metric: str
    name: str  # the dataclass field name
    flag: str  # the name on the command line: underscores become dashes
    type: Any  # the field's resolved annotation
    default: Any
    help: str


def option_fields(metric: Metric) -> list[OptionField]:
    """The fields of ``metric.params`` in declaration order, with resolved types and defaults."""
    hints = typing.get_type_hints(metric.params)
    rows = []
    for f in dataclasses.fields(metric.params):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        rows.append(
            OptionField(metric.name, f.name, f.name.replace("_", "-"), hints[f.name], default, str(f.metadata.get("help", "")))
        )
    return rows


def literal_choices(tp: Any) -> tuple[Any, ...] | None:
    """The values of ``Literal[...]``, else None."""
    return get_args(tp) if get_origin(tp) is Literal else None


def optional_inner(tp: Any) -> Any:
    """``X`` for ``X | None`` (or ``Optional[X]``), else ``tp`` itself."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def convert(value: Any, tp: Any, flag: str) -> Any:
    """Turn a command-line string into the field's declared type; other values pass through.

    Raises LossLensError naming ``flag`` (the option as typed: ``--hessian.k``, ``-X window``) when the
    string is not a value of that type."""
    if not isinstance(value, str):
        return value
    inner = optional_inner(tp)
    if inner is not tp:
        return None if value.lower() in ("none", "null", "") else convert(value, inner, flag)
    choices = literal_choices(tp)
    if choices is not None:
        for choice in choices:
            if str(choice) == value:
                return choice
        raise unknown("value", value, map(str, choices), where=f"compute {flag}")
    origin = get_origin(tp)
    if origin in (tuple, list):
        (item, *_) = get_args(tp) or (str,)
        items = [convert(v.strip(), item, flag) for v in value.split(",") if v.strip()]
        return tuple(items) if origin is tuple else items
    try:
        if tp is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if tp in (int, float, str):
            return tp(value)
    except ValueError:
        raise LossLensError(f"{flag}: {value!r} is not a valid {tp.__name__}", where="compute") from None
    return value


def _lookup(fields: dict[str, OptionField], flag: str, raw: Any) -> tuple[OptionField | None, Any]:
    """The field a flag names and its value: ``(flag, None)`` switches a bool field on, ``(no-flag, None)`` off.

    Raises LossLensError when a field that is not a bool is given no value."""
    if flag in fields:
        field = fields[flag]
        if raw is None:
            if optional_inner(field.type) is not bool:
                raise LossLensError(f"--{flag} needs a value", where="compute")
            return field, True
        return field, raw
    negated = fields.get(flag.removeprefix("no-")) if flag.startswith("no-") else None
    if negated is not None and optional_inner(negated.type) is bool and raw is None:
        return negated, False
    return None, raw


def build_params(metrics: list[Metric], options: list[tuple[str, Any]]) -> dict[str, Any]:
    """Params instance per metric name from ``(key, value)`` pairs.

    ``key`` is a flag name (``batch-size``) or ``metric.flag``; values are typed already or strings
    (converted with :func:`convert`); a bool flag without a value (``("esd", None)``) is on, and
    ``("no-esd", None)`` off. A qualified key wins over a bare one; otherwise the later pair wins.
    Raises LossLensError when an option is not a field of any of ``metrics``, or a value does not fit."""
    values: dict[str, dict[str, Any]] = {m.name: {} for m in metrics}
    fields = {m.name: {f.flag: f for f in option_fields(m)} for m in metrics}
    for key, raw in sorted(options, key=lambda kv: "." in kv[0]):  # stable: bare keys first
        target, flag = key.split(".", 1) if "." in key else (None, key)
        used = False
        for metric in metrics:
            if target is not None and metric.name != target:
                continue
            field, value = _lookup(fields[metric.name], flag, raw)
            if field is None:
                continue
            values[metric.name][field.name] = convert(value, field.type, f"--{key}")
            used = True
        if not used:
            known = sorted({f"--{flag}" for by_flag in fields.values() for flag in by_flag})
            raise LossLensError(
                f"--{key} is not an option of {', '.join(m.name for m in metrics)}{did_you_mean(f'--{key}', known)}",
                where="compute",
                hint=f"options: {', '.join(known) or 'none'} (see losslens compute --help)",
            )
    out = {}
    for metric in metrics:
        try:
            out[metric.name] = metric.params(**values[metric.name])
        except (TypeError, ValueError) as exc:
            raise LossLensError(f"{metric.name}: {exc}", where="compute") from None
    return out
