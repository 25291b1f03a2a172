"""The real-sequence manifest (data/real/sequences.json): where each sequence lies and its split."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    repository: str
    image_folder: str
    ground_truth: str
    first: Optional[int]
    last: Optional[int]
    split: str

    @property
    def heldout(self) -> bool:
        return self.split == "heldout"


def load_manifest(path: Union[str, Path]) -> List[ManifestEntry]:
    data = json.loads(Path(path).read_text())
    entries = []
    for item in data["sequences"]:
        entries.append(ManifestEntry(
            name=item["name"], repository=item["repository"], image_folder=item["image_folder"],
            ground_truth=item["ground_truth"], first=item.get("first"), last=item.get("last"),
            split=item.get("split", "train")))
    return entries


def heldout_names(path: Union[str, Path]) -> List[str]:
    return [e.name for e in load_manifest(path) if e.heldout]


def frame_range(entry: ManifestEntry, frames_in_folder: int, gt_rows: int) -> range:
    """0-based indices into the sorted image folder that the ground truth covers, one per row.

    `first`/`last` null mean the folder's start/end; the range must have as many frames as the
    ground truth has rows, or the pairing of boxes to frames is unknown.
    """
    first = entry.first or 1
    last = entry.last or (first + gt_rows - 1 if entry.first else frames_in_folder)
    if last - first + 1 != gt_rows:
        raise ValueError(f"{entry.name}: frames {first}..{last} ({last - first + 1}) but the ground truth "
                         f"has {gt_rows} rows")
    if last > frames_in_folder:
        raise ValueError(f"{entry.name}: frame {last} asked, folder has {frames_in_folder}")
    return range(first - 1, last)


def find_manifest() -> Optional[Path]:
    """The package's data/real/sequences.json (checkout, colcon share or pip data files)."""
    from asymtrack_ros.packaged import share_dirs

    for folder in share_dirs():
        path = folder / "data" / "real" / "sequences.json"
        if path.is_file():
            return path
    return None
