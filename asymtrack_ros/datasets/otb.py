"""OTB / DTB70 / prepared-real layout (``<seq>/img/*.jpg`` + ``groundtruth_rect.txt``) and UAV123.

UAV123 keeps one image folder per video (``data_seq/UAV123/<video>/000001.jpg``) and one
annotation file per (sub-)sequence (``anno/UAV123/<video>[_N].txt``); a sub-sequence covers the
frames ``first..last`` of its video's folder, given by the benchmark's configuration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

from asymtrack_ros.datasets.boxes import read_boxes
from asymtrack_ros.datasets.types import Sequence, image_files

PathLike = Union[str, Path]
_GT_NAMES = ("groundtruth_rect.txt", "groundtruth.txt")


def _ground_truth(folder: Path) -> Optional[Path]:
    for name in _GT_NAMES:
        if (folder / name).is_file():
            return folder / name
    numbered = sorted(folder.glob("groundtruth_rect.*.txt"))  # OTB's two-target videos
    return numbered[0] if numbered else None


def read_otb(folder: PathLike, first: int = 1) -> Sequence:
    """One OTB sequence folder; frames from ``first`` (1-based) on, one per ground-truth row."""
    root = Path(folder)
    gt = _ground_truth(root)
    if gt is None:
        raise FileNotFoundError(f"{root}: no groundtruth_rect.txt")
    images = root / "img" if (root / "img").is_dir() else root
    paths = image_files(images)
    boxes = read_boxes(gt)
    if first < 1 or first - 1 + len(boxes) > len(paths):
        raise ValueError(f"{root}: {len(boxes)} boxes from frame {first} but {len(paths)} images")
    return Sequence(root.name, paths[first - 1:first - 1 + len(boxes)], boxes)


def otb_sequences(root: PathLike, names: Optional[Iterable[str]] = None,
                  exclude: Iterable[str] = ()) -> List[Sequence]:
    """Every sequence folder under ``root`` (or only ``names``), less ``exclude``, in name order."""
    base = Path(root)
    skip = set(exclude)
    if names is not None:
        folders = [base / n for n in names]
    else:
        folders = sorted(p for p in base.iterdir() if p.is_dir() and _ground_truth(p) is not None)
    out = [read_otb(f) for f in folders if f.name not in skip]
    if not out:
        raise ValueError(f"no OTB-layout sequence (folder with groundtruth_rect.txt) under {root}")
    return out


def read_uav123(root: PathLike, name: str, frames: Optional[Tuple[int, int]] = None,
                subset: str = "UAV123") -> Sequence:
    """Sub-sequence ``name`` (e.g. ``person12_1``) of a UAV123-layout root.

    ``frames`` = (first, last), 1-based in the video folder; without it a whole video's
    annotation covers its folder from frame 1, and a ``_N`` sub-sequence must be given its range.
    """
    base = Path(root)
    anno = base / "anno" / subset / f"{name}.txt"
    if not anno.is_file():
        raise FileNotFoundError(f"{anno}: no such annotation")
    boxes = read_boxes(anno)
    folder = base / "data_seq" / subset / name
    if not folder.is_dir():
        video = re.sub(r"_\d+$", "", name)
        folder = base / "data_seq" / subset / video
        if frames is None and video != name:
            raise ValueError(f"{name}: a sub-sequence of {video}; pass its frame range (first, last)")
    paths = image_files(folder)
    first, last = frames if frames is not None else (1, len(boxes))
    if last - first + 1 != len(boxes) or first < 1 or last > len(paths):
        raise ValueError(f"{name}: frames {first}..{last} of {len(paths)} do not fit {len(boxes)} boxes")
    return Sequence(name, paths[first - 1:last], boxes)


def uav123_sequences(root: PathLike, ranges: Optional[Dict[str, Tuple[int, int]]] = None,
                     subset: str = "UAV123", exclude: Iterable[str] = ()) -> List[Sequence]:
    """Every annotated sequence of a UAV123-layout root; ``ranges`` gives sub-sequence frames."""
    ranges = ranges or {}
    skip = set(exclude)
    names = sorted(p.stem for p in (Path(root) / "anno" / subset).glob("*.txt"))
    out = [read_uav123(root, n, ranges.get(n), subset) for n in names if n not in skip]
    if not out:
        raise ValueError(f"no UAV123 annotation under {Path(root) / 'anno' / subset}")
    return out
