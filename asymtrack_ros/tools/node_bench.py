"""Node overhead benchmark: end-to-end latency and sustained FPS of the ROS 2 node vs bare inference.

python -m asymtrack_ros.tools.node_bench [--model PREFIX.search.onnx] [--frames 300] [--rate 30]

Starts ``asymtrack-node`` as its own process (ONNX Runtime backend; by default on the reference
random tiny checkpoint exported to a temporary folder), publishes a synthetic 640x480 rgb8 sequence
with an init box on the first frame, and measures image publish -> tracks receive latency at
``--rate`` (paced) and output FPS with frames sent faster than the node can track (``--flood-rate``,
newest frame wins). The overhead is paired per frame: each frame's end-to-end latency against the
``backend.track()`` time the node itself reports for that frame (TrackStatus.inference_ms), which
holds on a loaded machine. The same run also times the bare ``backend.track()`` and
``Tracker.update()`` on the same frames (so on the same crops) in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

T0_NS = 1_000_000_000_000


def _stats(values_ms: List[float]) -> Dict[str, float]:
    a = np.asarray(values_ms, np.float64)
    if not a.size:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "max": float("nan"), "mean": float("nan")}
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "max": float(a.max()), "mean": float(a.mean())}


def export_reference_model(workdir: Path) -> Path:
    """Export the reference random tiny checkpoint (a child process: torch stays out of this one)."""
    reference = Path(os.environ.get("ASYMTRACK_REFERENCE_DIR",
                                    Path(__file__).resolve().parents[3] / "shared" / "reference"))
    checkpoint = reference / "official_tiny_random.pth.tar"
    if not checkpoint.is_file():
        raise SystemExit(f"node_bench: {checkpoint} not found; pass --model PREFIX.search.onnx")
    prefix = workdir / "tiny_random"
    subprocess.run([sys.executable, "-m", "asymtrack_ros.tools.export", str(checkpoint), "-o", str(prefix)],
                   check=True, stdout=subprocess.DEVNULL)
    return Path(f"{prefix}.search.onnx")


def bare_timings(model: Path, frames: List[np.ndarray], box: Any, threads: int,
                 spin_us: int) -> Dict[str, Any]:
    """backend.track() and Tracker.update() on the same frames the node gets."""
    from asymtrack_ros.backends import create_backend
    from asymtrack_ros.tracking import Tracker

    with create_backend("onnxruntime", str(model), threads=threads or None, spin_us=spin_us) as backend:
        tracker = Tracker(backend)
        tracker.init(frames[0], box)
        for frame in frames[1:6]:  # warm-up
            tracker.update(frame)
        tracker.init(frames[0], box)
        results = [tracker.update(frame) for frame in frames[1:]]
    return {"track_ms": _stats([r.timings.inference_ms for r in results]),
            "update_ms": _stats([r.timings.total_ms for r in results])}


class Client:
    """Publishes frames and records when their tracks come back (spins in a background thread)."""

    def __init__(self, rclpy: Any, namespace: str):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2D, Detection2DArray

        from asymtrack_msgs.msg import TrackStatus

        self.node = rclpy.create_node("node_bench_client", namespace=namespace)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, "image", QoSProfile(depth=1))
        self.init_pub = self.node.create_publisher(Detection2D, "init_box", reliable)
        self.lock = threading.Lock()
        self.sent: Dict[int, float] = {}
        self.received: Dict[int, float] = {}
        self.detected: Dict[int, bool] = {}
        self.status: Dict[int, Any] = {}
        self.counters: Dict[str, int] = {}
        self.node.create_subscription(Detection2DArray, "tracks", self._on_tracks, QoSProfile(depth=100))
        self.node.create_subscription(TrackStatus, "track_status", self._on_status, QoSProfile(depth=100))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    @staticmethod
    def _ns(header: Any) -> int:
        return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec

    def _on_tracks(self, msg: Any) -> None:
        now = time.perf_counter()
        with self.lock:
            self.received.setdefault(self._ns(msg.header), now)
            self.detected[self._ns(msg.header)] = bool(msg.detections)

    def _on_status(self, msg: Any) -> None:
        with self.lock:
            self.status[self._ns(msg.header)] = msg

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.endswith(": tracker"):
                values = {kv.key: kv.value for kv in status.values}
                with self.lock:
                    self.counters = {k: int(values[k]) for k in ("received_frames", "dropped_frames")}

    def publish(self, msg: Any, stamp_ns: int) -> None:
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        with self.lock:
            self.sent[stamp_ns] = time.perf_counter()
        self.image_pub.publish(msg)

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if predicate():
                    return
            if time.monotonic() > deadline:
                raise SystemExit(f"node_bench: timed out waiting for {what}")
            time.sleep(0.005)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()


def run_phase(client: Client, messages: List[Any], first_ns: int, rate: float) -> Dict[str, Any]:
    """Publish ``messages`` at ``rate`` Hz (0: back to back) and collect what came back."""
    stamps = [first_ns + i * 1_000_000 for i in range(len(messages))]
    with client.lock:
        before = dict(client.counters)
    start = time.perf_counter()
    for i, (msg, stamp) in enumerate(zip(messages, stamps)):
        if rate > 0:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        client.publish(msg, stamp)
    end_publish = time.perf_counter()
    time.sleep(2.2)  # let the last results and two diagnostics messages arrive
    with client.lock:
        got = [s for s in stamps if s in client.received and s in client.status]
        latencies = [(client.received[s] - client.sent[s]) * 1e3 for s in got]
        node_ms = [client.status[s].latency_ms for s in got]
        inference = [client.status[s].inference_ms for s in got]
        after = dict(client.counters)
        tracking = sum(client.detected.get(s, False) for s in got)
        last_out = max((client.received[s] for s in got), default=end_publish)
    duration = max(1e-6, last_out - start)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("received_frames", "dropped_frames")}
    paired = [e / i - 1 for e, i in zip(latencies, inference) if i > 0]
    return {"published": len(stamps), "outputs": len(got), "with_detection": tracking,
            "node_received": delta["received_frames"], "node_dropped": delta["dropped_frames"],
            "overhead_ms": _stats([e - i for e, i in zip(latencies, inference)]),
            "overhead_ratio": _stats(paired),
            "publish_hz": len(stamps) / max(1e-6, end_publish - start), "output_fps": len(got) / duration,
            "e2e_ms": _stats(latencies), "node_ms": _stats(node_ms), "inference_ms": _stats(inference)}


def run_node_bench(args: argparse.Namespace, model: Path) -> Dict[str, Any]:
    from asymtrack_ros.ros.image_conversion import make_image
    from asymtrack_ros.ros.messages import box_to_bbox
    from asymtrack_ros.synthetic import make_sequence

    height, width = args.height, args.width
    sequence = make_sequence(args.seed, args.frames + 1, size=(height, width))
    frames = list(sequence.frames)
    box = sequence.boxes[0]
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    namespace = f"/node_bench_{os.getpid()}"
    script = shutil.which("asymtrack-node")
    cmd = [script] if script else [sys.executable, "-c", "from asymtrack_ros.ros.node import main; main()"]
    cmd += ["--ros-args", "-r", f"__ns:={namespace}", "-p", f"model:={model}", "-p", "backend:=onnxruntime",
            "-p", f"threads:={args.threads}", "-p", f"spin_us:={args.spin_us}",
            "-p", f"image_qos.reliability:={args.image_reliability}",
            "-p", f"image_qos.depth:={args.image_depth}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import rclpy

    rclpy.init()
    client = Client(rclpy, namespace)
    try:
        messages = [make_image(f, "rgb8") for f in frames]
        client.wait(lambda: client.image_pub.get_subscription_count() > 0, 30.0, "the node")
        for attempt in range(200):  # the first frame, until the node (loading its model) answers
            client.publish(messages[0], T0_NS)
            try:
                client.wait(lambda: T0_NS in client.received, 0.25, "the first frame")
                break
            except SystemExit:
                if proc.poll() is not None or attempt == 199:
                    raise SystemExit(f"node_bench: the node did not answer: {proc.stderr.read()}") from None
        from vision_msgs.msg import Detection2D

        init = Detection2D(bbox=box_to_bbox(box))
        init.header.stamp.sec, init.header.stamp.nanosec = divmod(T0_NS, 1_000_000_000)
        client.init_pub.publish(init)
        client.wait(lambda: client.detected.get(T0_NS), 10.0, "the init track")
        body = messages[1:]
        run_phase(client, body[:args.warmup], T0_NS + 1_000_000_000, args.rate)
        paced = run_phase(client, body, T0_NS + 2_000_000_000, args.rate)
        flood = run_phase(client, body, T0_NS + 3_000_000_000, args.flood_rate)
    finally:
        client.close()
        rclpy.try_shutdown()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    bare = bare_timings(model, frames, box, args.threads, args.spin_us)
    return {"size": f"{width}x{height}", "frames": args.frames, "rate_hz": args.rate, "paced": paced,
            "flood": flood, "bare": bare, "node_exit_code": proc.returncode}


def report(result: Dict[str, Any]) -> str:
    track, update = result["bare"]["track_ms"], result["bare"]["update_ms"]
    lines = [f"node_bench: {result['frames']} frames {result['size']} rgb8, ONNX Runtime, node in its own "
             f"process (exit code {result['node_exit_code']} after SIGINT)",
             f"bare, this process: backend.track() p50 {track['p50']:.2f} ms p95 {track['p95']:.2f} ms "
             f"({1e3 / track['p50']:.1f} FPS); Tracker.update() p50 {update['p50']:.2f} ms "
             f"({1e3 / update['p50']:.1f} FPS)"]
    for name in ("paced", "flood"):
        r = result[name]
        e2e, node, inference = r["e2e_ms"], r["node_ms"], r["inference_ms"]
        lines += [
            f"{name}: published {r['published']} at {r['publish_hz']:.1f} Hz; node received "
            f"{r['node_received']}, dropped {r['node_dropped']} (newest wins), tracked {r['outputs']}; "
            f"output {r['output_fps']:.1f} FPS",
            f"  publish->tracks p50 {e2e['p50']:.2f} p95 {e2e['p95']:.2f} max {e2e['max']:.2f} ms; "
            f"in node (receive->publish) p50 {node['p50']:.2f} ms; its backend.track() p50 "
            f"{inference['p50']:.2f} ms",
            f"  overhead over the same frame's backend.track(): p50 {r['overhead_ms']['p50']:.2f} ms = "
            f"{100 * r['overhead_ratio']['p50']:.1f}% (p95 {100 * r['overhead_ratio']['p95']:.1f}%)"]
    flood = result["flood"]
    own = 1e3 / flood["inference_ms"]["p50"]
    lines.append(f"sustained: {flood['output_fps']:.1f} FPS out vs {own:.1f} FPS "
                 f"of bare track() at the node's own p50 ({1e3 / track['p50']:.1f} FPS at this process's)")
    return "\n".join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m asymtrack_ros.tools.node_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="PREFIX.search.onnx (default: export the reference random tiny model)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--rate", type=float, default=30.0, help="paced publish rate in Hz")
    p.add_argument("--flood-rate", type=float, default=100.0,
                   help="publish rate of the throughput phase, above what the node can track")
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: one per core)")
    p.add_argument("--spin-us", type=int, default=0,
                   help="ONNX Runtime worker spin time before sleeping, in the node and for the bare "
                        "timings (0: never spin, -1: onnxruntime's own policy)")
    p.add_argument("--image-reliability", choices=("best_effort", "reliable"), default="best_effort")
    p.add_argument("--image-depth", type=int, default=1, help="the node's image queue depth")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", help="also write the results here")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="asymtrack_node_bench_") as tmp:
        model = Path(args.model) if args.model else export_reference_model(Path(tmp))
        result = run_node_bench(args, model)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
