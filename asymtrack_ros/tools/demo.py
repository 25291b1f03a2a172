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
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

from asymtrack_ros import demo_data, packaged
from asymtrack_ros.backends import BACKEND_CHOICES, auto_kind
from asymtrack_ros.bag import BagError, BagReader, BagWriteError, BagWriter, Frame, TrackWriter
from asymtrack_ros.bag.replay import IDLE, CsvSink, InitSpec, TrackRecord, bag_sink
from asymtrack_ros.bag.report import Summary, format_summary, summarise
from asymtrack_ros.bag.video import Annotator, StripSink, VideoSink
from asymtrack_ros.packaged import DEMO_MODEL_NAME
from asymtrack_ros.tools import replay as replay_tool

NODE_CODE = "import sys; from asymtrack_ros.ros.node import main; sys.exit(main(sys.argv))"
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
    try:
        import rclpy  # noqa: F401
        from sensor_msgs.msg import CompressedImage  # noqa: F401
        from vision_msgs.msg import Detection2D  # noqa: F401

        from asymtrack_msgs.msg import TrackStatus  # noqa: F401
    except Exception:  # ImportError, or a ROS install for another Python
        return False
    return True


def _paths(out: Path) -> Dict[str, Path]:
    return {"bag": out / "tracks", "csv": out / "tracks.csv", "video": out / "demo.mp4",
            "strip": out / "strip.png", "summary": out / "summary.json"}


def _init_and_gt(reader: BagReader) -> tuple:
    init = replay_tool.init_from_topic(reader, demo_data.INIT_TOPIC)
    return init, replay_tool.ground_truth(reader, demo_data.GT_TOPIC)


def run_replay(reader: BagReader, topic: str, model: str, backend: str, out: Path) -> Outcome:
    paths = _paths(out)
    init, gt = _init_and_gt(reader)
    outputs = replay_tool.Outputs(paths["bag"], paths["csv"], str(paths["video"]), str(paths["strip"]),
                                  overwrite=True)
    tracker = replay_tool.open_tracker(backend, model)
    try:
        report = replay_tool.replay_bag(reader, topic, init, tracker, outputs, gt, progress=True)
    finally:
        tracker.backend.close()
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


