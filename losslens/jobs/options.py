"""Metric parameters from the command line: ``--k 10``, ``--landscape.steps 41``, ``--no-flag``.

Every metric declares its options as a dataclass. Unqualified options go to every selected
metric that has a field of that name; ``--metric.field`` targets one metric.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal, get_args, get_origin

from losslens.errors import LossLensError
from losslens.metrics.registry import Metric


def field_help(f: dataclasses.Field) -> str:
    return str(f.metadata.get("help", ""))


def _literal_choices(tp: Any) -> tuple[Any, ...] | None:
    return get_args(tp) if get_origin(tp) is Literal else None


def convert(value: Any, tp: Any, name: str) -> Any:
    """Turn a command-line string into the field's declared type."""
    if not isinstance(value, str):
        return value
    origin = get_origin(tp)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in get_args(tp) if a is not type(None)]
        if value.lower() in ("none", "null", ""):
            return None
        return convert(value, args[0], name)
    choices = _literal_choices(tp)
    if choices is not None:
        for choice in choices:
            if str(choice) == value:
                return choice
        raise LossLensError(f"--{name}: {value!r} is not one of {', '.join(map(str, choices))}", where="compute")
    if origin in (tuple, list):
        (inner, *_) = get_args(tp) or (str,)
        items = [convert(v.strip(), inner, name) for v in value.split(",") if v.strip()]
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
        raise LossLensError(f"--{name}: {value!r} is not a valid {tp.__name__}", where="compute") from None
    return value


def parse_tokens(tokens: list[str]) -> tuple[list[str], list[tuple[str, str | None]]]:
    """Split ``hessian landscape --k 10 --flag --x=1`` into metric names and raw options."""
    names: list[str] = []
    options: list[tuple[str, str | None]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("--"):
            key = tok[2:]
            if "=" in key:
                key, value = key.split("=", 1)
                options.append((key, value))
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                options.append((key, tokens[i + 1]))
                i += 1
            else:
                options.append((key, None))
        elif options:
            raise LossLensError(f"unexpected argument {tok!r}", where="compute", hint="put metric names before options")
        else:
            names.append(tok)
        i += 1
    return names, options


def build_params(metrics: list[Metric], options: list[tuple[str, str | None]]) -> dict[str, Any]:
    """Params instance per metric name; every option must be used by at least one metric."""
    values: dict[str, dict[str, Any]] = {m.name: {} for m in metrics}
    hints = typing.get_type_hints
    for raw_key, raw_value in options:
        target, key = raw_key.split(".", 1) if "." in raw_key else (None, raw_key)
        negate = False
        used = False
        for metric in metrics:
            if target is not None and metric.name != target:
                continue
            fields = {f.name.replace("_", "-"): f for f in dataclasses.fields(metric.params)}
            lookup = key
            if lookup not in fields and lookup.startswith("no-") and lookup[3:] in fields:
                lookup, negate = lookup[3:], True
            if lookup not in fields:
                continue
            f = fields[lookup]
            tp = hints(metric.params)[f.name]
            if raw_value is None:
                if tp is not bool:
                    raise LossLensError(f"--{raw_key} needs a value", where="compute")
                value: Any = not negate
            else:
                value = convert(raw_value, tp, raw_key)
            values[metric.name][f.name] = value
            used = True
        if not used:
            known = sorted({f"--{f.name.replace('_', '-')}" for m in metrics for f in dataclasses.fields(m.params)})
            raise LossLensError(
                f"--{raw_key} is not an option of {', '.join(m.name for m in metrics)}",
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


def describe_options(metric: Metric) -> list[tuple[str, str, str]]:
    """(flag, default, help) for each field, for ``--help``."""
    rows = []
    type_hints = typing.get_type_hints(metric.params)
    for f in dataclasses.fields(metric.params):
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        tp = type_hints[f.name]
        choices = _literal_choices(tp)
        helptext = field_help(f) + (f" [{'|'.join(map(str, choices))}]" if choices else "")
        rows.append((f"--{f.name.replace('_', '-')}", repr(default), helptext))
    return rows
