"""LaSOT: ``<class>/<class>-<n>/img/00000001.jpg``, ``groundtruth.txt`` (x,y,w,h per frame) and
one-line comma-separated 0/1 ``full_occlusion.txt`` and ``out_of_view.txt``. The benchmark's
train/test split is a list of sequence names (``training_set.txt`` / ``testing_set.txt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional, Union

import numpy as np

from asymtrack_ros.datasets.boxes import read_boxes
from asymtrack_ros.datasets.types import Sequence, flags, image_files

PathLike = Union[str, Path]


def read_lasot_sequence(folder: PathLike) -> Sequence:
    root = Path(folder)
    gt = root / "groundtruth.txt"
    if not gt.is_file():
        raise FileNotFoundError(f"{root}: no groundtruth.txt (not a LaSOT sequence folder)")
    boxes = read_boxes(gt)
    paths = image_files(root / "img")
    if len(paths) != len(boxes):
        raise ValueError(f"{root}: {len(boxes)} boxes for {len(paths)} frames")
    visible = np.ones(len(paths), bool)
    for name in ("full_occlusion.txt", "out_of_view.txt"):
        marks = flags(root / name, len(paths))
        if marks is not None:
            visible &= marks == 0
    return Sequence(root.name, paths, boxes, visible)


def lasot_sequences(root: PathLike, names: Optional[Iterable[str]] = None,
                    exclude: Iterable[str] = ()) -> List[Sequence]:
    """Every ``<class>/<class>-<n>`` under ``root`` (or only ``names``, e.g. from a split file)."""
    base = Path(root)
    skip = set(exclude)
    if names is not None:
        folders = [base / n.rsplit("-", 1)[0] / n for n in names]
    else:
        folders = sorted(p.parent for p in base.glob("*/*/groundtruth.txt"))
    out = [read_lasot_sequence(f) for f in folders if f.name not in skip]
    if not out:
        raise ValueError(f"no LaSOT sequence (<class>/<class>-N/groundtruth.txt) under {root}")
    return out


def read_split(path: PathLike) -> List[str]:
    """Sequence names of a LaSOT split file (one per line)."""
    return [n.strip() for n in Path(path).read_text().split() if n.strip()]
