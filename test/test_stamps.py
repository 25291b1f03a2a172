"""Stamps <-> nanoseconds: plain objects, rosbags messages and (where installed) ROS messages."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from asymtrack_ros.stamps import header_ns, split_ns, stamp_to_ns

CASES = [(0, 0, 0), (1, 0, 1_000_000_000), (0, 999_999_999, 999_999_999),
         (1_700_000_000, 123_456_789, 1_700_000_000_123_456_789), (-1, 500_000_000, -500_000_000)]


@pytest.mark.parametrize("sec, nanosec, ns", CASES)
def test_stamp_to_ns_and_back(sec, nanosec, ns):
    stamp = SimpleNamespace(sec=sec, nanosec=nanosec)
    assert stamp_to_ns(stamp) == ns
    assert header_ns(SimpleNamespace(header=SimpleNamespace(stamp=stamp))) == ns
    assert split_ns(ns) == (sec, nanosec)


def test_rosbags_messages():
    from asymtrack_ros.bag import messages as m

    image = m.raw_image(1_700_000_000_123_456_789, "cam", np.zeros((2, 2, 3), np.uint8))
    assert (image.header.stamp.sec, image.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert header_ns(image) == 1_700_000_000_123_456_789


def test_ros_messages():
    msg = pytest.importorskip("std_msgs.msg", reason="std_msgs (ROS 2) is not installed")
    header = msg.Header()
    header.stamp.sec, header.stamp.nanosec = split_ns(1_700_000_000_123_456_789)
    assert (header.stamp.sec, header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert stamp_to_ns(header.stamp) == 1_700_000_000_123_456_789
