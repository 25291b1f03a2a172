"""MAVLink camera-tracking bridge: a ground station or autopilot starts and stops the tracker.

A separate node (``asymtrack-mavlink-bridge``; needs pymavlink, the ``[mavlink]`` extra) that acts
as a MAVLink camera component (HEARTBEAT as MAV_TYPE_CAMERA) and talks to the tracker node only
through its ROS interfaces:
- MAV_CMD_CAMERA_TRACK_RECTANGLE / _TRACK_POINT -> ``init_box_latest`` (vision_msgs/BoundingBox2D);
- MAV_CMD_CAMERA_STOP_TRACKING -> the tracker's ``~/reset`` service (std_srvs/Trigger);
- ``track_status`` (or ``tracks``) -> CAMERA_TRACKING_IMAGE_STATUS at ``status_rate``;
- MAV_CMD_REQUEST_MESSAGE (CAMERA_INFORMATION, CAMERA_TRACKING_IMAGE_STATUS) and
  MAV_CMD_REQUEST_CAMERA_INFORMATION -> CAMERA_INFORMATION with the tracking capability flags.
Every command addressed to this component gets a COMMAND_ACK; the result codes are in
asymtrack_ros.follow_me.camera_tracking and docs/FOLLOW_ME.md. All MAVLink I/O runs in the
executor's thread (a polling timer), so nothing here needs a lock.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2DArray

from asymtrack_msgs.msg import TrackStatus
from asymtrack_ros.follow_me import camera_tracking as ct
from asymtrack_ros.ros.messages import bbox_to_box, box_to_bbox
from asymtrack_ros.tracking.state import state_name

THROTTLE_S = 5.0
RESET_TIMEOUT_S = 3.0
PARAMETERS: Tuple[Tuple[str, Any, str], ...] = (
    ("mavlink_url", "udpin:0.0.0.0:14580", "pymavlink endpoint: udpin:HOST:PORT (listen, reply to the "
     "sender), udpout:HOST:PORT, or a serial device such as /dev/ttyUSB0"),
    ("serial_baud", 57600, "baud rate of a serial mavlink_url"),
    ("system_id", 1, "MAVLink system id of this camera (the vehicle's)"),
    ("component_id", 100, "MAVLink component id of this camera (MAV_COMP_ID_CAMERA = 100)"),
    ("tracker_node", "asymtrack_node", "name of the tracker node: its reset service is <name>/reset"),
    ("camera_info_topic", "camera_info", "sensor_msgs/CameraInfo giving the image size; empty: none"),
    ("image_topic", "", "sensor_msgs/Image giving the image size when there is no CameraInfo; empty: none"),
    ("status_rate", 5.0, "CAMERA_TRACKING_IMAGE_STATUS messages per second (0: only on request)"),
    ("heartbeat_rate", 1.0, "HEARTBEAT messages per second"),
    ("point_box_size", 0.1, "box side, as a fraction of the image's shorter side, for a TRACK_POINT "
     "command with radius 0"),
    ("poll_rate", 50.0, "how often the MAVLink link is read, per second"),
    ("vendor_name", "asymtrack_ros", "CAMERA_INFORMATION vendor_name"),
    ("model_name", "AsymTrack tracker", "CAMERA_INFORMATION model_name"),
)


@dataclass
class PendingReset:
    command: int
    sender: Tuple[int, int]
    future: Any
    started: float


class MavlinkBridge(Node):
    """The MAVLink camera component in front of one tracker node (see the module docstring)."""

    def __init__(self, node_name: str = "asymtrack_mavlink_bridge", **kwargs: Any):
        super().__init__(node_name, **kwargs)
        for name, default, description in PARAMETERS:
            descriptor = ParameterDescriptor(description=description, read_only=True)
            self.declare_parameter(name, default, descriptor)
        self.values: Dict[str, Any] = {name: self.get_parameter(name).value for name, _, _ in PARAMETERS}
        # pymavlink is the [mavlink] extra: imported with the node only
        from pymavlink.dialects.v20 import common

        from asymtrack_ros.follow_me.mavlink_link import MavlinkLink

        self.mavlink = common
        v = self.values
        self.link = MavlinkLink(v["mavlink_url"], v["system_id"], v["component_id"], v["serial_baud"])
        self._start = time.monotonic()
        self.size: Optional[Tuple[int, int]] = None
        self.state = "IDLE"
        self.box: Optional[Tuple[float, float, float, float]] = None
        self.mode = ct.TrackingMode.NONE
        self.track_id = ""
        self._mode_track = ""  # the track the mode belongs to
        self._mode_after: Optional[str] = None  # set by a command: the mode is for the next track id
        self._have_status = False
        self._pending: List[PendingReset] = []
        self.counts: Dict[str, int] = {"commands": 0, "accepted": 0, "rejected": 0, "status_sent": 0}
        self.last_problem = ""
        self._create_interfaces()
        self.get_logger().info(f"MAVLink camera {v['system_id']}/{v['component_id']} on {v['mavlink_url']}")

    def _create_interfaces(self) -> None:
        v = self.values
        from vision_msgs.msg import BoundingBox2D

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                            reliability=ReliabilityPolicy.BEST_EFFORT)
        self.init_pub = self.create_publisher(BoundingBox2D, "init_box_latest", reliable)
        self.reset_client = self.create_client(Trigger, f"{v['tracker_node']}/reset")
        self.create_subscription(TrackStatus, "track_status", self._on_status, reliable)
        self.create_subscription(Detection2DArray, "tracks", self._on_tracks, reliable)
        if v["camera_info_topic"]:
            self.create_subscription(CameraInfo, v["camera_info_topic"], self._on_size, sensor)
        if v["image_topic"]:
            self.create_subscription(Image, v["image_topic"], self._on_size, sensor)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", reliable)
        self.create_timer(1.0 / max(1.0, v["poll_rate"]), self.poll)
        if v["heartbeat_rate"] > 0:
            self.create_timer(1.0 / v["heartbeat_rate"], self.send_heartbeat)
        if v["status_rate"] > 0:
            self.create_timer(1.0 / v["status_rate"], self.send_tracking_status)
        self.create_timer(1.0, self.publish_diagnostics)

    # ------------------------------------------------------------------ ROS inputs
    def _on_size(self, msg: Any) -> None:
        if msg.width > 0 and msg.height > 0:
            self.size = (int(msg.width), int(msg.height))

    def _on_status(self, msg: TrackStatus) -> None:
        self._have_status = True
        self.state = state_name(msg.state)
        self.box = None if msg.state == TrackStatus.IDLE else self._box_of(msg.bbox)
        self._follow_mode(msg.track_id if self.state != "IDLE" else "")

    def _follow_mode(self, track_id: str) -> None:
        """Tie the commanded mode to the track it started: statuses of frames before the command
        arrive after it; a track started through ROS (init_box) is a rectangle."""
        if track_id and self._mode_after is not None and track_id != self._mode_after:
            self._mode_track, self._mode_after = track_id, None
        elif track_id and self._mode_after is None and track_id != self._mode_track:
            self.mode, self._mode_track = ct.TrackingMode.RECTANGLE, track_id
        elif not track_id and self._mode_after is None:
            self.mode, self._mode_track = ct.TrackingMode.NONE, ""
        self.track_id = track_id

    def _on_tracks(self, msg: Detection2DArray) -> None:
        if self._have_status:  # track_status says more (LOST and its box); tracks is the fallback
            return
        self.box = self._box_of(msg.detections[0].bbox) if msg.detections else None
        self.state = "TRACKING" if self.box is not None else "IDLE"

    @staticmethod
    def _box_of(bbox: Any) -> Optional[Tuple[float, float, float, float]]:
        try:
            return bbox_to_box(bbox)
        except ValueError:
            return None

    # ------------------------------------------------------------------ MAVLink in
    def poll(self) -> None:
        """Read what the link has, answer commands, finish pending resets."""
        bad_before = self.link.bad_packets
        for msg in self.link.receive():
            kind = msg.get_type()
            if kind in ("COMMAND_LONG", "COMMAND_INT"):
                try:
                    self._on_command(msg)
                except Exception as exc:  # a command must never take the bridge down
                    self._problem(f"command {msg.command} failed: {type(exc).__name__}: {exc}")
                    sender = (msg.get_srcSystem(), msg.get_srcComponent())
                    self._ack(msg.command, sender, ct.MavResult.FAILED)
        if self.link.bad_packets != bad_before:
            self._problem(f"{self.link.bad_packets} malformed MAVLink packets ignored "
                          f"(last: {self.link.last_problem})")
        self._finish_resets()

    def _problem(self, text: str) -> None:
        self.last_problem = text
        self.get_logger().warn(text, throttle_duration_sec=THROTTLE_S)

    def _addressed_to_me(self, msg: Any) -> bool:
        v = self.values
        return msg.target_system in (0, v["system_id"]) and msg.target_component in (0, v["component_id"])

    def _on_command(self, msg: Any) -> None:
        if not self._addressed_to_me(msg):
            return
        m = self.mavlink
        sender = (msg.get_srcSystem(), msg.get_srcComponent())
        params = [msg.param1, msg.param2, msg.param3, msg.param4]
        params += [msg.param5, msg.param6] if msg.get_type() == "COMMAND_LONG" else [msg.x, msg.y]
        self.counts["commands"] += 1
        handlers = {
            m.MAV_CMD_CAMERA_TRACK_RECTANGLE: self._track_rectangle,
            m.MAV_CMD_CAMERA_TRACK_POINT: self._track_point,
            m.MAV_CMD_CAMERA_STOP_TRACKING: self._stop_tracking,
            m.MAV_CMD_REQUEST_MESSAGE: self._request_message,
            m.MAV_CMD_REQUEST_CAMERA_INFORMATION: self._request_camera_information,
        }
        handler = handlers.get(msg.command)
        if handler is None:
            if msg.target_component == self.values["component_id"]:
                self._ack(msg.command, sender, ct.MavResult.UNSUPPORTED)
            return
        try:
            result = handler(params, sender)
        except ct.CommandRejected as exc:
            self._problem(f"command {msg.command} rejected ({exc.result.name}): {exc}")
            result = exc.result
        if result is not None:
            self._ack(msg.command, sender, result)

    def _check_camera(self, camera_id: float) -> None:
        if not math.isfinite(camera_id) or int(camera_id) not in (0, self.values["component_id"]):
            raise ct.CommandRejected(ct.MavResult.DENIED, f"camera id {camera_id:g} is not this camera "
                                                          f"(component {self.values['component_id']})")

    def _init(self, box: Tuple[float, float, float, float], mode: ct.TrackingMode) -> ct.MavResult:
        if self.init_pub.get_subscription_count() == 0:
            raise ct.CommandRejected(ct.MavResult.TEMPORARILY_REJECTED,
                                     f"no tracker subscribes {self.init_pub.topic_name}")
        self.init_pub.publish(box_to_bbox(box))
        self.mode, self._mode_after = mode, self.track_id
        self.counts["accepted"] += 1
        self.get_logger().info(f"{mode.name.lower()} tracking command: init box "
                               f"{tuple(round(v, 1) for v in box)}")
        return ct.MavResult.ACCEPTED

    def _track_rectangle(self, p: List[float], sender: Tuple[int, int]) -> ct.MavResult:
        self._check_camera(p[4])
        return self._init(ct.rectangle_to_box(p[0], p[1], p[2], p[3], self.size), ct.TrackingMode.RECTANGLE)

    def _track_point(self, p: List[float], sender: Tuple[int, int]) -> ct.MavResult:
        self._check_camera(p[3])
        box = ct.point_to_box(p[0], p[1], p[2], self.size, float(self.values["point_box_size"]))
        return self._init(box, ct.TrackingMode.POINT)

    def _stop_tracking(self, p: List[float], sender: Tuple[int, int]) -> Optional[ct.MavResult]:
        self._check_camera(p[0])
        if not self.reset_client.service_is_ready():
            raise ct.CommandRejected(ct.MavResult.TEMPORARILY_REJECTED,
                                     f"the tracker's {self.reset_client.srv_name} service is not available")
        future = self.reset_client.call_async(Trigger.Request())
        self._pending.append(PendingReset(self.mavlink.MAV_CMD_CAMERA_STOP_TRACKING, sender, future,
                                          time.monotonic()))
        return None  # acknowledged when the service answers

    def _finish_resets(self) -> None:
        still: List[PendingReset] = []
        for pending in self._pending:
            if pending.future.done():
                response = pending.future.result()
                ok = response is not None and response.success
                if ok:
                    self.mode, self._mode_after = ct.TrackingMode.NONE, None
                else:
                    reason = getattr(response, "message", "no response")
                    self._problem(f"the tracker's reset failed: {reason}")
                result = ct.MavResult.ACCEPTED if ok else ct.MavResult.FAILED
                self._ack(pending.command, pending.sender, result)
            elif time.monotonic() - pending.started > RESET_TIMEOUT_S:
                pending.future.cancel()
                self._problem(f"the tracker's reset did not answer within {RESET_TIMEOUT_S:g} s")
                self._ack(pending.command, pending.sender, ct.MavResult.FAILED)
            else:
                still.append(pending)
        self._pending = still

    def _request_message(self, p: List[float], sender: Tuple[int, int]) -> Optional[ct.MavResult]:
        m = self.mavlink
        senders = {m.MAVLINK_MSG_ID_CAMERA_INFORMATION: self.send_camera_information,
                   m.MAVLINK_MSG_ID_CAMERA_TRACKING_IMAGE_STATUS: self.send_tracking_status,
                   m.MAVLINK_MSG_ID_HEARTBEAT: self.send_heartbeat}
        if not math.isfinite(p[0]) or int(p[0]) not in senders:
            raise ct.CommandRejected(ct.MavResult.DENIED,
                                     f"message id {p[0]:g} is not provided by this camera")
        self._ack(m.MAV_CMD_REQUEST_MESSAGE, sender, ct.MavResult.ACCEPTED)
        senders[int(p[0])]()
        return None

    def _request_camera_information(self, p: List[float], sender: Tuple[int, int]) -> Optional[ct.MavResult]:
        self._ack(self.mavlink.MAV_CMD_REQUEST_CAMERA_INFORMATION, sender, ct.MavResult.ACCEPTED)
        if p[0] == 1:
            self.send_camera_information()
        return None

    # ------------------------------------------------------------------ MAVLink out
    def _ack(self, command: int, sender: Tuple[int, int], result: ct.MavResult) -> None:
        if result != ct.MavResult.ACCEPTED:
            self.counts["rejected"] += 1
        self.link.mav.command_ack_send(command, int(result), 0, 0, sender[0], sender[1])

    def send_heartbeat(self) -> None:
        m = self.mavlink
        self.link.mav.heartbeat_send(m.MAV_TYPE_CAMERA, m.MAV_AUTOPILOT_INVALID, 0, 0, m.MAV_STATE_ACTIVE)

    def send_camera_information(self) -> None:
        width, height = self.size or (0, 0)
        flags = ct.CAP_HAS_TRACKING_POINT | ct.CAP_HAS_TRACKING_RECTANGLE
        from asymtrack_ros.follow_me.mavlink_link import text_field

        vendor, model = (text_field(self.values[name], 32) for name in ("vendor_name", "model_name"))
        # focal length and sensor size are unknown (NaN); the URI is empty: no camera definition file
        self.link.mav.camera_information_send(self._boot_ms(), vendor, model, 0, math.nan, math.nan, math.nan,
                                              width, height, 0, flags, 0, b"", 0, 0)

    def send_tracking_status(self) -> None:
        status = ct.image_status(self.state, self.box, self.mode, self.size)
        self.link.mav.camera_tracking_image_status_send(
            status.tracking_status, status.tracking_mode, status.target_data, status.point_x, status.point_y,
            status.radius, status.rec_top_x, status.rec_top_y, status.rec_bottom_x, status.rec_bottom_y, 0)
        self.counts["status_sent"] += 1

    def _boot_ms(self) -> int:
        return int((time.monotonic() - self._start) * 1000) & 0xFFFFFFFF

    # ------------------------------------------------------------------ diagnostics, teardown
    def publish_diagnostics(self) -> None:
        status = DiagnosticStatus(name=f"{self.get_name()}: mavlink", hardware_id=self.values["mavlink_url"])
        waiting = "no image size yet (no CameraInfo/image received)" if self.size is None else ""
        problems = [text for text in (waiting, self.last_problem) if text]
        status.level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        status.message = "; ".join(problems) if problems else f"tracking state {self.state}"
        values = {k: str(v) for k, v in self.counts.items()}
        values.update(bad_packets=str(self.link.bad_packets), state=self.state,
                      last_problem=self.last_problem,
                      image_size=f"{self.size[0]}x{self.size[1]}" if self.size else "")
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)

    def destroy_node(self) -> None:
        self.link.close()
        super().destroy_node()


def main(args: Optional[List[str]] = None) -> int:
    """``ros2 run asymtrack_ros asymtrack_mavlink_bridge`` / ``asymtrack-mavlink-bridge``."""
    try:
        import pymavlink  # noqa: F401
    except ImportError:
        print("asymtrack_mavlink_bridge needs pymavlink: pip install 'asymtrack_ros[mavlink]'",
              file=sys.stderr)
        return 2
    rclpy.init(args=args)
    node = None
    try:
        node = MavlinkBridge()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
