"""The one sequence type every reader returns: frame paths, boxes and a per-frame visible flag."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

from asymtrack_ros.datasets.boxes import visible_mask
from asymtrack_ros.synthetic import LazyFrames, read_rgb


@dataclass
class Sequence:
    """``paths[i]`` shows ``boxes[i]`` (x, y, w, h pixels; NaN where unknown) when ``visible[i]``.

    ``visible`` is False where the box is NaN or empty and where the dataset marks the target as
    absent, fully occluded or out of view.
    """

    name: str
    paths: List[Path]
    boxes: np.ndarray
    visible: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if len(self.paths) != len(self.boxes):
            raise ValueError(f"{self.name}: {len(self.paths)} frames but {len(self.boxes)} boxes")
        valid = visible_mask(self.boxes)
        self.visible = valid if self.visible is None else valid & np.asarray(self.visible, bool)
        if self.visible.shape != (len(self.boxes),):
            raise ValueError(f"{self.name}: visible flags do not match the {len(self.boxes)} frames")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def frames(self) -> LazyFrames:
        return LazyFrames(self.paths)


@dataclass
class StillImage:
    """One photo and its object boxes (x, y, w, h pixels), e.g. from COCO."""

    path: Path
    boxes: np.ndarray
    labels: Optional[np.ndarray] = None
    normalized: bool = False  # YOLO labels: boxes in [0, 1], scaled once the image is read

    def load(self) -> tuple:
        """(RGB image, boxes in pixels)."""
        image = read_rgb(self.path)
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if self.normalized:
            h, w = image.shape[:2]
            boxes = boxes * np.array([w, h, w, h], dtype=np.float64)
        return image, boxes


def image_files(folder: Path, suffixes: tuple = (".jpg", ".jpeg", ".png", ".bmp")) -> List[Path]:
    """Image files of a folder in name order."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def flags(path: Path, count: int) -> Optional[np.ndarray]:
    """A per-frame 0/1 (or integer) label file, comma or newline separated; None when absent."""
    if not path.is_file():
        return None
    values = [v for v in path.read_text().replace(",", " ").split() if v]
    out = np.array([int(float(v)) for v in values], dtype=np.int64)
    if out.size != count:
        raise ValueError(f"{path}: {out.size} labels for {count} frames")
    return out
