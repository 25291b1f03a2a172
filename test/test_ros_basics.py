"""Foundation: real rclpy over DDS from the PyPI wheels carries our message types between nodes."""

from __future__ import annotations

import time
from typing import Any, Callable, List

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not built (scripts/setup.sh)")
pytest.importorskip("asymtrack_msgs.msg", reason="asymtrack_msgs is not built (scripts/setup.sh)")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from asymtrack_msgs.msg import TrackStatus  # noqa: E402
from asymtrack_ros.images import image_to_rgb  # noqa: E402
from asymtrack_ros.ros.messages import bbox_to_box, detections, make_image, track_status  # noqa: E402

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture
def nodes():
    rclpy.init()
    sender, receiver = rclpy.create_node("basics_sender"), rclpy.create_node("basics_receiver")
    executor = SingleThreadedExecutor()
    executor.add_node(sender)
    executor.add_node(receiver)

    def spin_until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            executor.spin_once(timeout_sec=0.02)

    yield sender, receiver, spin_until
    executor.shutdown()
    sender.destroy_node()
    receiver.destroy_node()
    rclpy.try_shutdown()


def send(sender, receiver, spin_until, msg_type, topic: str, msg: Any, sub_qos=RELIABLE) -> Any:
    received: List[Any] = []
    receiver.create_subscription(msg_type, topic, received.append, sub_qos)
    pub = sender.create_publisher(msg_type, topic, RELIABLE)
    spin_until(lambda: pub.get_subscription_count() > 0)
    deadline = time.monotonic() + 10.0
    while not received and time.monotonic() < deadline:  # best effort may lose a sample: send again
        pub.publish(msg)
        retry = time.monotonic() + 0.5
        spin_until(lambda retry=retry: received or time.monotonic() > retry)
    assert received, f"nothing received on {topic}"
    return received[0]


def test_image_between_nodes(nodes):
    rgb = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    msg = make_image(rgb, "rgb8")
    msg.header.stamp.sec, msg.header.frame_id = 42, "camera"
    got = send(*nodes, Image, "basics/image", msg, sub_qos=qos_profile_sensor_data)
    assert got.header.stamp.sec == 42 and got.header.frame_id == "camera"
    np.testing.assert_array_equal(image_to_rgb(got), rgb)


def test_detections_and_track_status_between_nodes(nodes):
    msg = Image().header
    msg.stamp.sec, msg.frame_id = 7, "camera"
    box = (10.0, 20.0, 30.0, 40.0)
    got = send(*nodes, Detection2DArray, "basics/tracks", detections(msg, box, 0.75, "3", "target"))
    assert got.header.stamp.sec == 7 and len(got.detections) == 1
    det = got.detections[0]
    assert det.id == "3" and det.results[0].hypothesis.score == pytest.approx(0.75)
    assert bbox_to_box(det.bbox) == pytest.approx(box)

    status = track_status(msg, TrackStatus.LOST, "3", box, 0.1, 12.5, 4.0, 17)
    got = send(*nodes, TrackStatus, "basics/track_status", status)
    assert got.state == TrackStatus.LOST and got.track_id == "3" and got.frames_since_init == 17
    assert bbox_to_box(got.bbox) == pytest.approx(box)
    assert got.latency_ms == pytest.approx(12.5) and got.inference_ms == pytest.approx(4.0)