class NodeProcess:
    """``asymtrack-node`` in a subprocess, in its own namespace; stopped with SIGINT."""

    def __init__(self, model: str, backend: str, compressed: bool, log_path: Path):
        params = {"model": str(Path(model).resolve()), "backend": backend,
                  "image_transport": "compressed" if compressed else "raw",
                  "image_qos.reliability": "reliable", "image_qos.depth": 10, "frame_buffer_length": 30}
        args = [sys.executable, "-c", NODE_CODE, "--ros-args", "-r", f"__ns:={NAMESPACE}"]
        for name, value in params.items():
            args += ["-p", f"{name}:={value}"]
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class RosDriver:
    """An rclpy node that feeds frames to the tracker node and collects its TrackStatus by stamp."""

    def __init__(self, compressed: bool):
        import rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image
        from vision_msgs.msg import Detection2D

        from asymtrack_msgs.msg import TrackStatus

        self.rclpy = rclpy
        rclpy.init()
        self.node = rclpy.create_node("asymtrack_demo_player", namespace=NAMESPACE)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_cls = CompressedImage if compressed else Image
        image_topic = "image/compressed" if compressed else "image"
        self.image_pub = self.node.create_publisher(self.image_cls, image_topic, reliable)
        self.init_pub = self.node.create_publisher(Detection2D, "init_box", reliable)
        self.status: Dict[int, Any] = {}
        self.received: Dict[int, float] = {}
        self.node.create_subscription(TrackStatus, "track_status", self._on_status,
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))

    def _on_status(self, msg: Any) -> None:
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        if msg.state != IDLE or stamp not in self.status:
            self.status[stamp] = msg
            self.received[stamp] = time.perf_counter()

    def spin_until(self, done: Any, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not done():
            if time.monotonic() > end:
                return False
            self.rclpy.spin_once(self.node, timeout_sec=0.01)
        return True

    def wait_connected(self, timeout: float) -> bool:
        return self.spin_until(lambda: self.image_pub.get_subscription_count() > 0
                               and self.init_pub.get_subscription_count() > 0
                               and self.node.count_publishers(f"{NAMESPACE}/track_status") > 0, timeout)

    def publish_frame(self, data: bytes) -> float:
        from rclpy.serialization import deserialize_message

        self.image_pub.publish(deserialize_message(data, self.image_cls))
        return time.perf_counter()

    def publish_init(self, init: InitSpec, frame: Frame) -> None:
        from rclpy.serialization import deserialize_message
        from vision_msgs.msg import Detection2D

        from asymtrack_ros.bag import messages as m
        from asymtrack_ros.bag.types import DETECTION_2D, typestore

        det = m.detection(frame.stamp_ns, frame.frame_id, init.box)
        data = bytes(typestore().serialize_cdr(det, DETECTION_2D))
        self.init_pub.publish(deserialize_message(data, Detection2D))

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.try_shutdown()


def _record(frame: Frame, status: Any, round_trip_ms: float) -> TrackRecord:
    from asymtrack_ros.bag.messages import box_of

    state = int(status.state)
    return TrackRecord(frame.index, frame.stamp_ns, frame.log_ns, frame.frame_id, state,
                       box_of(status.bbox) if state != IDLE else None, float(status.confidence),
                       round_trip_ms, float(status.inference_ms), int(status.frames_since_init))


def _drive(driver: RosDriver, node: NodeProcess, frames: List[Frame], raws: List[bytes], init: InitSpec,
           rate: float, timeout: float) -> List[TrackRecord]:
    def node_failed(what: str) -> DemoError:
        return DemoError(f"{what}; asymtrack-node log ({node.log_path}):\n{node.log_tail()}")

    if not driver.wait_connected(timeout):
        raise node_failed(f"asymtrack-node did not come up within {timeout:g} s")
    first = frames[0]
    driver.publish_frame(raws[0])
    if not driver.spin_until(lambda: first.stamp_ns in driver.status or not node.alive(), timeout):
        raise node_failed("asymtrack-node loaded no model or processed no frame")
    if not node.alive():
        raise node_failed("asymtrack-node exited")
    driver.publish_init(init, first)
    if not driver.spin_until(lambda: driver.status[first.stamp_ns].state != IDLE, 10.0):
        raise node_failed("asymtrack-node did not take the init box")
    records = [_record(first, driver.status[first.stamp_ns], 0.0)]
    period = 1.0 / rate if rate > 0 else 0.0
    next_time = time.perf_counter()
    for frame, data in zip(frames[1:], raws[1:]):
        time.sleep(max(0.0, next_time - time.perf_counter()))
        sent = driver.publish_frame(data)
        next_time = sent + period
        if not driver.spin_until(lambda f=frame: f.stamp_ns in driver.status, 10.0):
            if not node.alive():
                raise node_failed("asymtrack-node exited")
            print(f"asymtrack-demo: warning: no result for frame {frame.index} within 10 s", file=sys.stderr)
            continue
        rtt = (driver.received[frame.stamp_ns] - sent) * 1000.0
        records.append(_record(frame, driver.status[frame.stamp_ns], rtt))
    return records


def run_ros(reader: BagReader, topic: str, model: str, backend: str, out: Path, rate: float,
            limit: int, timeout: float) -> Outcome:
    init, gt = _init_and_gt(reader)
    frames, raws, error = _load_frames(reader, topic, limit)
    if not frames or frames[0].stamp_ns != init.stamp_ns:
        raise DemoError(f"the bag's {demo_data.INIT_TOPIC} is not stamped with its first frame")
    out.mkdir(parents=True, exist_ok=True)
    compressed = reader.topics[topic].endswith("CompressedImage")
    node = NodeProcess(model, backend, compressed, out / "node.log")
    driver = None
    start = time.perf_counter()
    try:
        driver = RosDriver(compressed)
        records = _drive(driver, node, frames, raws, init, rate, timeout)
    finally:
        wall = time.perf_counter() - start
        if driver is not None:
            driver.close()
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
            topic = replay_tool.pick_image_topic(reader, args.image_topic)
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
