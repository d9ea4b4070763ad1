"""The one error type users see.

Every expected failure (bad file, bad spec, bad option) raises :class:`LossLensError`.
The CLI prints it as ``error: <where>: <what> — <hint>`` and exits non-zero; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


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
