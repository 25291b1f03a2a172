"""The follow-me ROS glue over real DDS: a host node owns a FollowMe, a tester node publishes
CameraInfo and depth images and receives the bearing, 3D point, image markers, JPEG debug image and
diagnostics. ``on_frame`` is called as the tracker node's worker calls it, once per processed frame.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
pytest.importorskip("visualization_msgs.msg", reason="visualization_msgs is not installed (scripts/setup.sh)")
pytest.importorskip("asymtrack_msgs.msg", reason="asymtrack_msgs is not built (scripts/setup.sh)")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import PointStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import ImageMarker  # noqa: E402

from asymtrack_msgs.msg import TargetBearing  # noqa: E402
from asymtrack_ros.follow_me.bearing import bearing  # noqa: E402
from asymtrack_ros.follow_me.camera import camera_model  # noqa: E402
from asymtrack_ros.ros.follow_me import FollowMe  # noqa: E402
from asymtrack_ros.ros.messages import make_image  # noqa: E402
from asymtrack_ros.stamps import split_ns  # noqa: E402
from asymtrack_ros.tracking import TrackState  # noqa: E402

pytestmark = pytest.mark.ros

W, H = 320, 240
K = [250.0, 0.0, 161.0, 0.0, 252.0, 118.0, 0.0, 0.0, 1.0]
D = [-0.2, 0.05, 0.001, -0.001, 0.0]
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
TIMEOUT = 10.0
T0 = 2000 * 1_000_000_000


def header(i: int) -> Header:
    msg = Header(frame_id="camera_optical")
    msg.stamp.sec, msg.stamp.nanosec = split_ns(T0 + i * 50_000_000)
    return msg


def camera_info(i: int, k=K, d=D, model="plumb_bob", size=(W, H)) -> CameraInfo:
    return CameraInfo(header=header(i), width=size[0], height=size[1], k=[float(v) for v in k],
                      d=[float(v) for v in d], distortion_model=model)


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


class Rig:
    """A host node with a FollowMe and a tester node, spun by one executor in a thread."""

    def __init__(self, params: Dict[str, Any], namespace: str):
        overrides = [Parameter(name, value=value) for name, value in params.items()]
        self.host = Node("follow_me_host", namespace=namespace, parameter_overrides=overrides)
        self.follow = FollowMe(self.host)
        self.follow.start()  # what the node does when it activates
        self.tester = Node("follow_me_tester", namespace=namespace)
        self.lock = threading.Lock()
        self.got: Dict[str, List[Any]] = {k: [] for k in ("bearing", "point", "markers", "jpeg", "diag")}
        t = self.tester
        t.create_subscription(TargetBearing, "target_bearing", self._keep("bearing"), RELIABLE)
        t.create_subscription(PointStamped, "target_point", self._keep("point"), RELIABLE)
        t.create_subscription(ImageMarker, "image_markers", self._keep("markers"), RELIABLE)
        t.create_subscription(CompressedImage, "debug_image/compressed", self._keep("jpeg"),
                              QoSProfile(depth=10))
        t.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, RELIABLE)
        self.info_pub = t.create_publisher(CameraInfo, "camera_info", RELIABLE)
        self.depth_pub = t.create_publisher(Image, "depth", RELIABLE)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.host)
        self.executor.add_node(self.tester)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _keep(self, key: str) -> Callable[[Any], None]:
        def keep(msg: Any) -> None:
            with self.lock:
                self.got[key].append(msg)
        return keep

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.got["diag"] += [s for s in msg.status if s.name.endswith("follow_me")]

    def wait(self, what: Callable[[], bool], why: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not what():
            assert time.monotonic() < deadline, f"timed out waiting for {why}"
            time.sleep(0.02)

    def wait_for(self, key: str, count: int) -> List[Any]:
        self.wait(lambda: len(self.got[key]) >= count, f"{count} {key} messages")
        with self.lock:
            return list(self.got[key])

    def send(self, pub: Any, msg: Any, counter: str) -> None:
        """Publish once the host subscribes, and wait until the FollowMe has the message."""
        self.wait(lambda: pub.get_subscription_count() > 0, f"a subscriber on {pub.topic_name}")
        before = self.follow.counts[counter]
        pub.publish(msg)
        self.wait(lambda: self.follow.counts[counter] > before, f"{counter} to arrive")

    def frame(self, i: int, box: Optional[tuple], state: TrackState = TrackState.TRACKING,
              image: Optional[np.ndarray] = None, confidence: float = 0.9) -> None:
        self.wait_subscribed()
        self.follow.on_frame(header(i), (W, H), box, state, confidence, "4" if box is not None else "", image)

    def wait_subscribed(self) -> None:
        for topic in ("target_bearing", "image_markers", "debug_image/compressed"):
            pubs = self.tester.get_publishers_info_by_topic(self.host.resolve_topic_name(topic))
            if pubs:
                self.wait(lambda t=topic: self.host.count_subscribers(self.host.resolve_topic_name(t)) > 0,
                          f"a subscriber on {topic}")

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=5)
        self.follow.destroy()
        self.host.destroy_node()
        self.tester.destroy_node()


@pytest.fixture
def rig_factory(ros, request):
    rigs: List[Rig] = []
    counter = [0]

    def make(**params: Any) -> Rig:
        counter[0] += 1
        rig = Rig(params, f"/fm_{request.node.name[:20].replace('[', '_').replace(']', '_')}_{counter[0]}")
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def truth_bearing(box, k=K, d=D):
    return bearing(box, W, H, camera_model(W, H, k, d, "plumb_bob"))


# ---------------------------------------------------------------------- bearing and camera info
def test_defaults_create_no_follow_me_topics(ros):
    node = Node("follow_me_defaults", namespace="/fm_defaults")
    try:
        follow = FollowMe(node)
        follow.start()
        assert not follow.enabled
        names = {name for name, _ in node.get_topic_names_and_types()}
        ours = ("target_bearing", "image_markers", "camera_info")
        assert not names & {f"/fm_defaults/{topic}" for topic in ours}
        follow.on_frame(header(0), (W, H), (1, 2, 3, 4), TrackState.TRACKING, 0.5, "1")  # a no-op
        assert follow.counts["frames"] == 0
        follow.destroy()
    finally:
        node.destroy_node()


def test_bearing_uses_the_camera_info_of_the_frame_stamp(rig_factory):
    rig = rig_factory(publish_bearing=True)
    other_k = list(K)
    other_k[2] = 100.0  # a different principal point, stamped on frame 1
    rig.send(rig.info_pub, camera_info(0), "camera_infos")
    rig.send(rig.info_pub, camera_info(1, k=other_k), "camera_infos")
    box = (200.0, 60.0, 40.0, 30.0)
    rig.frame(0, box)
    rig.frame(1, box, TrackState.LOST, confidence=0.2)
    first, second = rig.wait_for("bearing", 2)
    assert first.header.stamp == header(0).stamp and first.header.frame_id == "camera_optical"
    assert (first.track_id, first.state) == ("4", TargetBearing.TRACKING)
    assert first.valid_angles and first.valid_offset
    expected = truth_bearing(box)
    assert first.azimuth == pytest.approx(expected.azimuth, abs=1e-6) and first.azimuth > 0
    assert first.elevation == pytest.approx(expected.elevation, abs=1e-6) and first.elevation > 0
    assert first.angular_width == pytest.approx(expected.angular_width, abs=1e-6)
    assert (first.offset_x, first.offset_y) == pytest.approx(((220 - 160) / 160, (75 - 120) / 120))
    assert not first.valid_position and math.isnan(first.depth)
    assert second.state == TargetBearing.LOST and second.confidence == pytest.approx(0.2)
    assert second.azimuth == pytest.approx(truth_bearing(box, k=other_k).azimuth, abs=1e-6)
    assert second.azimuth > first.azimuth  # the principal point moved left


def test_without_camera_info_offsets_only_and_a_diagnostic(rig_factory):
    rig = rig_factory(publish_bearing=True)
    rig.frame(0, (10.0, 10.0, 20.0, 20.0))
    rig.frame(1, None, TrackState.IDLE, confidence=0.0)
    with_box, idle = rig.wait_for("bearing", 2)
    assert with_box.valid_offset and not with_box.valid_angles and math.isnan(with_box.azimuth)
    assert with_box.offset_x == pytest.approx(-0.875)
    assert idle.state == TargetBearing.IDLE and not idle.valid_offset and idle.track_id == ""
    status = rig.wait_for("diag", 1)[-1]
    assert status.level == DiagnosticStatus.WARN and "no CameraInfo" in status.message


@pytest.mark.parametrize("bad,match", [
    (dict(k=[0.0] * 9), "no focal length"),
    (dict(k=[250.0, 0, 160, 0, float("nan"), 120, 0, 0, 1]), "non-finite"),
    (dict(size=(640, 480), k=[500.0, 0, 320, 0, 500, 240, 0, 0, 1]), "CameraInfo is for 640x480"),
    (dict(model="kannala_brandt"), "not supported"),
])
def test_bad_camera_info_is_reported_and_angles_resume_with_a_good_one(rig_factory, bad, match):
    rig = rig_factory(publish_bearing=True)
    rig.send(rig.info_pub, camera_info(0, **bad), "camera_infos")
    box = (100.0, 100.0, 30.0, 30.0)
    rig.frame(0, box)
    (msg,) = rig.wait_for("bearing", 1)
    assert msg.valid_offset and not msg.valid_angles
    rig.wait(lambda: any(match in s.message for s in rig.got["diag"]), f"a diagnostic saying {match!r}")
    rig.send(rig.info_pub, camera_info(1), "camera_infos")
    rig.frame(1, box)
    msg = rig.wait_for("bearing", 2)[-1]
    assert msg.valid_angles and msg.azimuth == pytest.approx(truth_bearing(box).azimuth, abs=1e-6)
    rig.wait(lambda: rig.got["diag"][-1].level == DiagnosticStatus.OK, "diagnostics back to OK")


# ---------------------------------------------------------------------- 3D target
def depth_image(i: int, encoding: str, box, target_m: float, background_m: float = 9.0) -> Image:
    depth = np.full((H, W), background_m, np.float32)
    x, y, w, h = (int(v) for v in box)
    depth[y:y + h, x:x + w] = target_m
    depth[y + 2:y + 6, x + 2:x + w - 2] = 0.0  # holes inside the box are ignored
    if encoding == "16UC1":
        return make_image(np.round(depth * 1000).astype(np.uint16), "16UC1", header(i))
    depth[y + 6, x + 3] = np.nan
    return make_image(depth, "32FC1", header(i))


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_gives_the_3d_point_in_the_optical_frame(rig_factory, encoding):
    rig = rig_factory(publish_bearing=True, depth_topic="depth")
    rig.send(rig.info_pub, camera_info(0), "camera_infos")
    box = (180.0, 40.0, 40.0, 50.0)
    rig.send(rig.depth_pub, depth_image(0, encoding, box, 4.25), "depth_images")
    rig.send(rig.depth_pub, depth_image(1, encoding, box, 7.0), "depth_images")  # another frame's depth
    rig.frame(0, box)
    (msg,) = rig.wait_for("bearing", 1)
    (point,) = rig.wait_for("point", 1)
    assert msg.valid_position and msg.depth == pytest.approx(4.25, abs=1e-3)
    assert msg.depth_spread == pytest.approx(0.0, abs=1e-3) and msg.depth_valid_fraction > 0.8
    ray = truth_bearing(box).centre_ray
    assert (msg.position.x, msg.position.y, msg.position.z) == pytest.approx(
        (ray[0] * 4.25, ray[1] * 4.25, 4.25), abs=2e-3)
    assert msg.position.x > 0 and msg.position.y < 0  # right of and above the optical axis
    assert point.header.stamp == header(0).stamp and point.header.frame_id == "camera_optical"
    assert point.point.z == pytest.approx(4.25, abs=1e-3)


@pytest.mark.parametrize("case,match", [
    ("zero", "valid depth"),
    ("nan", "valid depth"),
    ("size", "depth image is 160x120"),
    ("encoding", "depth encoding 'rgb8'"),
    ("missing", None),
])
def test_bad_depth_is_reported_and_bearing_goes_on(rig_factory, case, match):
    rig = rig_factory(publish_bearing=True, depth_topic="depth")
    rig.send(rig.info_pub, camera_info(0), "camera_infos")
    box = (100.0, 100.0, 40.0, 40.0)
    if case == "zero":
        depth = make_image(np.zeros((H, W), np.uint16), "16UC1", header(0))
    elif case == "nan":
        depth = make_image(np.full((H, W), np.nan, np.float32), "32FC1", header(0))
    elif case == "size":
        depth = make_image(np.ones((H // 2, W // 2), np.uint16), "16UC1", header(0))
    elif case == "encoding":
        depth = make_image(np.zeros((H, W, 3), np.uint8), "rgb8", header(0))
    else:
        depth = depth_image(5, "16UC1", box, 3.0)  # another stamp: no depth for frame 0
    rig.send(rig.depth_pub, depth, "depth_images")
    rig.frame(0, box)
    (msg,) = rig.wait_for("bearing", 1)
    assert msg.valid_angles and msg.valid_offset and not msg.valid_position
    assert math.isnan(msg.position.z)
    if match is not None:
        rig.wait(lambda: any(match in s.message for s in rig.got["diag"]), f"a diagnostic saying {match!r}")
    time.sleep(0.3)
    assert not rig.got["point"]


# ---------------------------------------------------------------------- overlays
def test_image_markers_box_label_and_removal(rig_factory):
    rig = rig_factory(publish_markers=True)
    rig.frame(0, (50.0, 60.0, 30.0, 40.0), confidence=0.75)
    rig.frame(1, None, TrackState.IDLE, confidence=0.0)
    markers = rig.wait_for("markers", 4)
    box, label, remove_box, remove_label = markers[:4]
    assert (box.type, box.action, box.id, box.ns) == (ImageMarker.LINE_STRIP, ImageMarker.ADD, 0, "asymtrack")
    assert [(p.x, p.y) for p in box.points] == [(50, 60), (80, 60), (80, 100), (50, 100), (50, 60)]
    assert box.outline_color.g == 1.0 and box.header.stamp == header(0).stamp
    assert label.type == ImageMarker.LINE_LIST and len(label.points) % 2 == 0 and len(label.points) > 20
    assert all(p.y <= 60 for p in label.points)
    removed = {(m.action, m.id) for m in (remove_box, remove_label)}
    assert removed == {(ImageMarker.REMOVE, 0), (ImageMarker.REMOVE, 1)}
    assert not rig.got["bearing"]  # only what was asked for


def test_compressed_debug_image(rig_factory):
    rig = rig_factory(debug_image_compressed=True, jpeg_quality=60)
    rgb = np.full((H, W, 3), 90, np.uint8)
    calls = []

    def image() -> np.ndarray:
        calls.append(1)
        return rgb

    rig.frame(0, (50.0, 60.0, 30.0, 40.0), image=image)
    (msg,) = rig.wait_for("jpeg", 1)
    assert calls == [1] and msg.format == "rgb8; jpeg compressed bgr8" and msg.header.stamp == header(0).stamp
    assert len(msg.data) < rgb.nbytes / 10
    decoded = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (H, W, 3)
    assert decoded[60, 65, 1] > 200 and decoded[60, 65, 2] < 60  # the green box line
    assert abs(int(decoded[150, 200, 0]) - 90) < 6


def test_invalid_parameter_and_internal_errors_stay_inside(ros, rig_factory):
    from asymtrack_ros.ros.parameters import ParameterError

    node = Node("follow_me_bad_param", namespace="/fm_bad_param",
                parameter_overrides=[Parameter("jpeg_quality", value=500)])
    try:
        with pytest.raises(ParameterError, match="jpeg_quality"):
            FollowMe(node)
    finally:
        node.destroy_node()
    rig = rig_factory(debug_image_compressed=True)

    def broken() -> np.ndarray:
        raise RuntimeError("camera driver gave no pixels")

    rig.frame(0, (50.0, 60.0, 30.0, 40.0), image=broken)  # must not raise
    rig.wait(lambda: any("camera driver gave no pixels" in s.message for s in rig.got["diag"]),
             "the error on /diagnostics")
