"""asymtrack-prepare-real MANIFEST REPOS OUT: write the manifest's real sequences in OTB layout.

REPOS holds one snapshot per repository: a clone or only its git directory, named owner+name/repo,
owner+name, owner/name or name. Each sequence becomes OUT/<name>/img/0001.jpg... (only the frames
its ground truth covers, renumbered from 1) and OUT/<name>/groundtruth_rect.txt (x,y,w,h per line,
NaN rows kept; VOT polygons become their bounding rectangles). OUT/READY is written last.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from asymtrack_ros.datasets.boxes import format_boxes, parse_boxes
from asymtrack_ros.datasets.manifest import IMAGE_SUFFIXES, ManifestEntry, frame_range, load_manifest
from asymtrack_ros.datasets.sources import Source, find_repository, open_source


def frame_files(source: Source, folder: str) -> List[str]:
    return [n for n in source.list_folder(folder) if n.lower().endswith(IMAGE_SUFFIXES)]


def write_jpeg(data: bytes, name: str, target: Path) -> None:
    if name.lower().endswith((".jpg", ".jpeg")):
        target.write_bytes(data)
        return
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or not cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise OSError(f"cannot convert {name} to {target}")


def prepare_sequence(source: Source, entry: ManifestEntry, out: Path) -> int:
    boxes = parse_boxes(source.read(entry.ground_truth).decode("utf-8", "replace"))
    names = frame_files(source, entry.image_folder)
    indices = frame_range(entry, len(names), len(boxes))
    img = out / entry.name / "img"
    img.mkdir(parents=True, exist_ok=True)
    for number, index in enumerate(indices, start=1):
        name = names[index]
        write_jpeg(source.read(f"{entry.image_folder}/{name}"), name, img / f"{number:04d}.jpg")
    (out / entry.name / "groundtruth_rect.txt").write_text(format_boxes(boxes))
    return len(boxes)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asymtrack-prepare-real", description=__doc__.splitlines()[0])
    p.add_argument("manifest", help="data/real/sequences.json")
    p.add_argument("repos", help="folder of clones or git directories")
    p.add_argument("out", help="output folder (OTB layout)")
    p.add_argument("--only", nargs="*", default=None, help="sequence names to prepare (default: all)")
    p.add_argument("--split", choices=("all", "train", "heldout"), default="all")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    entries = [e for e in load_manifest(args.manifest)
               if (args.only is None or e.name in args.only) and args.split in ("all", e.split)]
    sources: Dict[str, Source] = {}
    failed = []
    if (out / "READY").exists():
        (out / "READY").unlink()
    for entry in entries:
        try:
            if entry.repository not in sources:
                sources[entry.repository] = open_source(find_repository(args.repos, entry.repository))
            count = prepare_sequence(sources[entry.repository], entry, out)
            print(f"{entry.name}: {count} frames ({entry.split})")
        except (OSError, ValueError) as exc:
            failed.append(entry.name)
            print(f"{entry.name}: FAILED: {exc}", file=sys.stderr)
    for source in sources.values():
        source.close()
    if failed:
        print(f"asymtrack-prepare-real: {len(failed)} failed: {' '.join(failed)}", file=sys.stderr)
        return 1
    (out / "READY").write_text(f"{len(entries)} sequences\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
