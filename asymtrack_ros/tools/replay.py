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
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from asymtrack_ros.bag import BagError, BagReader, BagWriteError, BagWriter, TopicError, TrackWriter
from asymtrack_ros.bag.replay import (
    CsvSink,
    GroundTruth,
    InitSpec,
    ReplayResult,
    Stepper,
    bag_sink,
    parse_init,
)
from asymtrack_ros.bag.replay import run as run_replay
from asymtrack_ros.bag.report import Summary, format_summary, summarise
from asymtrack_ros.bag.types import BOX_TYPES
from asymtrack_ros.bag.video import Annotator, StripSink, VideoSink
from asymtrack_ros.cli import add_model_arguments, backend_line
from asymtrack_ros.packaged import resolve_model

GT_TOPIC = "/ground_truth"


class Outputs(NamedTuple):
    bag: Optional[Path] = None
    csv: Optional[Path] = None
    video: Optional[str] = None
    strip: Optional[str] = None
    storage: str = "mcap"
    overwrite: bool = False
    tracks_topic: str = "/tracks"
    status_topic: str = "/track_status"


class RunReport(NamedTuple):
    result: ReplayResult
    summary: Summary
    written: Dict[str, Path]


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


def open_tracker(kind: str, model: Optional[str]) -> Any:
    from asymtrack_ros.backends import open_backend
    from asymtrack_ros.tracking import Tracker

    return Tracker(open_backend(kind, resolve_model(model)))


def pick_image_topic(reader: BagReader, topic: Optional[str]) -> str:
    if topic:
        return topic
    topics = sorted(reader.image_topics())
    if not topics and reader.damage:
        raise TopicError(f"{reader.path} is truncated or damaged and no image topic survives in its intact "
                         f"part ({reader.damage}): nothing to replay")
    if len(topics) != 1:
        found = ", ".join(topics) if topics else "none"
        raise TopicError(f"pass --image-topic (image topics in {reader.path}: {found})")
    return topics[0]


def init_from_topic(reader: BagReader, topic: str) -> InitSpec:
    for stamped in reader.boxes(topic):
        if stamped.box is not None:
            return InitSpec(stamped.box, stamped.stamp_ns)
    raise TopicError(f"{topic} holds no box to initialise from")


def ground_truth(reader: BagReader, topic: Optional[str]) -> Optional[GroundTruth]:
    """Stamp -> box (None where the target is absent); what is readable of a damaged bag."""
    if topic is None:
        if reader.topics.get(GT_TOPIC) not in BOX_TYPES:
            return None
        topic = GT_TOPIC
    gt: GroundTruth = {}
    try:
        for stamped in reader.boxes(topic):
            gt[stamped.stamp_ns] = stamped.box
    except BagError as exc:
        if not gt or isinstance(exc, TopicError):
            raise
    return gt


def default_out(bag: Path) -> Path:
    base = bag.with_suffix("") if bag.is_file() else bag
    return base.parent / f"{base.name}_tracks"


def _progress(total: Optional[int], enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True)


def replay_bag(reader: BagReader, image_topic: str, init: InitSpec, tracker: Any, outputs: Outputs,
               gt: Optional[GroundTruth] = None, progress: bool = False) -> RunReport:
    """Track through ``image_topic`` into ``outputs``; the outputs keep what was done on an error."""
    sinks: List[Callable] = []
    closers: List[Callable[[], None]] = []
    written: Dict[str, Path] = {}
    reader.check_topic(image_topic, ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"), "image")
    try:
        if outputs.bag is not None:
            bag = BagWriter(outputs.bag, outputs.storage, outputs.overwrite)
            closers.append(bag.close)
            sinks.append(bag_sink(TrackWriter(bag, outputs.tracks_topic, outputs.status_topic)))
            written["bag"] = outputs.bag
        if outputs.csv is not None:
            csv_sink = CsvSink(outputs.csv)
            closers.append(csv_sink.close)
            sinks.append(csv_sink)
            written["csv"] = outputs.csv
        video = VideoSink(outputs.video) if outputs.video else None
        strip = StripSink() if outputs.strip else None
        if video is not None or strip is not None:
            sinks.append(Annotator(video, strip, gt))
            if video is not None:
                closers.append(video.close)
    except BaseException:
        for close in closers:
            close()
        raise
    bar = _progress(reader.count(image_topic), progress)
    result = run_replay(reader.frames(image_topic), Stepper(tracker, init), sinks, closers,
                        (lambda r: bar.update(1)) if bar is not None else None)
    if bar is not None:
        bar.close()
    if video is not None and video.path is not None:
        written["video"] = video.path
    if strip is not None:
        saved = strip.save(outputs.strip)
        if saved is not None:
            written["strip"] = saved
    return RunReport(result, summarise(result.records, gt, result.wall_s), written)


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
            reader.check_topic(topic, ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"), "image")
            if init is None:
                if not args.init_topic:
                    return _fail("give the target: --init x,y,w,h[@stamp_ns] or --init-topic TOPIC")
                init = init_from_topic(reader, args.init_topic)
            gt = ground_truth(reader, args.gt_topic)
            tracker = open_tracker(args.backend, args.model)
            print(backend_line(args.backend, tracker.backend), flush=True)
            try:
                report = replay_bag(reader, topic, init, tracker, _outputs(args), gt, not args.no_progress)
            finally:
                tracker.backend.close()
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
