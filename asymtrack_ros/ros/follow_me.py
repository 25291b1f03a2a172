"""Follow-me outputs of the node: bearing, 3D target, image markers, compressed debug image.

``FollowMe(node)`` declares its parameters on the node; ``start`` (when the node activates)
creates its own subscriptions (``camera_info``, the aligned depth image) and publishers; it is
called once per processed frame with ``on_frame``. Everything is off by default. CameraInfo and
depth images are kept in stamp-keyed ring buffers (asymtrack_ros.frame_buffer) and matched to
the frame by stamp. The math is in asymtrack_ros.follow_me (ROS-free); docs/FOLLOW_ME.md has the
topics and frames.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PointStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import ImageMarker

from asymtrack_msgs.msg import TargetBearing
from asymtrack_ros.follow_me import overlay
from asymtrack_ros.follow_me.bearing import Bearing, bearing
from asymtrack_ros.follow_me.camera import CameraModel, CameraModelError, camera_model
from asymtrack_ros.follow_me.depth import (
    DepthEstimate,
    DepthImageError,
    back_project,
    depth_from_buffer,
    target_depth,
)
from asymtrack_ros.frame_buffer import FrameBuffer, FrameBufferError, OutOfOrderError
from asymtrack_ros.ros.parameters import ParameterError
from asymtrack_ros.stamps import header_ns, stamp_to_ns
from asymtrack_ros.tracking.state import state_number

BUFFER_LENGTH = 30
JPEG_FORMAT = "rgb8; jpeg compressed bgr8"  # image_transport's compressed plugin names it so
ImageSource = Union[np.ndarray, Callable[[], np.ndarray], None]


@dataclass(frozen=True)
class Spec:
    name: str
    default: Any
    description: str
    range: Optional[Tuple[float, float]] = None


SPECS: Tuple[Spec, ...] = (
    Spec("publish_bearing", False, "Publish 'target_bearing' (asymtrack_msgs/TargetBearing) per frame; "
         "angles need CameraInfo on camera_info_topic."),
    Spec("camera_info_topic", "camera_info", "sensor_msgs/CameraInfo of the image (matched by stamp)."),
    Spec("camera_info_tolerance", 0.02, "Seconds between an image and the CameraInfo matched to it; "
         "without one that close the newest CameraInfo is used.", (0.0, 10.0)),
    Spec("depth_topic", "", "Aligned depth image (16UC1 mm or 32FC1 m, the colour image's size); "
         "empty: no 3D target. Needs publish_bearing."),
    Spec("depth_tolerance", 0.02, "Seconds between an image and the depth image matched to it.", (0.0, 10.0)),
    Spec("depth_central_fraction", 0.5, "Part of the box's width and height whose depths are used.",
         (0.05, 1.0)),
    Spec("depth_min_valid_fraction", 0.2, "Minimum share of valid depth pixels there.", (0.0, 1.0)),
    Spec("publish_markers", False, "Publish 'image_markers' (visualization_msgs/ImageMarker): the box "
         "(LINE_STRIP, id 0) and its label (LINE_LIST, id 1)."),
    Spec("debug_image_compressed", False, "Publish 'debug_image/compressed' (JPEG) with the box drawn."),
    Spec("jpeg_quality", 80, "JPEG quality of debug_image/compressed.", (1, 100)),
)


def _descriptor(spec: Spec) -> ParameterDescriptor:
    desc = ParameterDescriptor(name=spec.name, description=spec.description, read_only=True)
    if spec.range is not None and isinstance(spec.default, float):
        desc.floating_point_range = [FloatingPointRange(from_value=spec.range[0], to_value=spec.range[1])]
    elif spec.range is not None:
        low, high = (int(v) for v in spec.range)
        desc.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
    return desc


def declare(node: Node) -> Dict[str, Any]:
    """Declare the follow-me parameters (read-only: set at startup) and return their values;
    raises ParameterError (the node's) for a value of the wrong type or out of range."""
    for spec in SPECS:
        try:
            node.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except ParameterException as exc:
            raise ParameterError(f"parameter {spec.name!r}: {exc}") from None
    return {spec.name: node.get_parameter(spec.name).value for spec in SPECS}


def info_model(msg: CameraInfo) -> CameraModel:
    roi = msg.roi
    return camera_model(int(msg.width), int(msg.height), list(msg.k), list(msg.d), msg.distortion_model,
                        (int(msg.binning_x), int(msg.binning_y)),
                        (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)))


