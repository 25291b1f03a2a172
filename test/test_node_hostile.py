"""The node under hostile input, over real rclpy/DDS: bad init boxes, odd frames, bad stamps, signals.

Each test here was written against a failure found by a hostile tester or real ``ros2 launch`` (issue 12):
a rejected request or a bad frame must be counted and reported on ``/diagnostics`` and must never
disturb a running track, except where docs/NODE.md says the track ends (a frame of another size).
"""

# ruff: noqa: F811 (the fixtures of test_ros_node are imported, then named as test arguments)
from __future__ import annotations

import array
import os
import signal
import subprocess
import time
from typing import Any, Dict, List

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
pytest.importorskip("asymtrack_msgs.msg", reason="asymtrack_msgs is not built (scripts/setup.sh)")

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage
from test_ros_node import (  # noqa: F401 (fixtures)
    RELIABLE,
    harness,
    node_command,
    onnx_model,
    ros,
    sequence,
    set_stamp,
    stamp_of,
    values_of,
)

from asymtrack_msgs.msg import TrackStatus
from asymtrack_ros.ros.messages import make_image

pytestmark = pytest.mark.ros
ACTIVE = (TrackStatus.TRACKING, TrackStatus.LOST)


def start_track(h: Any, sequence: Any) -> str:
    """Frame 0, the init box on it, then frame 1: the track id of a running track."""
    h.connect(h.image_pub, h.init_pub)
    h.step(sequence.frames[0], 0)
    h.init(sequence.boxes[0], 0)
    h.wait(h.tracks_at(stamp_of(0), with_detection=True), "the init track")
    return status_of(h, sequence, 1).track_id


def status_of(h: Any, sequence: Any, i: int, frame: Any = None) -> TrackStatus:
    """Publish frame i (the sequence's, or ``frame``) and return its track status."""
    h.publish_frame(sequence.frames[i % len(sequence.frames)] if frame is None else frame, i)
    return h.wait(h.status_at(i), f"the status of frame {i}")[-1]


def assert_still_tracking(h: Any, sequence: Any, i: int, track_id: str) -> None:
    status = status_of(h, sequence, i)
    assert status.state in ACTIVE and status.track_id == track_id, (status.state, status.track_id)


def diagnostics_where(h: Any, **expected: str) -> Dict[str, str]:
    status = h.last_diagnostics(lambda s: all(values_of(s).get(k) == v for k, v in expected.items()),
                                f"diagnostics with {expected}")
    return values_of(status)


def test_rejected_init_boxes_never_disturb_the_running_track(harness, sequence):
    h = harness()
    track_id = start_track(h, sequence)
    nan, inf = float("nan"), float("inf")
    hostile = [(-5e5, -5e5, 1e6, 1e6),  # covers the image, far larger than it: crop would need TBs
               (-5e299, -5e299, 1e300, 1e300),
               (5000.0, 5000.0, 20.0, 20.0),  # entirely outside
               (nan, 10.0, 20.0, 20.0), (10.0, 10.0, inf, 20.0), (10.0, 10.0, 0.0, 20.0),
               (10.0, 10.0, 20.0, -4.0)]
    for n, box in enumerate(hostile, start=1):
        h.init(box, 1)  # stamped on a buffered frame: the box reaches the tracker's frame lookup
        h.wait(lambda n=n: h.node.counters()["rejected_inits"] == n, f"hostile init box {n} to be rejected")
        assert_still_tracking(h, sequence, n + 1, track_id)
    values = diagnostics_where(h, rejected_init_boxes=str(len(hostile)))
    assert values["state"] in ("TRACKING", "LOST") and values["track_id"] == track_id
    assert values["tracker_errors"] == "0"


def test_stamped_init_on_an_unsupported_frame_keeps_the_track(harness, sequence):
    h = harness()
    track_id = start_track(h, sequence)
    bad = make_image(np.zeros((8, 8), np.uint16), "16UC1")
    set_stamp(bad.header, stamp_of(2))
    h.image_pub.publish(bad)
    h.wait(lambda: h.node.counters()["bad_images"] == 1, "the bad frame to be counted")
    h.init(sequence.boxes[2], 2)  # lands on the frame that cannot be converted
    h.wait(lambda: h.node.counters()["rejected_inits"] == 1, "the init box to be rejected")
    assert_still_tracking(h, sequence, 3, track_id)
    assert "unsupported image encoding" in diagnostics_where(h, rejected_init_boxes="1")["last_problem"]


def test_a_frame_of_another_size_ends_the_track_and_is_reported(harness, sequence):
    h = harness()
    start_track(h, sequence)
    status = status_of(h, sequence, 2, frame=np.zeros((1, 1, 3), np.uint8))
    assert status.state == TrackStatus.IDLE and status.track_id == ""
    values = diagnostics_where(h, image_size_changes="1")
    assert values["state"] == "IDLE" and "320x240 to 1x1" in values["last_problem"], values
    assert status_of(h, sequence, 3).state == TrackStatus.IDLE  # a new init box is needed


