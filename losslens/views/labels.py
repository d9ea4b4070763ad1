"""Point labels that never overlap: a greedy placement in pixels, done where the rows are read.

Vega-Lite draws a text mark where its datum says and offers no collision avoidance for text marks (Vega's
``label`` transform is not exposed), so two settings at one point of a scatter plot wrote their names on top
of each other. The charts with point labels (the taxonomy's phase and CKA plots, the MDS map of the modes)
therefore map each point to pixels the way their own scales do and call :func:`place`: each label goes to
the first of its slots (above, below, right, left …) whose box meets no label placed before it and, when
possible, no other point's mark; points closer than :data:`COINCIDENT` pixels share one label listing their
names ("β=1, β=10"), and a label with no free slot joins the label that blocks it. The text width is
estimated from the character count (:data:`CHAR_WIDTH`, on the wide side of sans-serif fonts), so the
estimate errs towards separating. The spec draws one text layer per slot (:func:`text_layers`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

CHAR_WIDTH = 0.62  # estimated advance per character, in units of the font size
LINE_HEIGHT = 1.25  # box height per unit of font size
COINCIDENT = 4.0  # px: points this close are one place and get one label
GAP = 2.0  # px kept free between two labels
MAX_NAMES = 3  # names one label lists before "+N more"
CELL = 64.0  # px: side of the grid cells that index boxes

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in px


@dataclass(frozen=True)
class Slot:
    """Where a label may go: its text anchored ``dx``, ``dy`` px from the point (the text's vertical centre),
    aligned ``align`` on that anchor."""

    name: str
    dx: float
    dy: float
    align: Literal["center", "left", "right"] = "center"


def around(gap_y: float, gap_x: float) -> tuple[Slot, ...]:
    """Above, below, right and left of a point, in that order of preference: the text's centre ``gap_y`` px
    above or below it, or its near end ``gap_x`` px beside it."""
    return (
        Slot("above", 0.0, -gap_y),
        Slot("below", 0.0, gap_y),
        Slot("right", gap_x, 0.0, "left"),
        Slot("left", -gap_x, 0.0, "right"),
    )


def text_width(text: str, font_size: float) -> float:
    """Estimated width in px of ``text`` at ``font_size`` px."""
    return len(text) * font_size * CHAR_WIDTH


def joined(names: Sequence[str]) -> str:
    """``a, b, c`` or ``a, b, c +2 more``: the names one label shows."""
    shown = ", ".join(names[:MAX_NAMES])
    return shown if len(names) <= MAX_NAMES else f"{shown} +{len(names) - MAX_NAMES} more"


def text_layers(slots: Sequence[Slot], label: str, slot: str, font_size: float, **mark: Any) -> list[dict[str, Any]]:
    """One Vega-Lite text layer per slot, each drawing the rows whose ``slot`` field names it, with the text
    of field ``label`` (the caller adds the encoding of x and y)."""
    return [
        {
            "mark": {
                "type": "text",
                "dx": s.dx,
                "dy": s.dy,
                "align": s.align,
                "baseline": "middle",
                "fontSize": font_size,
                **mark,
            },
            "transform": [{"filter": f"datum.{slot} === '{s.name}'"}],
            "encoding": {"text": {"field": label}},
        }
        for s in slots
    ]


@dataclass
class _Label:
    x: float  # anchor, px
    y: float
    align: str
    names: list[str]
    owner: int  # index of the point that carries the text; -1 for fixed text
    slot: str
    box: Box


class _Grid:
    """Boxes indexed by the grid cells they cover, to find the ones a box meets without a full scan."""

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], set[int]] = {}

    @staticmethod
    def covered(box: Box) -> list[tuple[int, int]]:
        return [
            (cx, cy)
            for cx in range(math.floor(box[0] / CELL), math.floor(box[2] / CELL) + 1)
            for cy in range(math.floor(box[1] / CELL), math.floor(box[3] / CELL) + 1)
        ]

    def add(self, k: int, box: Box) -> None:
        for cell in self.covered(box):
            self.cells.setdefault(cell, set()).add(k)

    def near(self, box: Box) -> set[int]:
        return {k for cell in self.covered(box) for k in self.cells.get(cell, ())}


def _meet(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place(
    points: Sequence[tuple[float, float, str] | None],
    slots: Sequence[Slot],
    font_size: float,
    marker: float = 0.0,
    taken: Sequence[Box] = (),
) -> list[tuple[str, str]]:
    """Non-overlapping labels for ``points`` (``(x px, y px, name)``; None for a point not drawn).

    ``slots``: where a label may go, in order of preference (:func:`around`). ``marker``: the half-width in
    px of the mark drawn at each point; a slot over another point's mark is taken only when every slot free
    of labels is over one. ``taken``: boxes already written on (other text of the chart, such as a threshold
    line's label), which no label may cover. Returns one ``(text, slot name)`` per point: the text to draw in
    that slot, or ``("", "")`` for a point whose name is shown in another point's label.
    """
    height = font_size * LINE_HEIGHT
    placed: list[_Label] = []
    boxes, marks, anchors = _Grid(), _Grid(), _Grid()

    def box_of(x: float, y: float, align: str, text: str) -> Box:
        w = text_width(text, font_size)
        x0 = x - w / 2 if align == "center" else x if align == "left" else x - w
        return (x0 - GAP / 2, y - height / 2 - GAP / 2, x0 + w + GAP / 2, y + height / 2 + GAP / 2)

    def put(label: _Label) -> int:
        placed.append(label)
        boxes.add(len(placed) - 1, label.box)
        return len(placed) - 1

    def blocking(box: Box) -> list[int]:
        return sorted(k for k in boxes.near(box) if _meet(box, placed[k].box))

    def over_mark(box: Box, own: int) -> bool:
        return any(
            j != own and _meet(box, (points[j][0] - marker, points[j][1] - marker, points[j][0] + marker, points[j][1] + marker))  # type: ignore[index]
            for j in marks.near(box)
        )

    for box in taken:  # fixed text: blocks like a label, but takes no names
        put(_Label((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, "center", [], -1, "", box))
    if marker > 0:
        for j, p in enumerate(points):
            if p is not None:
                marks.add(j, (p[0] - marker, p[1] - marker, p[0] + marker, p[1] + marker))

    order = sorted((i for i, p in enumerate(points) if p is not None), key=lambda i: (points[i][1], points[i][0]))  # type: ignore[index]
    for i in order:
        x, y, name = points[i]  # type: ignore[misc]
        here = (x - COINCIDENT, y - COINCIDENT, x + COINCIDENT, y + COINCIDENT)
        near = next(
            (k for k in sorted(anchors.near(here)) if math.dist((x, y), _owner_xy(points, placed[k])) <= COINCIDENT), None
        )
        if near is None:
            options = [(s, box_of(x + s.dx, y + s.dy, s.align, name)) for s in slots]
            free = [(s, box) for s, box in options if not blocking(box)]
            clear = [(s, box) for s, box in free if not over_mark(box, i)]
            if free:
                s, box = (clear or free)[0]
                anchors.add(put(_Label(x + s.dx, y + s.dy, s.align, [name], i, s.name, box)), here)
                continue
            # every slot is blocked: join a label in the way (fixed text takes no names)
            near = next((k for _, box in options for k in blocking(box) if placed[k].owner >= 0), None)
            if near is None:  # only fixed text in the way: write over it, in the first slot
                s, box = options[0]
                anchors.add(put(_Label(x + s.dx, y + s.dy, s.align, [name], i, s.name, box)), here)
                continue
        label = placed[near]  # share the label of the point at the same place, or of the label in the way
        label.names.append(name)
        grown = box_of(label.x, label.y, label.align, joined(label.names))
        if grown != label.box:
            label.box = grown
            boxes.add(near, grown)
    out: list[tuple[str, str]] = [("", "")] * len(points)
    for label in placed:
        if label.owner >= 0:
            out[label.owner] = (joined(label.names), label.slot)
    return out


def _owner_xy(points: Sequence[tuple[float, float, str] | None], label: _Label) -> tuple[float, float]:
    p = points[label.owner]
    assert p is not None
    return (p[0], p[1])
