"""Drive ``asymtrack-node`` from outside, as a camera and an operator would (the tools' harness).

``NodeProcess`` starts the node in its own process and namespace with ``autostart:=true`` (it
configures and activates itself), logs to a file and stops it with SIGINT. ``NodeClient`` is an
rclpy node in the same namespace, in its own context, spinning in a background thread: it waits
for discovery, publishes frames and init boxes, and collects the TrackStatus and tracks of each
stamp and the tracker's diagnostics counters. Used by ``asymtrack-demo --via ros`` and
``tools/node_bench.py``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from asymtrack_ros.stamps import header_ns, split_ns
from asymtrack_ros.tracking.state import TrackState

NODE_CODE = "import sys; from asymtrack_ros.ros.node import main; sys.exit(main(sys.argv))"
COUNTERS = ("received_frames", "dropped_frames")


def ros_available() -> bool:
    """Whether rclpy and the messages the harness uses import in this Python."""
    try:
        import rclpy  # noqa: F401
        from diagnostic_msgs.msg import DiagnosticArray  # noqa: F401
        from sensor_msgs.msg import CompressedImage  # noqa: F401
        from vision_msgs.msg import Detection2D  # noqa: F401

        from asymtrack_msgs.msg import TrackStatus  # noqa: F401
    except Exception:  # ImportError, or a ROS install for another Python
        return False
    return True


def image_qos(namespace: str, compressed: bool, reliability: str, depth: int) -> Dict[str, Any]:
    """The node's parameters for the QoS of its image subscription (rclpy's ``qos_overrides``)."""
    topic = f"{namespace.rstrip('/')}/image" + ("/compressed" if compressed else "")
    return {f"qos_overrides.{topic}.subscription.reliability": reliability,
            f"qos_overrides.{topic}.subscription.depth": depth}


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class NodeProcess:
    """``asymtrack-node`` in a subprocess of this Python, in ``namespace``; stopped with SIGINT."""

    def __init__(self, namespace: str, params: Mapping[str, Any], log_path: Path):
        args = [sys.executable, "-c", NODE_CODE, "--ros-args", "-r", f"__ns:={namespace}"]
        for name, value in dict(params, autostart=True).items():
            args += ["-p", f"{name}:={_param_text(value)}"]
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGINT, then SIGKILL after ``timeout`` seconds; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class NodeClient:
    """Publishes frames and init boxes to the node in ``namespace`` and collects what it publishes.

    ``status`` keeps per stamp the TrackStatus that is not IDLE if one came (the init frame is
    published again once the box is taken), ``status_received`` when it came; ``tracks_received``
    when the first tracks of a stamp came and ``detected`` whether they held a detection. Read them
    under ``lock``; ``wait_for`` waits for a condition on them.
    """

    def __init__(self, namespace: str, compressed: bool = False, image_depth: int = 10,
                 name: str = "asymtrack_harness"):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image
        from vision_msgs.msg import Detection2D, Detection2DArray

        from asymtrack_msgs.msg import TrackStatus

        self.namespace = namespace
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, namespace=namespace, context=self.context)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_cls = CompressedImage if compressed else Image
        self.image_pub = self.node.create_publisher(
            self.image_cls, "image/compressed" if compressed else "image",
            QoSProfile(depth=image_depth, reliability=ReliabilityPolicy.RELIABLE))
        self.init_pub = self.node.create_publisher(Detection2D, "init_box", reliable)
        self.lock = threading.Lock()
        self._changed = threading.Condition(self.lock)
        self.sent: Dict[int, float] = {}
        self.status: Dict[int, Any] = {}
        self.status_received: Dict[int, float] = {}
        self.tracks_received: Dict[int, float] = {}
        self.detected: Dict[int, bool] = {}
        self.counters: Dict[str, int] = {}
        self.diagnostics_seen = 0  # tracker diagnostics messages received (1 Hz)
        self.node_error: Optional[str] = None  # the last ERROR the tracker's diagnostics reported
        history = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.status_sub = self.node.create_subscription(TrackStatus, "track_status", self._on_status, history)
        self.tracks_sub = self.node.create_subscription(Detection2DArray, "tracks", self._on_tracks, history)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ callbacks (spin thread)
    def _on_status(self, msg: Any) -> None:
        now = time.perf_counter()
        stamp = header_ns(msg)
        with self._changed:
            if msg.state != TrackState.IDLE or stamp not in self.status:
                self.status[stamp] = msg
                self.status_received[stamp] = now
            self._changed.notify_all()

    def _on_tracks(self, msg: Any) -> None:
        now = time.perf_counter()
        stamp = header_ns(msg)
        with self._changed:
            self.tracks_received.setdefault(stamp, now)
            self.detected[stamp] = bool(msg.detections)
            self._changed.notify_all()

    def _on_diagnostics(self, msg: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticStatus

        for status in msg.status:
            if status.name.endswith(": tracker"):
                if status.level == DiagnosticStatus.ERROR:
                    with self._changed:
                        self.node_error = status.message
                        self._changed.notify_all()
                values = {kv.key: kv.value for kv in status.values}
                if all(k in values for k in COUNTERS):
                    with self._changed:
                        self.counters = {k: int(values[k]) for k in COUNTERS}
                        self.diagnostics_seen += 1
                        self._changed.notify_all()

    # ------------------------------------------------------------------ the caller's thread
    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` (called under ``lock``) holds; False after ``timeout`` s. It is
        checked at each message and every 0.1 s, for conditions outside the client (the node's
        process exiting)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.1))
        return True

    def wait_connected(self, timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
        """Until the node subscribes to the frames and init boxes and publishes TrackStatus."""
        deadline = time.monotonic() + timeout
        while not (self.image_pub.get_subscription_count() > 0 and self.init_pub.get_subscription_count() > 0
                   and self._outputs_matched()):
            if time.monotonic() > deadline or not alive():
                return False
            time.sleep(0.01)  # discovery raises no callback here: polled
        return True

    def _outputs_matched(self) -> bool:
        """Our TrackStatus and tracks subscriptions have matched the node's publishers (an output
        sent before that is lost). Humble's subscriptions cannot count their publishers: the graph."""
        counts = []
        for subscription in (self.status_sub, self.tracks_sub):
            if hasattr(subscription, "get_publisher_count"):
                counts.append(subscription.get_publisher_count())
            else:
                counts.append(self.node.count_publishers(f"{self.namespace.rstrip('/')}/{subscription.topic}"))
        return all(n > 0 for n in counts)

    def publish_image(self, msg: Any, stamp_ns: Optional[int] = None) -> float:
        """Publish a frame (stamped ``stamp_ns`` if given); returns when it was sent."""
        if stamp_ns is not None:
            msg.header.stamp.sec, msg.header.stamp.nanosec = split_ns(stamp_ns)
        stamp = header_ns(msg)
        sent = time.perf_counter()
        with self.lock:
            self.sent[stamp] = sent
        self.image_pub.publish(msg)
        return sent

    def publish_init(self, box: Sequence[float], stamp_ns: int, frame_id: str = "") -> None:
        """Send the init box drawn on the frame stamped ``stamp_ns``."""
        from vision_msgs.msg import Detection2D

        from asymtrack_ros.ros.messages import box_to_bbox

        init = Detection2D(bbox=box_to_bbox(box))
        init.header.stamp.sec, init.header.stamp.nanosec = split_ns(stamp_ns)
        init.header.frame_id = frame_id
        self.init_pub.publish(init)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=2.0)
