"""Ground-truth box files: `x,y,w,h` per frame, comma, tab or space separated, NaN rows kept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Union

import numpy as np

_SEPARATORS = re.compile(r"[,\t ;]+")


def parse_boxes(text: str) -> np.ndarray:
    """(N, 4) float64 boxes; a row that is NaN, empty of numbers or not 4 wide becomes NaN."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    boxes = np.full((len(lines), 4), np.nan)
    for i, line in enumerate(lines):
        fields = [f for f in _SEPARATORS.split(line.strip()) if f]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            continue
        if len(values) == 4:
            boxes[i] = values
        elif len(values) == 8:
            # VOT polygon: its axis-aligned bounding rectangle.
            xs, ys = values[0::2], values[1::2]
            boxes[i] = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    return boxes


def read_boxes(path: Union[str, Path]) -> np.ndarray:
    return parse_boxes(Path(path).read_text())


def format_boxes(boxes: np.ndarray) -> str:
    """One `x,y,w,h` line per frame; NaN rows as `NaN,NaN,NaN,NaN`; integers without decimals."""
    def cell(v: float) -> str:
        if not np.isfinite(v):
            return "NaN"
        return str(int(v)) if float(v).is_integer() else f"{v:.2f}"
    return "".join(",".join(cell(v) for v in row) + "\n" for row in np.asarray(boxes, dtype=np.float64))


def visible_mask(boxes: np.ndarray) -> np.ndarray:
    """A frame shows the target when its box is finite with positive width and height."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