def test_oversize_frames_are_refused_before_conversion_and_keep_the_track(harness, sequence):
    h = harness(max_image_pixels=100_000)  # the sequence's frames are 320x240 = 76800 pixels
    track_id = start_track(h, sequence)
    big = make_image(np.zeros((400, 400, 3), np.uint8), "rgb8")
    set_stamp(big.header, stamp_of(2))
    h.image_pub.publish(big)
    h.wait(lambda: h.node.counters()["bad_images"] == 1, "the oversize frame to be refused")
    assert_still_tracking(h, sequence, 3, track_id)
    assert not h.status_at(2)(), "a refused frame is neither tracked nor published"
    values = diagnostics_where(h, bad_images="1")
    assert "max_image_pixels" in values["last_problem"] and values["tracker_errors"] == "0"
    result = h.node.set_parameters([Parameter("max_image_pixels", value=0)])[0]
    assert not result.successful  # rclpy checks the range from the descriptor


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose start-of-frame header claims ``width`` x ``height``."""
    ok, data = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    raw = bytearray(data.tobytes())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(raw)


def test_a_jpeg_claiming_a_huge_size_is_a_bad_image_not_a_tracker_error(harness, sequence):
    h = harness(image_transport="compressed")
    h.connect(h.compressed_pub)
    msg = CompressedImage(format="jpeg", data=array.array("B", jpeg_claiming(60000, 60000)))
    set_stamp(msg.header, stamp_of(0))
    h.compressed_pub.publish(msg)
    h.wait(lambda: h.node.counters()["bad_images"] == 1, "the huge JPEG to be counted as a bad image")
    values = diagnostics_where(h, bad_images="1")
    assert values["tracker_errors"] == "0" and "60000x60000" in values["last_problem"], values


def test_bad_stamps_are_counted_and_the_buffer_kept(harness, sequence):
    h = harness()
    track_id = start_track(h, sequence)
    frames = sequence.frames
    published = {i: len(h.status_at(i)()) for i in (0, 1)}
    h.publish_frame(frames[2], 1)  # repeats frame 1's stamp: dropped
    h.wait(lambda: h.node.counters()["bad_stamps"] == 1, "the repeated stamp to be counted")
    h.publish_frame(frames[2], 0)  # older than the newest frame: dropped, the buffer kept
    h.wait(lambda: h.node.counters()["bad_stamps"] == 2, "the old stamp to be counted")
    assert_still_tracking(h, sequence, 2, track_id)
    assert {i: len(h.status_at(i)()) for i in (0, 1)} == published, "dropped frames are not tracked"
    h.init(sequence.boxes[1], 1)  # frame 1 is still buffered: a stamped init on it works
    h.wait(lambda: [s for s in h.status if s.track_id not in ("", track_id)], "the re-init on frame 1")
    unstamped = make_image(frames[3], "rgb8")
    h.image_pub.publish(unstamped)  # zero stamp: tracked, not buffered, counted
    h.wait(lambda: [s for s in h.status if s.header.stamp.sec == 0 and s.state in ACTIVE], "zero stamp")
    values = diagnostics_where(h, bad_stamps="3")
    assert "without a stamp" in values["last_problem"] and values["rejected_init_boxes"] == "0"
    for j in range(3):  # time jumps back for good (a bag loop, a camera restart): accepted on the 3rd
        h.publish_frame(frames[4 + j], -100 + j)
        h.wait(lambda j=j: h.node.counters()["bad_stamps"] == 4 + j, f"backwards frame {j}")
    h.wait(h.status_at(-98), "the frame after the time jump to be tracked")
    assert not h.status_at(-100)() and not h.status_at(-99)()


# ---------------------------------------------------------------------- signals
def test_repeated_sigint_to_the_process_group_exits_cleanly(ros, onnx_model):
    """Ctrl-C under ros2 launch: the terminal's SIGINT and the one launch forwards, and more."""
    cmd = node_command() + ["--ros-args", "-r", "__ns:=/sigint_test", "-p", f"model:={onnx_model}",
                            "-p", "backend:=onnxruntime", "-p", "autostart:=true"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    tester = Node("sigint_tester")
    ready: List[Any] = []
    tester.create_subscription(
        DiagnosticArray, "/diagnostics",
        lambda m: ready.extend(s for s in m.status if s.name.startswith("asymtrack_node")
                               and values_of(s).get("variant") == "tiny"), RELIABLE)
    try:
        deadline = time.monotonic() + 60.0
        while not ready:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the node did not come up"
            rclpy_spin_once(tester)
        for _ in range(200):  # SIGINT after SIGINT until it has gone: some land in the cleanup
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        tester.destroy_node()
    assert proc.returncode == 0, err
    assert "Traceback" not in err + out and "KeyboardInterrupt" not in err + out, err


def rclpy_spin_once(node: Any) -> None:
    import rclpy

    rclpy.spin_once(node, timeout_sec=0.05)



def test_the_frame_buffer_keeps_to_its_byte_budget(harness, sequence):
    h = harness(frame_buffer_max_mb=1)  # 320x240 rgb8 frames are 230400 bytes: 4 fit in 1 MB
    h.connect(h.image_pub, h.init_pub)
    for i in range(8):
        h.step(sequence.frames[i], i)
    h.init(sequence.boxes[2], 2)  # 30 frames allowed by frame_buffer_length, but no longer buffered
    h.wait(lambda: h.node.counters()["rejected_inits"] == 1, "the init on a frame out of the budget")
    problem = diagnostics_where(h, rejected_init_boxes="1")["last_problem"]
    assert "older than the oldest buffered frame" in problem, problem
    h.init(sequence.boxes[4], 4)  # the oldest frame still buffered
    h.wait(lambda: [s for s in h.status if s.track_id and s.frames_since_init == 3], "the init on frame 4")
