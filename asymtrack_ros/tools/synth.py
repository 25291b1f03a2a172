"""asymtrack-synth OUT_DIR --count N --seed S: write synthetic sequences in GOT-10k layout.

Sequence i uses seed S + i; with the default options each has one full occlusion and every other
one also leaves the frame and comes back. Writes OUT_DIR/list.txt with the sequence names.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from asymtrack_ros.synthetic import Segment, make_sequence, write_got10k


def parse_size(text: str) -> Tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 320x240, got {text!r}") from None
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"frame size must be at least 32x32, got {text!r}")
    return h, w


def events(index: int, length: int, occlusions: bool, exits: bool) -> Tuple[List[Segment], List[Segment]]:
    occ = [(int(length * 0.35), int(length * 0.35) + max(1, length // 8))] if occlusions else []
    out = [(int(length * 0.65), int(length * 0.85))] if exits and index % 2 == 1 else []
    return occ, out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asymtrack-synth", description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--length", type=int, default=100, help="frames per sequence")
    p.add_argument("--size", type=parse_size, default=(240, 320), help="WIDTHxHEIGHT (default 320x240)")
    p.add_argument("--no-occlusions", action="store_true")
    p.add_argument("--no-exits", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.count < 1 or args.length < 2:
        parser.error("--count must be >= 1 and --length >= 2")
    out = Path(args.out_dir)
    names = []
    try:
        for i in range(args.count):
            occ, exits = events(i, args.length, not args.no_occlusions, not args.no_exits)
            seq = make_sequence(args.seed + i, args.length, args.size, occlusions=occ, exits=exits)
            name = f"synthetic_{args.seed + i:06d}"
            write_got10k(seq, out / name)
            names.append(name)
        (out / "list.txt").write_text("\n".join(names) + "\n")
    except (OSError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(names)} sequences of {args.length} frames to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
