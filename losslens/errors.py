"""The one error type users see.

Every expected failure (bad file, bad spec, bad option) raises :class:`LossLensError`.
The CLI prints it as ``error: <where>: <what> — <hint>`` and exits non-zero; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LossLensError(Exception):
    """A user-facing error: where it happened, what went wrong, and how to fix it."""

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None):
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        """One line, without newlines, for terminals and the ``metric_runs.error`` column."""
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            text += f" — {self.hint}"
        return " ".join(text.split())


def did_you_mean(given: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'hessian'?"`` naming the choices closest to ``given`` (:func:`difflib.get_close_matches`:
    similarity ≥ 0.6, at most three), or ``""`` when none is close."""
    close = difflib.get_close_matches(str(given), sorted(set(map(str, choices))), n=3)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def unknown(kind: str, given: str, choices: Iterable[str], *, where: str | None = None, hint: str | None = None) -> LossLensError:
    """The error for a name that is not one of ``choices``, with the closest ones suggested:
    ``unknown metric 'hesian'; did you mean 'hessian'?``, and the choices listed as the hint (or ``hint``)."""
    names = sorted(set(map(str, choices)))
    return LossLensError(
        f"unknown {kind} {given!r}{did_you_mean(given, names)}", where=where, hint=hint or f"choose from: {', '.join(names)}"
    )
