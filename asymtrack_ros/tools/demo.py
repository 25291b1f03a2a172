"""asymtrack-demo: the whole chain on the bundled demo bag, with accuracy, speed and pictures.

``--via ros`` starts ``asymtrack-node`` as a subprocess, publishes the bag's frames over DDS in
lockstep (each frame after the previous result, at most ``--rate`` Hz), sends the init box stamped
with its frame and collects tracks by stamp. ``--via replay`` runs the same tracker offline on
the bag (no ROS needed). ``auto``: ros when rclpy and the messages import, else replay.
Both print a summary against the bag's ground truth and write, under ``--out``: ``tracks/`` (a
rosbag2 with /tracks and /track_status), ``tracks.csv``, ``demo.mp4`` (``.avi`` without mp4v),
``strip.png`` and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

from asymtrack_ros import demo_data, packaged
from asymtrack_ros.backends import BACKEND_CHOICES, auto_kind, open_backend
from asymtrack_ros.bag import BagError, BagReader, BagWriteError, BagWriter, Frame, TrackWriter, replay
from asymtrack_ros.bag.replay import CsvSink, InitSpec, bag_sink
from asymtrack_ros.bag.report import Summary, TrackRecord, format_summary, summarise
from asymtrack_ros.bag.video import Annotator, StripSink, VideoSink
from asymtrack_ros.packaged import DEMO_MODEL_NAME
from asymtrack_ros.tracking.state import TrackState

NAMESPACE = "/asymtrack_demo"


class DemoError(RuntimeError):
    pass


class Outcome(NamedTuple):
    via: str
    summary: Summary
    written: Dict[str, Path]
    error: Optional[Exception]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asymtrack-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--bag", help="demo bag (default: the bundled one, generated if missing)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    p.add_argument("--model", help=f"default: models/{DEMO_MODEL_NAME}")
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--via", choices=("auto", "ros", "replay"), default="auto")
    p.add_argument("--image-topic", default=None, help="default: the bag's only image topic")
    p.add_argument("--rate", type=float, default=demo_data.FPS,
                   help="--via ros: at most this many frames per second (0: as fast as results come)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: all)")
    p.add_argument("--timeout", type=float, default=120.0, help="--via ros: seconds to wait for the node")
    return p


def ros_available() -> bool:
    from asymtrack_ros.ros.harness import ros_available as available  # no ROS import without ROS

    return available()


def _paths(out: Path) -> Dict[str, Path]:
    return {"bag": out / "tracks", "csv": out / "tracks.csv", "video": out / "demo.mp4",
            "strip": out / "strip.png", "summary": out / "summary.json"}


def _init_and_gt(reader: BagReader) -> tuple:
    init = replay.init_from_topic(reader, demo_data.INIT_TOPIC)
    return init, replay.ground_truth(reader, demo_data.GT_TOPIC)


def run_replay(reader: BagReader, topic: str, model: str, backend: str, out: Path) -> Outcome:
    paths = _paths(out)
    init, gt = _init_and_gt(reader)
    outputs = replay.Outputs(paths["bag"], paths["csv"], str(paths["video"]), str(paths["strip"]),
                             overwrite=True)
    opened = open_backend(backend, model)
    try:
        report = replay.replay_bag(reader, topic, init, opened, outputs, gt, progress=True)
    finally:
        opened.close()
    return Outcome("replay", report.summary, report.written, report.result.error)


def write_outputs(frames: List[Frame], records: List[TrackRecord], gt: Any, out: Path) -> Dict[str, Path]:
    """Tracks bag, CSV, video and strip of results collected elsewhere (the ROS path)."""
    paths = _paths(out)
    by_stamp = {r.stamp_ns: r for r in records}
    video, strip, csv = VideoSink(paths["video"], demo_data.FPS), StripSink(), CsvSink(paths["csv"])
    annotate = Annotator(video, strip, gt)
    with BagWriter(paths["bag"], overwrite=True) as bag:
        write = bag_sink(TrackWriter(bag))
        for frame in frames:
            record = by_stamp.get(frame.stamp_ns)
            if record is not None:
                write(frame, record)
                csv(frame, record)
                annotate(frame, record)
    video.close()
    csv.close()
    written = {"bag": paths["bag"], "csv": paths["csv"]}
    if video.path is not None:
        written["video"] = video.path
    saved = strip.save(paths["strip"])
    if saved is not None:
        written["strip"] = saved
    return written


def _load_frames(reader: BagReader, topic: str, limit: int) -> tuple:
    """Decoded frames and the raw CDR bytes of each (published unchanged over DDS)."""
    frames: List[Frame] = []
    error: Optional[Exception] = None
    raws: List[bytes] = []
    try:
        for frame in reader.frames(topic):
            frames.append(frame)
            if limit and len(frames) >= limit:
                break
        for _, data in reader.raw(topic):
            raws.append(bytes(data))
            if len(raws) >= len(frames):
                break
    except BagError as exc:
        error = exc
    return frames[:len(raws)], raws, error


def _record(frame: Frame, status: Any, round_trip_ms: float) -> TrackRecord:
    from asymtrack_ros.bag.messages import box_of

    state = TrackState(int(status.state))
    return TrackRecord(frame.index, frame.stamp_ns, frame.log_ns, frame.frame_id, state,
                       box_of(status.bbox) if state != TrackState.IDLE else None, float(status.confidence),
                       round_trip_ms, float(status.inference_ms), int(status.frames_since_init),
                       str(status.track_id))


def _drive(client: Any, node: Any, frames: List[Frame], raws: List[bytes], init: InitSpec,
           rate: float, timeout: float) -> List[TrackRecord]:
    """Publish each frame after the previous result (at most ``rate`` Hz); the init box on the first."""
    from rclpy.serialization import deserialize_message

    def node_failed(what: str) -> DemoError:
        return DemoError(f"{what}; asymtrack-node log ({node.log_path}):\n{node.log_tail()}")

    def result_or_exit(stamp: int, wait: float, tracked: bool = False) -> bool:
        def arrived() -> bool:
            status = client.status.get(stamp)
            return status is not None and (not tracked or status.state != TrackState.IDLE)

        done = client.wait_for(lambda: arrived() or not node.alive(), wait)
        if not node.alive():
            raise node_failed("asymtrack-node exited")
        return done

    if not client.wait_connected(timeout, lambda: node.alive() and client.node_error is None):
        why = (f"reported an error ({client.node_error})" if client.node_error
               else f"did not come up within {timeout:g} s")
        raise node_failed(f"asymtrack-node {why}")
    first = frames[0]
    client.publish_image(deserialize_message(raws[0], client.image_cls))
    if not result_or_exit(first.stamp_ns, timeout):
        raise node_failed("asymtrack-node loaded no model or processed no frame")
    client.publish_init(init.box, first.stamp_ns, first.frame_id)
    if not result_or_exit(first.stamp_ns, 10.0, tracked=True):
        raise node_failed("asymtrack-node did not take the init box")
    records = [_record(first, client.status[first.stamp_ns], 0.0)]
    period = 1.0 / rate if rate > 0 else 0.0
    next_time = time.perf_counter()
    for frame, data in zip(frames[1:], raws[1:]):
        time.sleep(max(0.0, next_time - time.perf_counter()))
        sent = client.publish_image(deserialize_message(data, client.image_cls))
        next_time = sent + period
        if not result_or_exit(frame.stamp_ns, 10.0):
            print(f"asymtrack-demo: warning: no result for frame {frame.index} within 10 s", file=sys.stderr)
            continue
        with client.lock:
            status, received = client.status[frame.stamp_ns], client.status_received[frame.stamp_ns]
        records.append(_record(frame, status, (received - sent) * 1000.0))
    return records


def run_ros(reader: BagReader, topic: str, model: str, backend: str, out: Path, rate: float,
            limit: int, timeout: float) -> Outcome:
    init, gt = _init_and_gt(reader)
    frames, raws, error = _load_frames(reader, topic, limit)
    if not frames or frames[0].stamp_ns != init.stamp_ns:
        raise DemoError(f"the bag's {demo_data.INIT_TOPIC} is not stamped with its first frame")
    out.mkdir(parents=True, exist_ok=True)
    compressed = reader.topics[topic].endswith("CompressedImage")
    from asymtrack_ros.ros.harness import NodeClient, NodeProcess, image_qos

    params = {"model": str(Path(model).resolve()), "backend": backend,
              "image_transport": "compressed" if compressed else "raw", "frame_buffer_length": 30,
              **image_qos(NAMESPACE, compressed, "reliable", 10)}
    node = NodeProcess(NAMESPACE, params, out / "node.log")
    client = None
    start = time.perf_counter()
    try:
        client = NodeClient(NAMESPACE, compressed, name="asymtrack_demo_player")
        records = _drive(client, node, frames, raws, init, rate, timeout)
    finally:
        wall = time.perf_counter() - start
        if client is not None:
            client.close()
        node.stop()
    summary = summarise(records, gt, wall)
    return Outcome("ros", summary, write_outputs(frames, records, gt, out), error)


def resolve_model(model: Optional[str]) -> str:
    """--model, else $ASYMTRACK_MODEL, else the demo model; ModelNotFoundError says how to get one."""
    return str(packaged.resolve_model(model, hint="train it (asymtrack-train) or pass --model PATH (any "
                                                  "AsymTrack .pt, .pth.tar or exported ONNX pair)"))


def _print(outcome: Outcome, bag: Path, model: str, backend: str) -> None:
    label = "end to end over DDS" if outcome.via == "ros" else "tracker"
    print(f"AsymTrack demo via {outcome.via}: bag {bag}, model {model}, backend {backend}")
    print(format_summary(outcome.summary, "tracked", label))
    for name, path in outcome.written.items():
        print(f"  {name}: {path}")


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    via = args.via if args.via != "auto" else ("ros" if ros_available() else "replay")
    backend = auto_kind() if args.backend == "auto" else args.backend
    out = Path(args.out)
    try:
        model = resolve_model(args.model)
        bag = Path(args.bag) if args.bag else demo_data.ensure_demo_bag()
        with BagReader(bag) as reader:
            topic = replay.pick_image_topic(reader, args.image_topic)
            if via == "ros":
                outcome = run_ros(reader, topic, model, backend, out, args.rate, args.max_frames,
                                  args.timeout)
            else:
                outcome = run_replay(reader, topic, model, backend, out)
    except (DemoError, BagError, BagWriteError, ValueError, OSError, ImportError, RuntimeError) as exc:
        print(f"asymtrack-demo: error: {exc}", file=sys.stderr)
        return 2
    summary_path = _paths(out)["summary"]
    summary_path.write_text(json.dumps(dict(outcome.summary.as_dict(), via=via, bag=str(bag), model=model),
                                       indent=2) + "\n")
    outcome.written["summary"] = summary_path
    _print(outcome, bag, model, backend)
    if outcome.error is not None:
        print(f"asymtrack-demo: error: {outcome.error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
