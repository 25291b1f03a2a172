"""The AsymTrack ROS 2 node: images and an init box in, Detection2D tracks and diagnostics out.

Threading: the executor's callbacks only store data. The image callback pushes the message into
the frame ring buffer and makes it the pending frame (a frame still pending is replaced and counted
as dropped: the newest frame wins). One worker thread loads the model, then applies reset and init
requests and runs the tracker on the pending frame, and publishes. An init box stamped on an older
frame is applied to that frame from the ring buffer, then the tracker catches up over the buffered
frames after it and publishes the result of the newest one.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray

from asymtrack_ros.frame_buffer import (
    EmptyBufferError,
    FrameBuffer,
    FrameBufferError,
    OutOfOrderError,
    StampInFutureError,
)
from asymtrack_ros.msg import TrackStatus
from asymtrack_ros.packaged import DEMO_MODEL_NAME, find_model
from asymtrack_ros.ros import diagnostics, messages, parameters
from asymtrack_ros.ros.follow_me import FollowMe
from asymtrack_ros.ros.image_conversion import (
    ImageConversionError,
    check_size,
    compressed_to_rgb,
    image_to_rgb,
    make_image,
)
from asymtrack_ros.ros.memory import release_freed_memory
from asymtrack_ros.ros.parameters import ParameterError
from asymtrack_ros.tracking import Tracker, TrackResult, TrackState, check_box

THROTTLE_S = 5.0
TIME_JUMP_FRAMES = 3  # this many frames in a row older than the buffer: time really went back
SPIN_TIMEOUT_S = 0.1  # how soon main() notices a signal
MB = 1_000_000


def resolve_model_path(value: str) -> Path:
    """The ``model`` parameter as a path: empty -> the packaged demo model; relative -> cwd, then models/."""
    return find_model(value, use_env=False) or Path("models") / DEMO_MODEL_NAME


def backend_options(kind: str, values: Dict[str, Any]) -> Dict[str, Any]:
    """The node's parameters as keyword arguments of the chosen backend class."""
    device = values["device"]
    if kind == "pytorch":
        options: Dict[str, Any] = {"device": device or "cpu"}
        if values["variant"]:
            options["variant"] = values["variant"]
        return options
    if kind == "onnxruntime":
        return {"providers": device or None, "threads": values["threads"] or None,
                "fp16": values["precision"] == "fp16", "spin_us": values["spin_us"]}
    options = {"precision": values["precision"], "cache_dir": values["engine_cache_dir"] or None}
    if device:
        options["device"] = int(device.split(":")[-1])
    return options


def image_qos(values: Dict[str, Any]) -> QoSProfile:
    reliable = values["image_qos.reliability"] == "reliable"
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=values["image_qos.depth"],
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


class Frame:
    """One received image: converted to RGB on first use (in the worker, never in the callback)."""

    __slots__ = ("msg", "seq", "received", "stamp_ns", "nbytes", "_rgb")

    def __init__(self, msg: Any, seq: int, received: float):
        self.msg, self.seq, self.received = msg, seq, received
        self.stamp_ns = messages.stamp_to_ns(msg.header.stamp)
        self.nbytes = len(msg.data)
        self._rgb: Optional[np.ndarray] = None

    @property
    def header(self) -> Any:
        return self.msg.header

    def image(self, max_pixels: Optional[int] = None) -> np.ndarray:
        if self._rgb is None:
            convert = compressed_to_rgb if isinstance(self.msg, CompressedImage) else image_to_rgb
            self._rgb = convert(self.msg, max_pixels=max_pixels)
        return self._rgb

    def release(self) -> None:
        """Drop the RGB copy (buffered frames keep only their message; converted again if needed)."""
        self._rgb = None


@dataclass
class InitRequest:
    box: Tuple[float, float, float, float]
    stamp_ns: Optional[int]  # None: the newest frame
    received: float
    fresh: bool = True  # False once tried and waiting for its frame


