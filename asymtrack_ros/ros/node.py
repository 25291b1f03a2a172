"""The AsymTrack ROS 2 node: a thin managed (lifecycle) adapter over ``TrackSession``.

Lifecycle: configure reads the parameters and loads the model (a TensorRT engine build happens
here); activate subscribes and starts publishing; deactivate stops (the track ends, the model
stays loaded); cleanup frees the model. ``/diagnostics`` is published in every state.

Threading: the executor's callbacks only hand data to the session (``receive``, ``request_init``,
``reset``) and make the newest frame the pending one (a frame still pending is replaced and counted
as dropped). One worker thread steps the session and publishes its outputs. docs/ARCHITECTURE.md
follows one frame from the callback to the published Detection2DArray.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.service import Service
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, LabelInfo, VisionClass

from asymtrack_msgs.msg import TrackStatus
from asymtrack_ros.follow_me import overlay
from asymtrack_ros.images import ImageConversionError, check_size, compressed_to_rgb, image_to_rgb
from asymtrack_ros.packaged import DEMO_MODEL_NAME
from asymtrack_ros.ros import diagnostics, messages, parameters
from asymtrack_ros.ros.follow_me import FollowMe
from asymtrack_ros.ros.memory import release_freed_memory
from asymtrack_ros.ros.parameters import ParameterError
from asymtrack_ros.stamps import stamp_to_ns
from asymtrack_ros.tracking import Tracker, TrackerConfig, TrackState
from asymtrack_ros.tracking.session import BadImageError, Event, Output, SessionFrame, TrackSession

THROTTLE_S = 5.0
SPIN_TIMEOUT_S = 0.1  # how soon main() notices a signal
IDLE_STEP_S = 0.1  # the worker steps this often without frames (an init waiting for its frame times out)
STATS_OF_EVENT = {"rejected_init": "rejected_inits", "bad_image": "bad_images", "bad_stamp": "bad_stamps",
                  "size_change": "size_changes"}
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


class Frame(SessionFrame):
    """One received image message, converted to RGB on first use (in the worker, never in a callback)."""

    def __init__(self, msg: Any, received: float, max_pixels: int):
        stamp = stamp_to_ns(msg.header.stamp)
        super().__init__(stamp or None, len(msg.data), payload=msg.header)
        self.msg, self.received, self.max_pixels = msg, received, max_pixels
        self._rgb: Optional[np.ndarray] = None

    def image(self) -> np.ndarray:
        if self._rgb is None:
            convert = compressed_to_rgb if isinstance(self.msg, CompressedImage) else image_to_rgb
            try:
                self._rgb = convert(self.msg, max_pixels=self.max_pixels)
            except ImageConversionError as exc:
                raise BadImageError(str(exc)) from None
        return self._rgb

    def release(self) -> None:
        self._rgb = None  # buffered frames keep only their message


class AsymTrackNode(LifecycleNode):
    """``tracks``/``track_status``/``/diagnostics`` from ``image`` + ``init_box``; see docs/NODE.md."""

    def __init__(self, node_name: str = "asymtrack_node", **kwargs: Any):
        super().__init__(node_name, **kwargs)
        try:
            self._values = parameters.declare(self)
            self._follow_me = FollowMe(self)  # follow-me outputs (docs/FOLLOW_ME.md); off by default
        except ParameterError:
            super().destroy_node()
            raise
        parameters.warn_deprecated(self._values, self.get_logger())
        self.ready = threading.Event()  # set while ACTIVE
        self._stats = diagnostics.RollingStats()
        self._cond = threading.Condition()
        self._pending: Optional[Tuple[int, Frame]] = None
        self._stop = False
        self._worker: Optional[threading.Thread] = None
        self._release_memory = False
        self._lifecycle = "unconfigured"
        self._load_error = ""
        self._backend: Any = None
        self._session: Optional[TrackSession] = None
        self._configured: List[Any] = []  # publishers and services of the configured node
        self._active: List[Any] = []  # subscriptions of the active node
        self._image_qos: Optional[QoSProfile] = None  # resolved once, with the qos_overrides parameters
        self._model_path: Optional[Path] = None  # resolved by configure
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE)
        self.create_timer(1.0, self._publish_diagnostics)
        if self._values["autostart"]:
            self._autostart()

    def _autostart(self) -> None:
        self.trigger_configure()
        if self._lifecycle == "inactive":
            self.trigger_activate()

    # ------------------------------------------------------------------ lifecycle transitions
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        values = self._values
        start = time.monotonic()
        try:
            self._model_path = parameters.model_path(values)
            self.get_logger().info(f"loading {self._model_path} with the {values['backend']} backend")
            self._backend = self._open_backend(values, self._model_path)
        except Exception as exc:
            self._load_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"configure failed: cannot load the model: {self._load_error}. The node "
                                    "stays unconfigured and reports ERROR on /diagnostics.")
            return TransitionCallbackReturn.FAILURE
        try:
            tracker_config = self._tracker_config(values)
        except ParameterError as exc:
            self._load_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            self._free()
            return TransitionCallbackReturn.FAILURE
        self._load_error = ""
        self._session = TrackSession(self._backend, parameters.session_config(values), tracker_config)
        self._create_outputs()
        self._lifecycle = "inactive"
        self.get_logger().info(f"configured: {self._backend.name} {self._backend.info.variant} "
                               f"({time.monotonic() - start:.1f} s)")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._create_inputs()
        self._follow_me.start()
        with self._cond:
            self._stop = False
        self._worker = threading.Thread(target=self._run, name="asymtrack_worker", daemon=True)
        self._worker.start()
        self._lifecycle = "active"
        self.ready.set()
        self.get_logger().info("active: tracking")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._lifecycle = "inactive"
        self.get_logger().info("inactive: tracking stopped")
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._free()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._free()
        self._lifecycle = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._free()
        return TransitionCallbackReturn.SUCCESS

    def _open_backend(self, values: Dict[str, Any], path: Path) -> Any:
        from asymtrack_ros.backends import open_backend
        from asymtrack_ros.model_info import canonical_variant

        backend = open_backend(values["backend"], str(path), parameters.backend_options(values))
        variant = values["variant"]
        if variant and canonical_variant(variant) != backend.info.variant:
            self.get_logger().warn(f"parameter variant={variant!r} but {path.name} is "
                                   f"{backend.info.variant!r}; using the model's")
        return backend

    def _tracker_config(self, values: Dict[str, Any]) -> TrackerConfig:
        """The tracker's settings, checked against the loaded model's calibrated thresholds (a threshold
        of 0 is the model's): raises ParameterError for a pair that does not fit."""
        config = parameters.tracker_config(values)
        if self._backend is not None:
            try:
                Tracker(self._backend, config)
            except ValueError as exc:
                raise ParameterError(f"tracker thresholds with the model's calibrated ones: {exc}") from None
        return config

    def _create_outputs(self) -> None:
        self._tracks_pub = self.create_lifecycle_publisher(Detection2DArray, "tracks", RELIABLE)
        self._status_pub = self.create_lifecycle_publisher(TrackStatus, "track_status", RELIABLE)
        self._debug_pub = self.create_lifecycle_publisher(Image, "debug_image", QoSProfile(depth=1))
        self._label_pub = self.create_publisher(LabelInfo, "label_info", LATCHED)
        self._reset_srv = self.create_service(Trigger, "~/reset", self._on_reset)
        self._configured = [self._tracks_pub, self._status_pub, self._debug_pub, self._label_pub,
                            self._reset_srv]
        self._label_pub.publish(self._label_info())

    def _label_info(self) -> LabelInfo:
        """One class (id 0, named by the ``class_id`` parameter); threshold: the LOST threshold."""
        msg = LabelInfo(class_map=[VisionClass(class_id=0, class_name=self._values["class_id"])])
        msg.header.stamp = self.get_clock().now().to_msg()
        resolved = Tracker(self._backend, self._tracker_config(self._values)).config
        msg.threshold = float(resolved.lost_threshold)
        return msg

    def _create_inputs(self) -> None:
        if self._values["image_transport"] == "compressed":
            image = self._subscribe_image(CompressedImage, "image/compressed")
        else:
            image = self._subscribe_image(Image, "image")
        self._active = [
            image,
            self.create_subscription(Detection2D, "init_box", self._on_init_box, RELIABLE),
            self.create_subscription(BoundingBox2D, "init_box_latest", self._on_init_box_latest, RELIABLE),
        ]

    def _subscribe_image(self, msg_type: Any, topic: str) -> Any:
        """The image subscription; its QoS comes from the standard ``qos_overrides.<topic>.subscription.*``
        parameters, resolved on the first activation (they are read-only) and kept for the next ones."""
        if self._image_qos is not None:
            return self.create_subscription(msg_type, topic, self._on_image, self._image_qos)
        subscription = self.create_subscription(
            msg_type, topic, self._on_image, parameters.image_qos(self._values),
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self._image_qos = subscription.qos_profile
        return subscription

    def _stop_inputs(self) -> None:
        """Unsubscribe, stop the worker and end the track; the model stays loaded."""
        self.ready.clear()
        for subscription in self._active:
            self.destroy_subscription(subscription)
        self._active = []
        self._follow_me.destroy()
        with self._cond:
            self._stop = True
            self._pending = None
            self._cond.notify_all()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=10.0)
        if self._session is not None:
            self._session.reset()
            self._session.step()  # applies the reset now: IDLE while inactive
            self._session.clear_frames()

    def _free(self) -> None:
        """Destroy the outputs and free the model (GPU memory with TensorRT)."""
        for entity in self._configured:
            if isinstance(entity, Service):
                self.destroy_service(entity)
            else:
                self.destroy_publisher(entity)
        self._configured = []
        self._session = None
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
        self._lifecycle = "unconfigured"

    # ------------------------------------------------------------------ callbacks (executor thread)
    def _on_image(self, msg: Any) -> None:
        session = self._session
        if session is None:
            return
        self._stats.count("received")
        try:
            check_size(msg, self._values["max_image_pixels"])  # before it is buffered or converted
        except ImageConversionError as exc:
            self._report(Event("bad_image", f"bad image: {exc}"))
            self._release_memory = True
            return
        frame = Frame(msg, time.monotonic(), self._values["max_image_pixels"])
        if frame.stamp_ns is None:
            self._report(Event("bad_stamp", "image without a stamp: tracked, not buffered for stamped "
                                            "init boxes"))
        seq, events = session.receive(frame)
        for event in events:
            self._report(event)
        if seq is None:
            return
        with self._cond:
            if self._pending is not None:
                self._stats.count("dropped")
            self._pending = (seq, frame)
            self._cond.notify()

    def _on_init_box(self, msg: Detection2D) -> None:
        stamp_ns: Optional[int] = stamp_to_ns(msg.header.stamp)
        if stamp_ns == 0:
            self.get_logger().info("init box without a stamp: applying it to the newest frame")
            stamp_ns = None
        self._request_init(msg.bbox, stamp_ns)

    def _on_init_box_latest(self, msg: BoundingBox2D) -> None:
        self._request_init(msg, None)

    def _request_init(self, bbox: BoundingBox2D, stamp_ns: Optional[int]) -> None:
        session = self._session
        if session is None:
            return
        try:
            box = messages.bbox_to_box(bbox)
        except ValueError as exc:
            self._report(Event("rejected_init", str(exc)))
            return
        session.request_init(box, stamp_ns)
        with self._cond:
            self._cond.notify()

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        session = self._session
        if session is None or self._lifecycle != "active":
            response.success = False
            response.message = f"the node is {self._lifecycle}: nothing to reset"
            return response
        response.message = (f"tracking stopped (was {session.state.name}, track id "
                            f"{session.track_id or 'none'})")
        session.reset()
        with self._cond:
            self._cond.notify()
        response.success = True
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
            session_config = parameters.session_config(values)
            tracker_config = self._tracker_config(values)
        except (ParameterError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._values = values
        session = self._session
        if session is not None:
            session.config = session_config
            session.tracker_config = tracker_config  # from the next init box on
        return SetParametersResult(successful=True)

    def counters(self) -> Dict[str, int]:
        """Totals since start: received, dropped, bad_images, rejected_inits, errors, outputs, bad_stamps,
        size_changes."""
        return dict(self._stats.snapshot().totals)

    def _report(self, event: Event) -> None:
        """Count a session event for /diagnostics and log it."""
        if event.kind == "track_started":
            self.get_logger().info(event.message)
            return
        message = f"init box rejected: {event.message}" if event.kind == "rejected_init" else event.message
        self._stats.count(STATS_OF_EVENT[event.kind], message)
        if event.kind == "rejected_init":
            self.get_logger().error(message)
        else:
            self.get_logger().warn(message, throttle_duration_sec=THROTTLE_S)

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        session = self._session
        while session is not None:
            with self._cond:
                self._cond.wait_for(lambda: self._stop or self._pending is not None or session.has_work(),
                                    timeout=IDLE_STEP_S)
                if self._stop:
                    return
                pending, self._pending = self._pending, None
            if self._release_memory:
                self._release_memory = False
                release_freed_memory()
            try:
                seq, frame = pending if pending is not None else (None, None)
                step = session.step(seq, frame)
                for event in step.events:
                    self._report(event)
                for output in step.outputs:
                    self._publish(output)
                    output.frame.release()
            except Exception as exc:  # never let one frame kill the worker
                if self._stop or not self.context.ok():
                    return
                self._stats.count("errors", f"{type(exc).__name__}: {exc}")
                self.get_logger().error(f"tracker error: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=THROTTLE_S)

    def _publish(self, output: Output) -> None:
        frame: Frame = output.frame  # type: ignore[assignment]
        header, values = frame.payload, self._values
        latency_ms = (time.monotonic() - frame.received) * 1000.0
        self._tracks_pub.publish(messages.detections(header, output.shown_box, output.confidence,
                                                     output.track_id, values["class_id"]))
        self._status_pub.publish(messages.track_status(header, output.state, output.track_id, output.box,
                                                       output.confidence, latency_ms, output.inference_ms,
                                                       output.frames_since_init))
        self._stats.output(latency_ms, output.inference_ms)
        if self._follow_me.enabled:
            height, width = frame.image().shape[:2]
            self._follow_me.on_frame(header, (width, height), output.box, output.state, output.confidence,
                                     output.track_id, frame.image)
        if values["publish_debug_image"]:
            image = frame.image()
            if output.box is not None:
                image = overlay.draw(image, output.box, output.track_id, output.state.name, output.confidence)
            self._debug_pub.publish(messages.make_image(image, "rgb8", header))

    # ------------------------------------------------------------------ diagnostics and shutdown
    def _publish_diagnostics(self) -> None:
        values, backend, session = self._values, self._backend, self._session
        thresholds = diagnostics.Thresholds(values["diagnostics.warn_latency_ms"],
                                            values["diagnostics.warn_drop_ratio"],
                                            values["diagnostics.stale_timeout"])
        info = {
            "state": session.state.name if session is not None else TrackState.IDLE.name,
            "lifecycle_state": self._lifecycle,
            "track_id": session.track_id if session is not None else "",
            "backend": backend.name if backend is not None else values["backend"],
            "device": str(getattr(backend, "device", "")),
            "model": str(self._model_path or values["model"] or DEMO_MODEL_NAME),
            "variant": backend.info.variant if backend is not None else values["variant"],
            "image_transport": values["image_transport"],
        }
        hardware_id = f"{info['backend']}:{info['device']}" if info["device"] else info["backend"]
        status = diagnostics.diagnostic_status(f"{self.get_name()}: tracker", hardware_id,
                                               self._stats.snapshot(), thresholds, self._lifecycle,
                                               self._load_error, info)
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)

    def destroy_node(self) -> None:
        self._stop_inputs()
        self._free()
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
