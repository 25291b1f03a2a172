"""COCO stills: ``instances_*.json`` (boxes x,y,w,h in pixels) or YOLO txt labels
(``class cx cy w h`` normalised, one file per image under a ``labels`` folder beside ``images``).
Crowd annotations are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from asymtrack_ros.datasets.types import StillImage, image_files

PathLike = Union[str, Path]


def read_coco_json(annotations: PathLike, images: PathLike) -> List[StillImage]:
    """Images of a COCO instances file that have at least one non-crowd box."""
    data = json.loads(Path(annotations).read_text())
    boxes: Dict[int, List[List[float]]] = {}
    labels: Dict[int, List[int]] = {}
    for ann in data.get("annotations", []):
        if ann.get("iscrowd", 0):
            continue
        boxes.setdefault(ann["image_id"], []).append([float(v) for v in ann["bbox"]])
        labels.setdefault(ann["image_id"], []).append(int(ann.get("category_id", 0)))
    out = []
    for image in data.get("images", []):
        if image["id"] in boxes:
            out.append(StillImage(Path(images) / image["file_name"], np.array(boxes[image["id"]]),
                                  np.array(labels[image["id"]])))
    return out


def _labels_dir(images: Path) -> Path:
    parts = list(images.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts)
    return images


def read_yolo(images: PathLike, labels: Optional[PathLike] = None) -> List[StillImage]:
    """Images with a YOLO label file (``labels`` defaults to ``images`` with images -> labels)."""
    image_dir = Path(images)
    label_dir = Path(labels) if labels is not None else _labels_dir(image_dir)
    out = []
    for path in image_files(image_dir):
        txt = label_dir / f"{path.stem}.txt"
        if not txt.is_file():
            continue
        rows = [r.split() for r in txt.read_text().splitlines() if len(r.split()) == 5]
        if not rows:
            continue
        table = np.array(rows, dtype=np.float64)
        cx, cy, w, h = table[:, 1], table[:, 2], table[:, 3], table[:, 4]
        xywh = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
        out.append(StillImage(path, xywh, table[:, 0].astype(np.int64), normalized=True))
    return out


def coco_images(root: PathLike) -> List[StillImage]:
    """A COCO root: ``annotations/instances_*.json`` with ``<split>/`` or ``images/<split>/``
    image folders, or a YOLO tree (``images/<split>`` + ``labels/<split>``)."""
    base = Path(root)
    out: List[StillImage] = []
    for ann in sorted((base / "annotations").glob("instances_*.json")):
        split = ann.stem[len("instances_"):]
        folder = base / "images" / split if (base / "images" / split).is_dir() else base / split
        out.extend(read_coco_json(ann, folder))
    if not out:
        folders = sorted({p.parent for p in base.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                          and "images" in p.parts})
        for folder in folders:
            out.extend(read_yolo(folder))
    if not out:
        raise ValueError(f"no COCO annotations or YOLO labels with images under {root}")
    return out