def _colour(rgba: Sequence[float]) -> ColorRGBA:
    return ColorRGBA(r=float(rgba[0]), g=float(rgba[1]), b=float(rgba[2]), a=float(rgba[3]))


def image_marker(header: Any, marker: Optional[overlay.Marker], marker_id: int) -> ImageMarker:
    """An ImageMarker ADD for ``marker``, or a REMOVE of ``marker_id`` when it is None."""
    msg = ImageMarker(header=header, ns="asymtrack", id=marker_id)
    if marker is None:
        msg.action = ImageMarker.REMOVE
        return msg
    msg.action = ImageMarker.ADD
    msg.type = ImageMarker.LINE_STRIP if marker.kind == overlay.LINE_STRIP else ImageMarker.LINE_LIST
    msg.scale = float(marker.scale)
    msg.outline_color = _colour(marker.colour)
    msg.points = [Point(x=float(x), y=float(y), z=0.0) for x, y in marker.points]
    return msg


class _Problems:
    """The follow-me inputs' health for /diagnostics and logs said once per distinct problem."""

    def __init__(self, node: Node):
        self._node = node
        self._lock = threading.Lock()
        self.items: Dict[str, str] = {}  # input -> current problem ('' when fine)
        self._said: Dict[str, str] = {}

    def set(self, what: str, problem: str) -> None:
        with self._lock:
            self.items[what] = problem
            if problem and self._said.get(what) != problem:
                self._said[what] = problem
                self._node.get_logger().warn(f"follow-me {what}: {problem}")
            elif not problem and self._said.get(what):
                self._said[what] = ""
                self._node.get_logger().info(f"follow-me {what}: ok")

    def snapshot(self) -> Dict[str, str]:
        with self._lock:
            return dict(self.items)


