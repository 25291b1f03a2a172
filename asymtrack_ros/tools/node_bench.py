"""Node overhead benchmark: end-to-end latency and sustained FPS of the ROS 2 node vs bare inference.

python -m asymtrack_ros.tools.node_bench [--model MODEL] [--frames 300] [--rate 30]

Starts ``asymtrack-node`` as its own process through the node harness (asymtrack_ros/ros/harness.py;
ONNX Runtime backend, by default on the packaged demo model), publishes a synthetic 640x480 rgb8
sequence with an init box on the first frame, and measures image publish -> tracks receive latency at
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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from asymtrack_ros.packaged import resolve_model

T0_NS = 1_000_000_000_000


def _stats(values_ms: List[float]) -> Dict[str, float]:
    a = np.asarray(values_ms, np.float64)
    if not a.size:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "max": float("nan"), "mean": float("nan")}
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "max": float(a.max()), "mean": float(a.mean())}


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


def run_phase(client: Any, messages: List[Any], first_ns: int, rate: float) -> Dict[str, Any]:
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
        client.publish_image(msg, stamp)
    end_publish = time.perf_counter()
    last = stamps[-1]  # never replaced by a newer frame: tracked unless DDS lost it (best effort)
    client.wait_for(lambda: last in client.tracks_received and last in client.status, 10.0)
    with client.lock:
        seen = client.diagnostics_seen
    client.wait_for(lambda: client.diagnostics_seen >= seen + 2, 5.0)  # counters past the last frame
    with client.lock:
        got = [s for s in stamps if s in client.tracks_received and s in client.status]
        latencies = [(client.tracks_received[s] - client.sent[s]) * 1e3 for s in got]
        node_ms = [client.status[s].latency_ms for s in got]
        inference = [client.status[s].inference_ms for s in got]
        after = dict(client.counters)
        tracking = sum(client.detected.get(s, False) for s in got)
        last_out = max((client.tracks_received[s] for s in got), default=end_publish)
    duration = max(1e-6, last_out - start)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("received_frames", "dropped_frames")}
    paired = [e / i - 1 for e, i in zip(latencies, inference) if i > 0]
    return {"published": len(stamps), "outputs": len(got), "with_detection": tracking,
            "node_received": delta["received_frames"], "node_dropped": delta["dropped_frames"],
            "overhead_ms": _stats([e - i for e, i in zip(latencies, inference)]),
            "overhead_ratio": _stats(paired),
            "publish_hz": len(stamps) / max(1e-6, end_publish - start), "output_fps": len(got) / duration,
            "e2e_ms": _stats(latencies), "node_ms": _stats(node_ms), "inference_ms": _stats(inference)}


def run_node_bench(args: argparse.Namespace, model: Path, workdir: Path) -> Dict[str, Any]:
    from asymtrack_ros.ros.harness import NodeClient, NodeProcess, image_qos
    from asymtrack_ros.ros.messages import make_image
    from asymtrack_ros.synthetic import make_sequence

    height, width = args.height, args.width
    sequence = make_sequence(args.seed, args.frames + 1, size=(height, width))
    frames = list(sequence.frames)
    box = sequence.boxes[0]
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    namespace = f"/node_bench_{os.getpid()}"
    params = {"model": model.resolve(), "backend": "onnxruntime", "threads": args.threads,
              "spin_us": args.spin_us,
              **image_qos(namespace, False, args.image_reliability, args.image_depth)}
    node = NodeProcess(namespace, params, workdir / "node.log")
    client = None
    try:
        client = NodeClient(namespace, image_depth=1, name="node_bench_client")
        messages = [make_image(f, "rgb8") for f in frames]
        if not client.wait_connected(30.0, node.alive):
            raise SystemExit(f"node_bench: the node did not come up:\n{node.log_tail()}")
        for _ in range(200):  # the first frame, until the node (loading its model) answers
            client.publish_image(messages[0], T0_NS)
            if client.wait_for(lambda: T0_NS in client.tracks_received or not node.alive(), 0.25):
                break
        if T0_NS not in client.tracks_received:
            raise SystemExit(f"node_bench: the node did not answer:\n{node.log_tail()}")
        client.publish_init(box, T0_NS)
        if not client.wait_for(lambda: client.detected.get(T0_NS, False), 10.0):
            raise SystemExit("node_bench: timed out waiting for the init track")
        body = messages[1:]
        run_phase(client, body[:args.warmup], T0_NS + 1_000_000_000, args.rate)
        paced = run_phase(client, body, T0_NS + 2_000_000_000, args.rate)
        flood = run_phase(client, body, T0_NS + 3_000_000_000, args.flood_rate)
    finally:
        if client is not None:
            client.close()
        exit_code = node.stop()
    bare = bare_timings(model, frames, box, args.threads, args.spin_us)
    return {"size": f"{width}x{height}", "frames": args.frames, "rate_hz": args.rate, "paced": paced,
            "flood": flood, "bare": bare, "node_exit_code": exit_code}


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
    p.add_argument("--model", help="model file (.pt or ONNX pair; default $ASYMTRACK_MODEL or the packaged "
                                   "demo model)")
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
    model = resolve_model(args.model)
    with tempfile.TemporaryDirectory(prefix="asymtrack_node_bench_") as tmp:
        result = run_node_bench(args, model, Path(tmp))
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
