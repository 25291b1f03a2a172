"""ROS time stamps (builtin_interfaces/Time: ``sec``, ``nanosec``) <-> integer nanoseconds (ROS-free).

Duck-typed: rclpy messages, ``rosbags`` messages and test doubles all work.
"""

from __future__ import annotations

from typing import Any, Tuple

NS_PER_SECOND = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """Nanoseconds of a stamp (anything with ``sec`` and ``nanosec``)."""
    return int(stamp.sec) * NS_PER_SECOND + int(stamp.nanosec)


def header_ns(msg: Any) -> int:
    """Nanoseconds of ``msg.header.stamp``."""
    return stamp_to_ns(msg.header.stamp)


def split_ns(ns: int) -> Tuple[int, int]:
    """Nanoseconds -> (sec, nanosec) with 0 <= nanosec < 1 s, as a Time message holds them."""
    return divmod(int(ns), NS_PER_SECOND)