class FollowMe:
    """The follow-me outputs of one node: ``start`` when the node activates, ``on_frame`` per processed
    frame, ``destroy`` when it deactivates."""

    def __init__(self, node: Node):
        self._node = node
        self.values = declare(node)
        self._lock = threading.Lock()
        self._infos: FrameBuffer[CameraInfo] = FrameBuffer(BUFFER_LENGTH)
        self._depths: FrameBuffer[Image] = FrameBuffer(5)
        self._models: Dict[Tuple[Any, ...], Union[CameraModel, str]] = {}
        self._markers_shown = False
        self.problems = _Problems(node)
        self.counts: Dict[str, int] = {"frames": 0, "angles": 0, "positions": 0, "camera_infos": 0,
                                       "depth_images": 0}
        self._entities: List[Any] = []

    @property
    def enabled(self) -> bool:
        v = self.values
        return bool(v["publish_bearing"] or v["publish_markers"] or v["debug_image_compressed"])

    def start(self) -> None:
        """Create this module's publishers, subscriptions and timer (the node's activation)."""
        self.destroy()
        node, v = self._node, self.values
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                            reliability=ReliabilityPolicy.BEST_EFFORT)
        self._bearing_pub = self._point_pub = self._marker_pub = self._jpeg_pub = None
        if v["publish_bearing"]:
            self._bearing_pub = node.create_publisher(TargetBearing, "target_bearing", reliable)
            self._entities.append(self._bearing_pub)
            self._entities.append(node.create_subscription(CameraInfo, v["camera_info_topic"],
                                                           self._on_camera_info, sensor))
            self.problems.set("camera_info", f"no CameraInfo received on {v['camera_info_topic']!r} yet: "
                                             "publishing image offsets only (valid_angles false)")
            if v["depth_topic"]:
                self._point_pub = node.create_publisher(PointStamped, "target_point", reliable)
                self._entities.append(self._point_pub)
                self._entities.append(node.create_subscription(Image, v["depth_topic"], self._on_depth,
                                                               sensor))
                self.problems.set("depth", f"no depth image received on {v['depth_topic']!r} yet")
        elif v["depth_topic"]:
            self.problems.set("depth", "depth_topic is set but publish_bearing is false: depth unused")
        if v["publish_markers"]:
            self._marker_pub = node.create_publisher(ImageMarker, "image_markers", reliable)
            self._entities.append(self._marker_pub)
        if v["debug_image_compressed"]:
            self._jpeg_pub = node.create_publisher(CompressedImage, "debug_image/compressed",
                                                   QoSProfile(depth=1))
            self._entities.append(self._jpeg_pub)
        if self.enabled:
            self._diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", reliable)
            self._entities.append(self._diag_pub)
            self._entities.append(node.create_timer(1.0, self.publish_diagnostics))

    # ------------------------------------------------------------------ inputs (executor thread)
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._push(self._infos, msg)
        self.counts["camera_infos"] += 1

    def _on_depth(self, msg: Image) -> None:
        self._push(self._depths, msg)
        self.counts["depth_images"] += 1

    def _push(self, buffer: FrameBuffer[Any], msg: Any) -> None:
        stamp = header_ns(msg)
        with self._lock:
            try:
                buffer.push(stamp, msg)
            except OutOfOrderError:
                if len(buffer) and stamp < buffer.newest:  # time jumped back (bag loop, restart)
                    buffer.clear()
                    buffer.push(stamp, msg)

    # ------------------------------------------------------------------ per frame (worker thread)
    def on_frame(self, header: Any, size: Tuple[int, int], box: Optional[Sequence[float]], state: Any,
                 confidence: float, track_id: str, image: ImageSource = None) -> None:
        """One processed frame: ``size`` (width, height), ``box`` (x, y, w, h pixels or None),
        ``state`` (a TrackState or its name), ``image`` (RGB array or a callable giving it; only read
        when debug_image_compressed is on)."""
        if not self.enabled:
            return
        try:
            self._on_frame(header, size, box, getattr(state, "name", str(state)), confidence, track_id, image)
        except Exception as exc:  # the follow-me outputs must never stop the tracking
            self.problems.set("internal", f"{type(exc).__name__}: {exc}")

    def _on_frame(self, header: Any, size: Tuple[int, int], box: Optional[Sequence[float]], name: str,
                  confidence: float, track_id: str, image: ImageSource) -> None:
        self.counts["frames"] += 1
        if self._bearing_pub is not None:
            self._publish_bearing(header, size, box, name, confidence, track_id)
        if self._marker_pub is not None:
            self._publish_markers(header, box, name, confidence, track_id)
        if self._jpeg_pub is not None and image is not None:
            rgb = image() if callable(image) else image
            if box is not None:
                rgb = overlay.draw(rgb, box, track_id, name, confidence)
            data = overlay.encode_jpeg(rgb, int(self.values["jpeg_quality"]))
            self._jpeg_pub.publish(CompressedImage(header=header, format=JPEG_FORMAT, data=data))

    def _publish_bearing(self, header: Any, size: Tuple[int, int], box: Optional[Sequence[float]], state: str,
                         confidence: float, track_id: str) -> None:
        msg = TargetBearing(header=header, track_id=track_id, state=state_number(state),
                            confidence=float(confidence))
        nan = math.nan
        msg.offset_x = msg.offset_y = msg.azimuth = msg.elevation = nan
        msg.angular_width = msg.angular_height = msg.depth = msg.depth_spread = nan
        msg.position = Point(x=nan, y=nan, z=nan)
        if box is not None:
            camera = self._camera(stamp_to_ns(header.stamp), size)
            result = bearing(box, size[0], size[1], camera)
            self._fill_bearing(msg, result)
            if self._point_pub is not None and result.centre_ray is not None:
                self._fill_depth(msg, header, size, box, result)
        self._bearing_pub.publish(msg)

    def _fill_bearing(self, msg: TargetBearing, result: Bearing) -> None:
        msg.valid_offset = True
        msg.offset_x, msg.offset_y = result.offset_x, result.offset_y
        if result.valid_angles:
            self.counts["angles"] += 1
            msg.valid_angles = True
            msg.azimuth, msg.elevation = result.azimuth, result.elevation
            msg.angular_width, msg.angular_height = result.angular_width, result.angular_height

    def _fill_depth(self, msg: TargetBearing, header: Any, size: Tuple[int, int], box: Sequence[float],
                    result: Bearing) -> None:
        estimate = self._depth(stamp_to_ns(header.stamp), size, box)
        msg.depth_valid_fraction = float(estimate.valid_fraction)
        if not estimate.valid:
            return
        x, y, z = back_project(result.centre_ray, estimate.depth)
        msg.valid_position = True
        msg.position = Point(x=x, y=y, z=z)
        msg.depth, msg.depth_spread = estimate.depth, estimate.spread
        self.counts["positions"] += 1
        self._point_pub.publish(PointStamped(header=msg.header, point=msg.position))

    def _camera(self, stamp: int, size: Tuple[int, int]) -> Optional[CameraModel]:
        """The CameraInfo matched to ``stamp`` as a model; None (and a problem said once) if unusable."""
        with self._lock:
            if not len(self._infos):
                return None
            try:
                _, info = self._infos.nearest(stamp, int(self.values["camera_info_tolerance"] * 1e9))
            except FrameBufferError:
                _, info = self._infos.newest_item()
        key = (info.width, info.height, tuple(info.k), tuple(info.d), info.distortion_model,
               info.binning_x, info.binning_y, info.roi.x_offset, info.roi.y_offset, info.roi.width,
               info.roi.height)
        model = self._models.get(key)
        if model is None:
            try:
                model = info_model(info)
            except CameraModelError as exc:
                model = f"invalid CameraInfo: {exc}"
            if len(self._models) > 16:
                self._models.clear()
            self._models[key] = model
        if isinstance(model, str):
            self.problems.set("camera_info", f"{model} (angles not published)")
            return None
        if (model.width, model.height) != tuple(size):
            self.problems.set("camera_info", f"CameraInfo is for {model.width}x{model.height} but the image "
                                             f"is {size[0]}x{size[1]} (angles not published)")
            return None
        self.problems.set("camera_info", "")
        return model

    def _depth(self, stamp: int, size: Tuple[int, int], box: Sequence[float]) -> DepthEstimate:
        with self._lock:
            try:
                _, msg = self._depths.nearest(stamp, int(self.values["depth_tolerance"] * 1e9))
            except FrameBufferError as exc:
                return DepthEstimate(False, reason=f"no depth image for this frame: {exc}")
        try:
            if (int(msg.width), int(msg.height)) != tuple(size):
                raise DepthImageError(f"depth image is {msg.width}x{msg.height} but the image is "
                                      f"{size[0]}x{size[1]}: publish the depth aligned to the colour image")
            depth = depth_from_buffer(msg.data, int(msg.width), int(msg.height), int(msg.step), msg.encoding,
                                      bool(msg.is_bigendian))
        except DepthImageError as exc:
            self.problems.set("depth", str(exc))
            return DepthEstimate(False, reason=str(exc))
        estimate = target_depth(depth, box, float(self.values["depth_central_fraction"]),
                                float(self.values["depth_min_valid_fraction"]))
        self.problems.set("depth", "" if estimate.valid else f"no target depth: {estimate.reason}")
        return estimate

    def _publish_markers(self, header: Any, box: Optional[Sequence[float]], state: str, confidence: float,
                         track_id: str) -> None:
        if box is None:
            if self._markers_shown:
                for marker_id in (overlay.BOX_ID, overlay.LABEL_ID):
                    self._marker_pub.publish(image_marker(header, None, marker_id))
                self._markers_shown = False
            return
        for marker in overlay.markers(box, track_id, state, confidence):
            self._marker_pub.publish(image_marker(header, marker, marker.marker_id))
        self._markers_shown = True

    # ------------------------------------------------------------------ diagnostics, teardown
    def diagnostic_status(self) -> DiagnosticStatus:
        problems = self.problems.snapshot()
        bad = [f"{what}: {text}" for what, text in sorted(problems.items()) if text]
        status = DiagnosticStatus(name=f"{self._node.get_name()}: follow_me", hardware_id="camera")
        status.level = DiagnosticStatus.WARN if bad else DiagnosticStatus.OK
        status.message = "; ".join(bad) if bad else "ok"
        values = {f"{what}_problem": text for what, text in problems.items()}
        values.update({k: str(v) for k, v in self.counts.items()})
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        return status

    def publish_diagnostics(self) -> None:
        msg = DiagnosticArray(status=[self.diagnostic_status()])
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self._diag_pub.publish(msg)

    def destroy(self) -> None:
        """Remove this module's publishers, subscriptions and timer from the node."""
        node = self._node
        for entity in self._entities:
            if isinstance(entity, Publisher):
                node.destroy_publisher(entity)
            elif isinstance(entity, Subscription):
                node.destroy_subscription(entity)
            elif isinstance(entity, Timer):
                node.destroy_timer(entity)
        self._entities = []
