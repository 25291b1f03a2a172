"""The MAVLink camera-tracking bridge end to end: pymavlink plays the ground station over UDP on
127.0.0.1, the bridge talks to the real tracker node (demo model, ONNX Runtime) over DDS, and a
test node plays the camera (synthetic frames and CameraInfo).
"""

from __future__ import annotations

import math
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
pytest.importorskip("pymavlink", reason="pymavlink is not installed (the [mavlink] extra)")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not built (scripts/setup.sh)")
pytest.importorskip("asymtrack_msgs.msg", reason="asymtrack_msgs is not built (scripts/setup.sh)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from pymavlink.dialects.v20 import common as mav  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from vision_msgs.msg import Detection2D, Detection2DArray  # noqa: E402

from asymtrack_msgs.msg import TrackStatus  # noqa: E402
from asymtrack_ros.follow_me.mavlink_link import MavlinkLink  # noqa: E402
from asymtrack_ros.ros.mavlink_bridge import MavlinkBridge  # noqa: E402
from asymtrack_ros.ros.messages import bbox_to_box, box_to_bbox, make_image  # noqa: E402
from asymtrack_ros.synthetic import make_sequence  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "asymtrack_t_demo.pt"
RELIABLE = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
TIMEOUT = 15.0
H, W = 240, 320
SYS, COMP = 1, 100


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


class GroundStation:
    """pymavlink as a ground station (system 255, component 190) sending to the bridge."""

    def __init__(self, port: int):
        self.link = MavlinkLink(f"udpout:127.0.0.1:{port}", 255, 190)
        self.inbox: List[Any] = []

    def command(self, command: int, *params: float, component: int = COMP, confirmation: int = 0) -> None:
        values = list(params) + [0.0] * (7 - len(params))
        self.link.mav.command_long_send(SYS, component, command, confirmation, *values)

    def expect(self, predicate: Callable[[Any], bool], what: str, timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.inbox += self.link.receive()
            for i, msg in enumerate(self.inbox):
                if predicate(msg):
                    del self.inbox[:i + 1]
                    return msg
            time.sleep(0.01)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def ack(self, command: int, timeout: float = TIMEOUT) -> int:
        msg = self.expect(lambda m: m.get_type() == "COMMAND_ACK" and m.command == command,
                          f"COMMAND_ACK of {command}", timeout)
        assert (msg.target_system, msg.target_component) == (255, 190)
        assert (msg.get_srcSystem(), msg.get_srcComponent()) == (SYS, COMP)
        return msg.result

    def run(self, command: int, *params: float) -> int:
        """Send a command until it is acknowledged, as the MAVLink command protocol does over UDP
        (a datagram can be lost), with the confirmation field counting the retries."""
        self.inbox.clear()
        for confirmation in range(int(TIMEOUT)):
            self.command(command, *params, confirmation=confirmation)
            try:
                return self.ack(command, timeout=1.0)
            except AssertionError:
                continue
        raise AssertionError(f"no COMMAND_ACK of {command} after {int(TIMEOUT)} tries")

    def tracking_status(self, predicate: Callable[[Any], bool], what: str) -> Any:
        return self.expect(lambda m: m.get_type() == "CAMERA_TRACKING_IMAGE_STATUS" and predicate(m), what)

    def close(self) -> None:
        self.link.close()


class Rig:
    """The tracker node (optional), the bridge, a camera node and a ground station."""

    def __init__(self, namespace: str, tracker: bool = True, **bridge_params: Any):
        self.port = free_udp_port()
        self.nodes: List[Node] = []
        if tracker:
            from asymtrack_ros.ros.node import AsymTrackNode

            topic = f"/{namespace.strip('/')}/image".replace("//", "/")
            params = {"model": str(MODEL), "backend": "onnxruntime", "threads": 1, "autostart": True,
                      f"qos_overrides.{topic}.subscription.reliability": "reliable",
                      f"qos_overrides.{topic}.subscription.depth": 5}
            self.tracker = AsymTrackNode(namespace=namespace, parameter_overrides=[
                Parameter(k, value=v) for k, v in params.items()])
            self.nodes.append(self.tracker)
        bridge_params.update(mavlink_url=f"udpin:127.0.0.1:{self.port}", status_rate=10.0)
        self.bridge = MavlinkBridge(namespace=namespace, parameter_overrides=[
            Parameter(k, value=v) for k, v in bridge_params.items()])
        self.camera = Node("camera", namespace=namespace)
        self.nodes += [self.bridge, self.camera]
        self.image_pub = self.camera.create_publisher(Image, "image", RELIABLE)
        self.info_pub = self.camera.create_publisher(CameraInfo, "camera_info", RELIABLE)
        self.lock = threading.Lock()
        self.status: List[TrackStatus] = []
        self.diagnostics: List[Dict[str, str]] = []
        self.camera.create_subscription(TrackStatus, "track_status", self._keep_status, RELIABLE)
        self.camera.create_subscription(DiagnosticArray, "/diagnostics", self._keep_diag, RELIABLE)
        self.executor = SingleThreadedExecutor()
        for node in self.nodes:
            self.executor.add_node(node)
        self.spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self.spinner.start()
        self.sequence = make_sequence(11, 40, size=(H, W), speed=2.0, distractors=2)
        self.frame_index = 0
        self._stop = threading.Event()
        self._images: Optional[threading.Thread] = None
        self.gcs = GroundStation(self.port)

    def _keep_status(self, msg: TrackStatus) -> None:
        with self.lock:
            self.status.append(msg)

    def _keep_diag(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.diagnostics += [{kv.key: kv.value for kv in s.values} for s in msg.status
                                 if s.name.endswith(": mavlink")]

    def start_camera(self) -> None:
        """Publish the sequence forwards and backwards at 20 Hz, each frame with its CameraInfo."""
        def run() -> None:
            n, i = len(self.sequence.frames), 0
            while not self._stop.is_set():
                index = i % (2 * n - 2)
                self.frame_index = index if index < n else 2 * n - 2 - index
                image = make_image(self.sequence.frames[self.frame_index], "rgb8")
                image.header.stamp.sec, image.header.stamp.nanosec = 100 + i // 20, (i % 20) * 50_000_000
                self.info_pub.publish(CameraInfo(header=image.header, width=W, height=H))
                self.image_pub.publish(image)
                i += 1
                time.sleep(0.05)

        self._images = threading.Thread(target=run, daemon=True)
        self._images.start()

    def wait_ready(self) -> None:
        """The tracker has loaded its model and the bridge knows the image size."""
        if self.nodes[0] is not self.bridge:
            deadline = time.monotonic() + 60
            while not self.tracker.ready.is_set():
                assert time.monotonic() < deadline, "the tracker did not load its model"
                time.sleep(0.05)
        deadline = time.monotonic() + TIMEOUT
        while True:
            self.gcs.command(mav.MAV_CMD_REQUEST_MESSAGE, mav.MAVLINK_MSG_ID_CAMERA_INFORMATION)
            info = self.gcs.expect(lambda m: m.get_type() == "CAMERA_INFORMATION", "CAMERA_INFORMATION")
            if info.resolution_h == W and info.resolution_v == H:
                return
            assert time.monotonic() < deadline, "the bridge did not learn the image size"
            time.sleep(0.2)

    def box(self) -> tuple:
        return tuple(float(v) for v in self.sequence.boxes[self.frame_index])

    def close(self) -> None:
        self._stop.set()
        if self._images is not None:
            self._images.join(timeout=5)
        self.gcs.close()
        self.executor.shutdown(timeout_sec=2.0)
        for node in self.nodes:
            node.destroy_node()
        self.spinner.join(timeout=5)


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def make_rig(ros, request):
    rigs: List[Rig] = []

    def make(tracker: bool = True, **bridge_params: Any) -> Rig:
        if tracker:
            pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
            if not MODEL.with_suffix(".search.onnx").is_file():
                pytest.skip(f"the demo model's ONNX files are not in {MODEL.parent}")
        rig = Rig(f"/mav_{request.node.name}_{len(rigs)}", tracker, **bridge_params)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def normalised(box) -> tuple:
    x, y, w, h = box
    return (x / W, y / H, (x + w) / W, (y + h) / H)


# ---------------------------------------------------------------------- tests
def test_camera_identity_and_no_image_yet(make_rig):
    rig = make_rig()
    gcs = rig.gcs
    request = (mav.MAV_CMD_REQUEST_MESSAGE, mav.MAVLINK_MSG_ID_CAMERA_INFORMATION)
    assert gcs.run(*request) == mav.MAV_RESULT_ACCEPTED
    info = gcs.expect(lambda m: m.get_type() == "CAMERA_INFORMATION", "CAMERA_INFORMATION")
    assert info.flags & mav.CAMERA_CAP_FLAGS_HAS_TRACKING_RECTANGLE
    assert info.flags & mav.CAMERA_CAP_FLAGS_HAS_TRACKING_POINT
    assert bytes(info.vendor_name).rstrip(b"\0") == b"asymtrack_ros"
    assert (info.resolution_h, info.resolution_v) == (0, 0) and math.isnan(info.focal_length)
    beat = gcs.expect(lambda m: m.get_type() == "HEARTBEAT", "HEARTBEAT")
    assert beat.type == mav.MAV_TYPE_CAMERA and beat.autopilot == mav.MAV_AUTOPILOT_INVALID
    assert (beat.get_srcSystem(), beat.get_srcComponent()) == (SYS, COMP)
    idle = gcs.tracking_status(lambda m: True, "CAMERA_TRACKING_IMAGE_STATUS")
    assert idle.tracking_status == mav.CAMERA_TRACKING_STATUS_FLAGS_IDLE and math.isnan(idle.rec_top_x)
    # no image yet: the size is unknown, try again later
    result = gcs.run(mav.MAV_CMD_CAMERA_TRACK_RECTANGLE, 0.2, 0.2, 0.4, 0.4)
    assert result == mav.MAV_RESULT_TEMPORARILY_REJECTED
    assert gcs.run(mav.MAV_CMD_CAMERA_TRACK_POINT, 0.5, 0.5, 0.0) == mav.MAV_RESULT_TEMPORARILY_REJECTED


def test_rectangle_in_tracks_out_then_stop(make_rig):
    rig = make_rig()
    rig.start_camera()
    rig.wait_ready()
    gcs = rig.gcs
    for bad in [(0.5, 0.5, 1.2, 0.9), (-0.1, 0.2, 0.3, 0.4), (0.6, 0.6, 0.5, 0.7), (math.nan, 0.2, 0.3, 0.4),
                (0.2, 0.2, 0.4, 0.4, 7), (0.2, 0.2, 0.4, 0.4, math.nan)]:  # other cameras
        assert gcs.run(mav.MAV_CMD_CAMERA_TRACK_RECTANGLE, *bad) == mav.MAV_RESULT_DENIED, bad
    truth = rig.box()
    assert gcs.run(mav.MAV_CMD_CAMERA_TRACK_RECTANGLE, *normalised(truth)) == mav.MAV_RESULT_ACCEPTED
    active = gcs.tracking_status(lambda m: m.tracking_status & mav.CAMERA_TRACKING_STATUS_FLAGS_ACTIVE,
                                 "an ACTIVE tracking status")
    assert active.tracking_mode == mav.CAMERA_TRACKING_MODE_RECTANGLE
    assert active.target_data == mav.CAMERA_TRACKING_TARGET_DATA_IN_STATUS and math.isnan(active.point_x)
    sent = (active.rec_top_x, active.rec_top_y, active.rec_bottom_x, active.rec_bottom_y)
    with rig.lock:  # the status is the tracker's own box, normalised
        boxes = [normalised(bbox_to_box(s.bbox)) for s in rig.status if s.state != TrackStatus.IDLE]
    assert any(np.allclose(sent, box, atol=1e-5) for box in boxes), (sent, boxes[-3:])
    x0, y0, x1, y1 = sent
    assert iou((x0 * W, y0 * H, (x1 - x0) * W, (y1 - y0) * H), truth) > 0.3  # near the commanded target
    assert gcs.run(mav.MAV_CMD_CAMERA_STOP_TRACKING) == mav.MAV_RESULT_ACCEPTED
    idle = gcs.tracking_status(lambda m: m.tracking_status == mav.CAMERA_TRACKING_STATUS_FLAGS_IDLE,
                               "an IDLE tracking status after stop")
    assert idle.tracking_mode == mav.CAMERA_TRACKING_MODE_NONE
    rig.wait_ready()  # still answering


def test_point_becomes_a_box(make_rig):
    rig = make_rig()
    rig.start_camera()
    rig.wait_ready()
    x, y, w, h = rig.box()
    cx, cy = (x + w / 2) / W, (y + h / 2) / H
    assert rig.gcs.run(mav.MAV_CMD_CAMERA_TRACK_POINT, cx, cy, w / 2 / W) == mav.MAV_RESULT_ACCEPTED
    status = rig.gcs.tracking_status(lambda m: m.tracking_status & mav.CAMERA_TRACKING_STATUS_FLAGS_ACTIVE,
                                     "an ACTIVE tracking status")
    assert status.tracking_mode == mav.CAMERA_TRACKING_MODE_POINT and math.isnan(status.rec_top_x)
    assert abs(status.point_x - cx) < 0.1 and abs(status.point_y - cy) < 0.1 and status.radius > 0
    assert rig.gcs.run(mav.MAV_CMD_CAMERA_TRACK_POINT, 1.5, 0.5, 0.0) == mav.MAV_RESULT_DENIED


def test_malformed_packets_do_not_crash_it_or_tracking(make_rig):
    rig = make_rig()
    rig.start_camera()
    rig.wait_ready()
    gcs = rig.gcs
    assert gcs.run(mav.MAV_CMD_CAMERA_TRACK_RECTANGLE, *normalised(rig.box())) == mav.MAV_RESULT_ACCEPTED
    gcs.tracking_status(lambda m: m.tracking_status & mav.CAMERA_TRACKING_STATUS_FLAGS_ACTIVE, "ACTIVE")
    rng = np.random.default_rng(16)
    encoder = mav.MAVLink(None, 255, 190)
    stop = encoder.command_long_encode(SYS, COMP, mav.MAV_CMD_CAMERA_STOP_TRACKING, 0, 0, 0, 0, 0, 0, 0, 0)
    valid = stop.pack(encoder)
    corrupt = bytearray(valid)
    corrupt[-1] ^= 0xFF  # bad CRC: must not stop tracking
    payloads = [bytes(rng.integers(0, 256, int(n), dtype=np.uint8)) for n in rng.integers(1, 300, 200)]
    payloads += [b"\xfd" + bytes(rng.integers(0, 256, 40, dtype=np.uint8)) for _ in range(50)]
    payloads += [valid[:7], valid[:-3], bytes(corrupt), b"\xfe\xff" * 100]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        for data in payloads:
            gcs.link.write(data)
            other.sendto(data, ("127.0.0.1", rig.port))
    # still answering, to the ground station once it speaks again, and still tracking
    request = (mav.MAV_CMD_REQUEST_MESSAGE, mav.MAVLINK_MSG_ID_CAMERA_INFORMATION)
    assert gcs.run(*request) == mav.MAV_RESULT_ACCEPTED
    gcs.tracking_status(lambda m: m.tracking_status & mav.CAMERA_TRACKING_STATUS_FLAGS_ACTIVE,
                        "ACTIVE after the garbage")
    deadline = time.monotonic() + TIMEOUT
    while not any(int(d.get("bad_packets", "0")) > 0 for d in rig.diagnostics):
        assert time.monotonic() < deadline, "no bad_packets count on /diagnostics"
        time.sleep(0.05)
    with rig.lock:
        assert rig.status[-1].state != TrackStatus.IDLE  # the tracker never saw a stop


def test_addressing_and_unsupported_commands(make_rig):
    rig = make_rig()
    gcs = rig.gcs
    gcs.command(mav.MAV_CMD_CAMERA_STOP_TRACKING, component=50)  # another component's
    assert gcs.run(mav.MAV_CMD_DO_SET_MODE, 1, 0) == mav.MAV_RESULT_UNSUPPORTED
    assert not [m for m in gcs.inbox if m.get_type() == "COMMAND_ACK"
                and m.command == mav.MAV_CMD_CAMERA_STOP_TRACKING]
    assert gcs.run(mav.MAV_CMD_REQUEST_MESSAGE, mav.MAVLINK_MSG_ID_ATTITUDE) == mav.MAV_RESULT_DENIED
    assert gcs.run(mav.MAV_CMD_REQUEST_MESSAGE, mav.MAVLINK_MSG_ID_CAMERA_TRACKING_IMAGE_STATUS) == \
        mav.MAV_RESULT_ACCEPTED
    assert gcs.run(mav.MAV_CMD_REQUEST_CAMERA_INFORMATION, 1) == mav.MAV_RESULT_ACCEPTED
    gcs.expect(lambda m: m.get_type() == "CAMERA_INFORMATION", "CAMERA_INFORMATION")


def test_without_a_tracker_commands_wait(make_rig):
    rig = make_rig(tracker=False, camera_info_topic="", image_topic="image")  # the size from the images
    rig.start_camera()
    rig.wait_ready()
    assert rig.gcs.run(mav.MAV_CMD_CAMERA_TRACK_RECTANGLE, 0.2, 0.2, 0.4, 0.4) == \
        mav.MAV_RESULT_TEMPORARILY_REJECTED
    assert rig.gcs.run(mav.MAV_CMD_CAMERA_STOP_TRACKING) == mav.MAV_RESULT_TEMPORARILY_REJECTED
    # a tracker that publishes only vision_msgs tracks: a detection is TRACKING, none is IDLE
    tracks_pub = rig.camera.create_publisher(Detection2DArray, "tracks", RELIABLE)
    box = (64.0, 48.0, 32.0, 24.0)
    deadline = time.monotonic() + TIMEOUT
    while tracks_pub.get_subscription_count() == 0:
        assert time.monotonic() < deadline, "the bridge does not subscribe tracks"
        time.sleep(0.02)
    tracks_pub.publish(Detection2DArray(detections=[Detection2D(bbox=box_to_bbox(box))]))
    active = rig.gcs.tracking_status(lambda m: m.tracking_status == mav.CAMERA_TRACKING_STATUS_FLAGS_ACTIVE,
                                     "ACTIVE from tracks")
    assert active.tracking_mode == mav.CAMERA_TRACKING_MODE_RECTANGLE
    assert (active.rec_top_x, active.rec_top_y, active.rec_bottom_x, active.rec_bottom_y) == \
        pytest.approx(normalised(box))
    tracks_pub.publish(Detection2DArray())
    rig.gcs.tracking_status(lambda m: m.tracking_status == mav.CAMERA_TRACKING_STATUS_FLAGS_IDLE,
                            "IDLE again")


def test_serial_link_through_a_pseudo_terminal(ros):
    """The serial endpoint (pymavlink's mavutil over pyserial) on a pty pair: the test holds the
    master side as the ground station's radio."""
    pytest.importorskip("serial", reason="pyserial is not installed (the [mavlink] extra)")
    import os
    import select
    import tty

    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    bridge = MavlinkBridge(namespace="/mav_serial", parameter_overrides=[
        Parameter("mavlink_url", value=os.ttyname(slave)), Parameter("serial_baud", value=115200)])
    executor = SingleThreadedExecutor()
    executor.add_node(bridge)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    encoder, decoder = mav.MAVLink(None, 255, 190), mav.MAVLink(None)
    decoder.robust_parsing = True

    def command(number: int, *params: float) -> int:
        values = list(params) + [0.0] * (7 - len(params))
        os.write(master, encoder.command_long_encode(SYS, COMP, number, 0, *values).pack(encoder))
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                for msg in decoder.parse_buffer(os.read(master, 4096)) or []:
                    if msg.get_type() == "COMMAND_ACK" and msg.command == number:
                        return msg.result
        raise AssertionError(f"no COMMAND_ACK of {number} on the serial link")

    try:
        os.write(master, bytes(np.random.default_rng(5).integers(0, 256, 2000, dtype=np.uint8)))
        assert command(mav.MAV_CMD_REQUEST_MESSAGE, mav.MAVLINK_MSG_ID_CAMERA_INFORMATION) == \
            mav.MAV_RESULT_ACCEPTED
        assert command(mav.MAV_CMD_CAMERA_STOP_TRACKING) == mav.MAV_RESULT_TEMPORARILY_REJECTED  # no tracker
        assert bridge.link.bad_packets > 0
    finally:
        executor.shutdown(timeout_sec=2.0)
        bridge.destroy_node()
        spinner.join(timeout=5)
        os.close(master)
        os.close(slave)
