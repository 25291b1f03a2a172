"""GOT-10k: ``<split>/list.txt`` naming sequence folders, each with ``00000001.jpg``...,
``groundtruth.txt``, and per-frame ``absence.label`` (1 = absent) and ``cover.label`` (0-8,
0 = fully occluded). The test split's ground truth has only the first row; such a sequence keeps
its other frames as not visible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Union

import numpy as np

from asymtrack_ros.datasets.boxes import read_boxes
from asymtrack_ros.datasets.types import Sequence, flags, image_files

PathLike = Union[str, Path]


def read_got10k_sequence(folder: PathLike) -> Sequence:
    root = Path(folder)
    gt = root / "groundtruth.txt"
    if not gt.is_file():
        raise FileNotFoundError(f"{root}: no groundtruth.txt (not a GOT-10k sequence folder)")
    paths = image_files(root)
    boxes = read_boxes(gt)
    if len(boxes) < len(paths):
        boxes = np.vstack([boxes, np.full((len(paths) - len(boxes), 4), np.nan)])
    if len(boxes) != len(paths):
        raise ValueError(f"{root}: {len(boxes)} boxes for {len(paths)} frames")
    visible = np.ones(len(paths), bool)
    absence = flags(root / "absence.label", len(paths))
    if absence is not None:
        visible &= absence == 0
    cover = flags(root / "cover.label", len(paths))
    if cover is not None:
        visible &= cover > 0
    return Sequence(root.name, paths, boxes, visible)


def got10k_sequences(root: PathLike, exclude: Iterable[str] = ()) -> List[Sequence]:
    """The sequences of ``list.txt`` under ``root`` (or every folder with groundtruth.txt);
    ``root`` may also be one sequence folder."""
    base = Path(root)
    skip = set(exclude)
    if (base / "groundtruth.txt").is_file():
        return [read_got10k_sequence(base)]
    listing = base / "list.txt"
    if listing.is_file():
        folders = [base / n.strip() for n in listing.read_text().split() if n.strip()]
    else:
        folders = sorted(p.parent for p in base.rglob("groundtruth.txt"))
    out = [read_got10k_sequence(f) for f in folders if f.name not in skip]
    if not out:
        raise ValueError(f"no GOT-10k sequence (folder with groundtruth.txt) under {root}")
    return out