class AsymTrackNode(Node):
    """``tracks``/``track_status``/``/diagnostics`` from ``image`` + ``init_box``; see docs/NODE.md."""

    def __init__(self, node_name: str = "asymtrack_node", **kwargs: Any):
        super().__init__(node_name, **kwargs)
        try:
            self._values = parameters.declare(self)
            self._follow_me = FollowMe(self)  # follow-me outputs (docs/FOLLOW_ME.md); off by default
        except ParameterError:
            super().destroy_node()
            raise
        self._stats = diagnostics.RollingStats()
        self._cond = threading.Condition()
        self._buffer: FrameBuffer[Frame] = FrameBuffer(self._values["frame_buffer_length"],
                                                       self._values["frame_buffer_max_mb"] * MB)
        self._pending: Optional[Frame] = None
        self._latest: Optional[Frame] = None
        self._backwards = 0
        self._release_memory = False
        self._init_request: Optional[InitRequest] = None
        self._generation = 0
        self._seq = 0
        self._stop = False
        self.ready = threading.Event()
        self._load_error = ""
        self._backend: Any = None
        self._tracker: Optional[Tracker] = None
        self._track_count = 0
        self._track_id = ""
        self._state = TrackState.IDLE
        self._image_shape: Optional[Tuple[int, ...]] = None
        self._last_seq = -1
        self._model_path = resolve_model_path(self._values["model"])
        self._create_interfaces()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._worker = threading.Thread(target=self._run, name="asymtrack_worker", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ interfaces and callbacks
    def _create_interfaces(self) -> None:
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._tracks_pub = self.create_publisher(Detection2DArray, "tracks", reliable)
        self._status_pub = self.create_publisher(TrackStatus, "track_status", reliable)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", reliable)
        self._debug_pub = self.create_publisher(Image, "debug_image", QoSProfile(depth=1))
        qos = image_qos(self._values)
        if self._values["image_transport"] == "compressed":
            self.create_subscription(CompressedImage, "image/compressed", self._on_image, qos)
        else:
            self.create_subscription(Image, "image", self._on_image, qos)
        self.create_subscription(Detection2D, "init_box", self._on_init_box, reliable)
        self.create_subscription(BoundingBox2D, "init_box_latest", self._on_init_box_latest, reliable)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(1.0, self._publish_diagnostics)

    def _on_image(self, msg: Any) -> None:
        now = time.monotonic()
        self._stats.count("received")
        try:
            check_size(msg, self._values["max_image_pixels"])  # before it is buffered or converted
        except ImageConversionError as exc:
            self._bad_image(exc)
            self._release_memory = True
            return
        with self._cond:
            self._seq += 1
            frame = Frame(msg, self._seq, now)
            if not self._admit(frame):
                return
            self._latest = frame
            if self._pending is not None and self.ready.is_set():
                self._stats.count("dropped")
            self._pending = frame
            self._cond.notify()

    def _admit(self, frame: Frame) -> bool:
        """Buffer the frame by its stamp; False drops it (a repeated or older stamp). Counts problems."""
        if frame.stamp_ns == 0:
            self._stamp_problem("image without a stamp: tracked, not buffered for stamped init boxes")
            return True
        try:
            self._buffer.push(frame.stamp_ns, frame, frame.nbytes)
        except OutOfOrderError as exc:
            self._backwards = 0 if frame.stamp_ns == self._buffer.newest else self._backwards + 1
            if self._backwards < TIME_JUMP_FRAMES:
                self._stamp_problem(f"{exc}: frame dropped")
                return False
            # a bag loop or a camera restart, not one stray frame
            self._stamp_problem(f"{exc}: time went back for {TIME_JUMP_FRAMES} frames in a row, frame "
                                "buffer cleared")
            self._buffer.clear()
            self._buffer.push(frame.stamp_ns, frame, frame.nbytes)
        self._backwards = 0
        return True

    def _stamp_problem(self, problem: str) -> None:
        self._stats.count("bad_stamps", problem)
        self.get_logger().warn(problem, throttle_duration_sec=THROTTLE_S)

    def _on_init_box(self, msg: Detection2D) -> None:
        stamp_ns: Optional[int] = messages.stamp_to_ns(msg.header.stamp)
        if stamp_ns == 0:
            self.get_logger().info("init box without a stamp: applying it to the newest frame")
            stamp_ns = None
        self._request_init(msg.bbox, stamp_ns)

    def _on_init_box_latest(self, msg: BoundingBox2D) -> None:
        self._request_init(msg, None)

    def _request_init(self, bbox: BoundingBox2D, stamp_ns: Optional[int]) -> None:
        try:
            box = messages.bbox_to_box(bbox)
        except ValueError as exc:
            self._reject_init(str(exc))
            return
        with self._cond:
            self._init_request = InitRequest(box, stamp_ns, time.monotonic())
            self._cond.notify()

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._cond:
            self._generation += 1
            self._init_request = None
            self._cond.notify()
        response.success = True
        response.message = f"tracking stopped (was {self._state.name}, track id {self._track_id or 'none'})"
        self.get_logger().info(response.message)
        return response

    def _on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        for param in params:
            spec = parameters.SPEC_BY_NAME.get(param.name)
            if spec is not None and spec.read_only and param.value != self._values[param.name]:
                return SetParametersResult(successful=False,
                                           reason=f"parameter {param.name!r} is read-only: restart the node")
        values = parameters.merged(self._values, params)
        try:
            parameters.validate(values)
        except (ParameterError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._cond:
            self._values = values
            self._buffer.capacity = values["frame_buffer_length"]
            self._buffer.max_bytes = values["frame_buffer_max_mb"] * MB
        return SetParametersResult(successful=True)

    def counters(self) -> Dict[str, int]:
        """Totals since start: received, dropped, bad_images, rejected_inits, errors, outputs, bad_stamps,
        size_changes."""
        return dict(self._stats.snapshot().totals)

    def _image(self, frame: Frame) -> np.ndarray:
        return frame.image(self._values["max_image_pixels"])

    def _reject_init(self, reason: str) -> None:
        self._stats.count("rejected_inits", f"init box rejected: {reason}")
        self.get_logger().error(f"init box rejected: {reason}")

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        self._load_backend()
        seen = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda seen=seen: self._has_work(seen), timeout=0.1)
                if self._stop:
                    return
                frame, self._pending = self._pending, None
                generation, request = self._generation, self._init_request
            if self._release_memory:
                self._release_memory = False
                release_freed_memory()
            try:
                if generation != seen:
                    seen = generation
                    self._stop_tracking()
                if request is not None:
                    self._try_init(request, generation)
                if frame is not None and frame.seq > self._last_seq:
                    self._process(frame, generation)
            except Exception as exc:  # never let one frame kill the worker
                if self._stop or not self.context.ok():
                    return
                self._stats.count("errors", f"{type(exc).__name__}: {exc}")
                self.get_logger().error(f"tracker error: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=THROTTLE_S)

    def _has_work(self, seen: int) -> bool:
        request = self._init_request
        return (self._stop or self._pending is not None or self._generation != seen
                or (request is not None and request.fresh))

    def _load_backend(self) -> None:
        from asymtrack_ros.backends import auto_kind, create_backend
        from asymtrack_ros.model_info import canonical_variant

        values = self._values
        kind = auto_kind() if values["backend"] == "auto" else values["backend"]
        start = time.monotonic()
        self.get_logger().info(f"loading {self._model_path} with the {kind} backend")
        try:
            backend = create_backend(kind, str(self._model_path), **backend_options(kind, values))
        except Exception as exc:
            hint = "" if self._model_path.exists() or values["model"] else \
                " (the demo model is not installed: set the 'model' parameter)"
            self._load_error = f"{type(exc).__name__}: {exc}{hint}"
            self.get_logger().error(f"cannot load the model: {self._load_error}. The node keeps running "
                                    "and reports ERROR on /diagnostics; fix the parameters and restart it.")
            return
        variant = values["variant"]
        if variant and canonical_variant(variant) != backend.info.variant:
            self.get_logger().warn(f"parameter variant={variant!r} but {self._model_path.name} is "
                                   f"{backend.info.variant!r}; using the model's")
        self._backend = backend
        self.get_logger().info(f"ready: {backend.name} {backend.info.variant} "
                               f"({time.monotonic() - start:.1f} s)")
        self.ready.set()

    def _stop_tracking(self) -> None:
        if self._tracker is not None:
            self._tracker.reset()
        self._state = TrackState.IDLE
        self._track_id = ""

    def _locate(self, request: InitRequest) -> Optional[Tuple[Frame, List[Frame]]]:
        """The request's frame and the buffered frames after it; None while it waits for its frame."""
        with self._cond:
            if self._init_request is not request:
                return None
            try:
                if request.stamp_ns is None:
                    if self._latest is None:
                        raise EmptyBufferError("no frame received yet")
                    self._init_request = None
                    return self._latest, []
                else:
                    tolerance = int(self._values["init_stamp_tolerance"] * 1e9)
                    _, frame = self._buffer.nearest(request.stamp_ns, tolerance)
            except (StampInFutureError, EmptyBufferError) as exc:
                if time.monotonic() - request.received < self._values["init_wait_timeout"]:
                    request.fresh = False
                    return None
                self._init_request = None
                self._reject_init(f"{exc} (waited {self._values['init_wait_timeout']:g} s for the frame)")
                return None
            except FrameBufferError as exc:
                self._init_request = None
                self._reject_init(str(exc))
                return None
            self._init_request = None
            return frame, [f for _, f in self._buffer.frames_after(frame.stamp_ns)]

    def _try_init(self, request: InitRequest, generation: int) -> None:
        if self._backend is None:
            with self._cond:
                self._init_request = None
            self._reject_init(f"model not loaded ({self._load_error or 'still loading'})")
            return
        located = self._locate(request)
        if located is None:
            return
        first, later = located
        try:  # into a fresh tracker, swapped in on success: a rejected box leaves the track running
            rgb = self._image(first)
            box = check_box(request.box, (rgb.shape[1], rgb.shape[0]), "init box")
            tracker = Tracker(self._backend, parameters.tracker_config(self._values))
            result = tracker.init(rgb, box)
        except Exception as exc:  # MemoryError, OverflowError... whatever a bad request raises
            self._reject_init(str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}")
            return
        self._tracker = tracker
        self._track_count += 1
        self._track_id = str(self._track_count)
        self._image_shape = rgb.shape
        self._state = TrackState.TRACKING
        frame = first
        self.get_logger().info(f"track {self._track_id}: init on frame {frame.stamp_ns / 1e9:.3f} s at "
                               f"{tuple(round(v, 1) for v in request.box)}, catching up {len(later)} frames")
        for frame_after in later:
            try:
                updated = self._update(frame_after)
            except ImageConversionError as exc:
                self._bad_image(exc)
                continue
            if updated is None:
                break
            result, frame = updated, frame_after
        self._last_seq = max([self._last_seq, frame.seq] + [f.seq for f in later])
        self._publish(frame, result, generation)
        for done in [first] + later:
            done.release()

    def _update(self, frame: Frame) -> Optional[TrackResult]:
        """Track one frame; None while IDLE. Raises ImageConversionError for a bad image."""
        rgb = self._image(frame)
        if self._tracker is None or self._state == TrackState.IDLE:
            return None
        if rgb.shape != self._image_shape:
            self._size_changed(rgb.shape)
            return None
        result = self._tracker.update(rgb)
        self._state = result.state
        return result

    def _size_changed(self, shape: Tuple[int, ...]) -> None:
        """The track cannot continue on another geometry: it ends (IDLE), counted and reported."""
        old = self._image_shape or shape
        problem = (f"image size changed from {old[1]}x{old[0]} to {shape[1]}x{shape[0]}: track "
                   f"{self._track_id} ended, send a new init box")
        self._stats.count("size_changes", problem)
        self.get_logger().warn(problem, throttle_duration_sec=THROTTLE_S)
        self._stop_tracking()

    def _bad_image(self, exc: Exception) -> None:
        self._stats.count("bad_images", f"bad image: {exc}")
        self.get_logger().warn(f"bad image: {exc}", throttle_duration_sec=THROTTLE_S)

    def _process(self, frame: Frame, generation: int) -> None:
        self._last_seq = frame.seq
        try:
            result = self._update(frame)
        except ImageConversionError as exc:
            self._bad_image(exc)
            return
        self._publish(frame, result, generation)
        frame.release()

    def _publish(self, frame: Frame, result: Optional[TrackResult], generation: int) -> None:
        with self._cond:
            if generation != self._generation:
                return  # a reset arrived while this frame was processed
        state = self._state if result is not None else TrackState.IDLE
        track_id = self._track_id if state != TrackState.IDLE else ""
        box = result.box if result is not None else None
        confidence = result.confidence if result is not None else 0.0
        inference_ms = result.timings.inference_ms if result is not None else 0.0
        frames = result.frame_index if result is not None else 0
        values = self._values
        latency_ms = (time.monotonic() - frame.received) * 1000.0
        shown = box if state == TrackState.TRACKING else None
        self._tracks_pub.publish(messages.detections(frame.header, shown, confidence, track_id,
                                                     values["class_id"]))
        self._status_pub.publish(messages.track_status(frame.header, state, track_id, box, confidence,
                                                       latency_ms, inference_ms, frames))
        self._stats.output(latency_ms, inference_ms)
        if self._follow_me.enabled:
            height, width = self._image(frame).shape[:2]
            self._follow_me.on_frame(frame.header, (width, height), box, state, confidence, track_id,
                                     lambda: self._image(frame))
        if values["publish_debug_image"]:
            self._publish_debug(frame, state, box, confidence)

    def _publish_debug(self, frame: Frame, state: TrackState, box: Optional[Sequence[float]],
                       confidence: float) -> None:
        image = np.array(self._image(frame), copy=True)
        if box is not None:
            x, y, w, h = (int(round(v)) for v in box)
            colour = (0, 255, 0) if state == TrackState.TRACKING else (255, 0, 0)
            cv2.rectangle(image, (x, y), (x + w, y + h), colour, 2)
            cv2.putText(image, f"{state.name} {confidence:.2f}", (x, max(12, y - 4)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
        self._debug_pub.publish(make_image(image, "rgb8", frame.header))

    # ------------------------------------------------------------------ diagnostics and shutdown
    def _publish_diagnostics(self) -> None:
        values = self._values
        thresholds = diagnostics.Thresholds(values["diagnostics.warn_latency_ms"],
                                            values["diagnostics.warn_drop_ratio"],
                                            values["diagnostics.stale_timeout"])
        backend = self._backend
        info = {
            "state": self._state.name,
            "track_id": self._track_id,
            "backend": backend.name if backend is not None else values["backend"],
            "device": str(getattr(backend, "device", "")),
            "model": str(self._model_path),
            "variant": backend.info.variant if backend is not None else values["variant"],
            "image_transport": values["image_transport"],
        }
        hardware_id = f"{info['backend']}:{info['device']}" if info["device"] else info["backend"]
        status = diagnostics.diagnostic_status(f"{self.get_name()}: tracker", hardware_id,
                                               self._stats.snapshot(), thresholds, self.ready.is_set(),
                                               self._load_error, info)
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)

    def destroy_node(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        worker = getattr(self, "_worker", None)
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=5.0)
        if self._backend is not None and not (worker is not None and worker.is_alive()):
            self._backend.close()
        self._follow_me.destroy()
        super().destroy_node()


def _stop_on_signals() -> threading.Event:
    """SIGINT/SIGTERM set the returned event instead of raising; after the first, both are ignored.

    Under ``ros2 launch`` a Ctrl-C reaches the node twice (the terminal's SIGINT and the one launch
    forwards): the second must not interrupt the cleanup with a KeyboardInterrupt. SIG_IGN (not a
    Python handler) also survives interpreter finalisation, which resets Python handlers to SIG_DFL.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        _ignore_signals()
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    return stop


def _ignore_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def main(args: Optional[List[str]] = None) -> int:
    """``ros2 run asymtrack_ros asymtrack_node`` / ``asymtrack-node``: spin until SIGINT or SIGTERM."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = _stop_on_signals()
    node = None
    try:
        node = AsymTrackNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)  # Python runs signal handlers between calls
    except ParameterError as exc:
        print(f"asymtrack_node: invalid parameter: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _ignore_signals()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
