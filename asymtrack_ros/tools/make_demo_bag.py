"""python -m asymtrack_ros.tools.make_demo_bag [OUT]: write the demo bag (seeded, a second or two)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from asymtrack_ros import demo_data


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m asymtrack_ros.tools.make_demo_bag",
        description="Write the demo rosbag2: a seeded synthetic sequence with /ground_truth and /init_box.")
    parser.add_argument("out", nargs="?", help=f"bag folder (default: {demo_data.default_bag_path()})")
    parser.add_argument("--seed", type=int, default=demo_data.SEED)
    parser.add_argument("--frames", type=int, default=demo_data.FRAMES)
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--raw", action="store_true",
                        help="sensor_msgs/Image rgb8 on /camera/image_raw instead of JPEG CompressedImage")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out) if args.out else demo_data.default_bag_path()
    from asymtrack_ros.bag import BagWriteError

    try:
        path = demo_data.write_demo_bag(out, args.seed, args.frames, args.storage, args.raw,
                                        overwrite=args.overwrite)
    except (BagWriteError, ValueError, OSError) as exc:
        print(f"make_demo_bag: error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in path.iterdir()) / 1e6
    print(f"wrote {path} ({args.frames} frames, {size:.1f} MB): image topic "
          f"{demo_data.image_topic(args.raw)}, {demo_data.GT_TOPIC}, {demo_data.INIT_TOPIC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
