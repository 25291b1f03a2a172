"""asymtrack-replay BAG --image-topic T --init x,y,w,h[@stamp_ns]: track through a rosbag2 offline.

Reads MCAP or sqlite3 bags with ``rosbags`` (no ROS install needed), runs the tracker on every
frame in order (deterministic, not real time) and writes vision_msgs/Detection2DArray on
``/tracks`` and TrackStatus on ``/track_status`` with the images' stamps into an output bag, plus
an optional CSV, annotated video and image strip. Exit code 2 on any error; on a damaged or
truncated bag, what was processed before the damage is kept in every output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from asymtrack_ros.bag import BagError, BagReader, BagWriteError
from asymtrack_ros.bag.replay import (
    GT_TOPIC,
    IMAGE_TYPES,
    Outputs,
    default_out,
    ground_truth,
    init_from_topic,
    parse_init,
    pick_image_topic,
    replay_bag,
)
from asymtrack_ros.bag.report import format_summary
from asymtrack_ros.cli import add_model_arguments, open_backend_from_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asymtrack-replay", description=__doc__.split("\n\n")[0])
    p.add_argument("bag", help="rosbag2 folder, or a single .mcap / .db3 file")
    p.add_argument("--image-topic", help="sensor_msgs/Image or CompressedImage topic (default: the only one)")
    init = p.add_mutually_exclusive_group()
    init.add_argument("--init", help="x,y,w,h in pixels, optionally @stamp_ns of the frame it was drawn on "
                                     "(default frame: the first)")
    init.add_argument("--init-topic", help="take the first Detection2D (or Detection2DArray) of this topic")
    p.add_argument("--out", help="output bag folder (default: BAG_tracks beside the input)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="output bag storage")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output bag")
    p.add_argument("--video", help="annotated video (.mp4; .avi if OpenCV has no mp4v encoder)")
    p.add_argument("--strip", help="PNG image strip of six annotated frames")
    p.add_argument("--csv", nargs="?", const="", help="write stamp_ns,x,y,w,h,confidence,state "
                                                       "(default path: OUT.csv)")
    p.add_argument("--gt-topic", help="ground-truth Detection2DArray topic for the accuracy summary "
                                      f"(default: {GT_TOPIC} if the bag has it)")
    add_model_arguments(p)
    p.add_argument("--tracks-topic", default="/tracks")
    p.add_argument("--status-topic", default="/track_status")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _outputs(args: argparse.Namespace) -> Outputs:
    out = Path(args.out) if args.out else default_out(Path(args.bag))
    csv = None
    if args.csv is not None:
        csv = Path(args.csv) if args.csv else out.with_name(out.name + ".csv")
    return Outputs(out, csv, args.video, args.strip, args.storage, args.overwrite, args.tracks_topic,
                   args.status_topic)


def _fail(message: str) -> int:
    print(f"asymtrack-replay: error: {message}", file=sys.stderr)
    return 2


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        init = parse_init(args.init) if args.init else None
    except ValueError as exc:
        return _fail(str(exc))
    try:
        with BagReader(args.bag) as reader:
            if reader.damage:
                print(f"asymtrack-replay: warning: {args.bag} is damaged ({reader.damage}); reading its "
                      "intact part", file=sys.stderr)
            topic = pick_image_topic(reader, args.image_topic)
            reader.check_topic(topic, IMAGE_TYPES, "image")
            if init is None:
                if not args.init_topic:
                    return _fail("give the target: --init x,y,w,h[@stamp_ns] or --init-topic TOPIC")
                init = init_from_topic(reader, args.init_topic)
            gt = ground_truth(reader, args.gt_topic)
            backend = open_backend_from_args(args)
            try:
                report = replay_bag(reader, topic, init, backend, _outputs(args), gt, not args.no_progress)
            finally:
                backend.close()
    except (BagError, BagWriteError, ValueError, OSError, ImportError, RuntimeError) as exc:
        return _fail(str(exc))
    print(format_summary(report.summary, f"{args.bag} {topic}", "tracker"))
    for name, path in report.written.items():
        print(f"  {name}: {path}")
    if report.result.error is not None:
        kept = len(report.result.records)
        return _fail(f"{report.result.error} (kept the {kept} frames processed before it in the outputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
