"""The frame ring buffer keyed by stamp (ROS-free)."""

from __future__ import annotations

import pytest

from asymtrack_ros.frame_buffer import (
    EmptyBufferError,
    FrameBuffer,
    NoFrameNearError,
    OutOfOrderError,
    StampInFutureError,
    StampTooOldError,
)

MS = 1_000_000


def filled(capacity: int = 5, count: int = 8, period_ms: int = 33) -> FrameBuffer:
    buf = FrameBuffer(capacity)
    for i in range(count):
        buf.push(1_000 * MS + i * period_ms * MS, f"frame{i}")
    return buf


def test_keeps_the_newest_frames_in_order():
    buf = filled(capacity=5, count=8)
    assert len(buf) == 5
    assert buf.oldest == 1_000 * MS + 3 * 33 * MS
    assert buf.newest_item() == (1_000 * MS + 7 * 33 * MS, "frame7")


def test_nearest_exact_and_within_tolerance():
    buf = filled()
    stamp = 1_000 * MS + 5 * 33 * MS
    assert buf.nearest(stamp) == (stamp, "frame5")
    assert buf.nearest(stamp + 10 * MS, tolerance_ns=15 * MS) == (stamp, "frame5")
    assert buf.nearest(stamp - 10 * MS, tolerance_ns=15 * MS) == (stamp, "frame5")
    assert buf.nearest(stamp + 20 * MS, tolerance_ns=15 * MS)[1] == "frame6"


def test_nearest_errors_say_why():
    buf = filled()
    with pytest.raises(StampTooOldError, match="older than the oldest"):
        buf.nearest(1_000 * MS, tolerance_ns=5 * MS)
    with pytest.raises(StampInFutureError, match="newer than the newest"):
        buf.nearest(buf.newest + 50 * MS, tolerance_ns=5 * MS)
    with pytest.raises(NoFrameNearError, match="no buffered frame within"):
        buf.nearest(buf.newest - 16 * MS, tolerance_ns=5 * MS)
    with pytest.raises(EmptyBufferError):
        FrameBuffer(3).nearest(0)


def test_tolerance_reaches_past_the_ends():
    buf = filled()
    assert buf.nearest(buf.oldest - 3 * MS, tolerance_ns=5 * MS)[0] == buf.oldest
    assert buf.nearest(buf.newest + 3 * MS, tolerance_ns=5 * MS)[0] == buf.newest


def test_push_rejects_repeated_and_older_stamps():
    buf = filled()
    with pytest.raises(OutOfOrderError, match="repeats"):
        buf.push(buf.newest, "again")
    with pytest.raises(OutOfOrderError, match="older than"):
        buf.push(buf.newest - 1, "older")
    assert len(buf) == 5


def test_frames_after():
    buf = filled()
    after = buf.frames_after(1_000 * MS + 5 * 33 * MS)
    assert [item for _, item in after] == ["frame6", "frame7"]
    assert buf.frames_after(buf.newest) == []
    assert len(buf.frames_after(0)) == 5


def test_capacity_validation_and_resize():
    with pytest.raises(ValueError):
        FrameBuffer(0)
    with pytest.raises(ValueError):
        FrameBuffer(True)
    buf = filled(capacity=5)
    buf.capacity = 2
    assert [item for _, item in buf.frames_after(0)] == ["frame6", "frame7"]
    buf.clear()
    assert len(buf) == 0
    with pytest.raises(EmptyBufferError):
        _ = buf.newest


def test_a_byte_budget_keeps_fewer_large_frames_but_always_the_newest():
    buf = FrameBuffer(30, max_bytes=10_000)
    for i in range(6):
        buf.push(1_000 * MS + i * 33 * MS, f"frame{i}", nbytes=3_000)
    assert len(buf) == 3 and buf.nbytes == 9_000  # 30 frames allowed, 10 kB of them
    assert [item for _, item in buf.frames_after(0)] == ["frame3", "frame4", "frame5"]
    buf.push(2_000 * MS, "huge", nbytes=50_000)  # over the budget alone: kept, as the only frame
    assert len(buf) == 1 and buf.newest_item() == (2_000 * MS, "huge") and buf.nbytes == 50_000
    buf.max_bytes = None
    for i in range(1, 4):
        buf.push(2_000 * MS + i * MS, f"small{i}", nbytes=3_000)
    assert len(buf) == 4
    buf.max_bytes = 7_000  # lowering it trims at once
    assert [item for _, item in buf.frames_after(0)] == ["small2", "small3"] and buf.nbytes == 6_000
    buf.clear()
    assert buf.nbytes == 0
    with pytest.raises(ValueError):
        FrameBuffer(3, max_bytes=0)
