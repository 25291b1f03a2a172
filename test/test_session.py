"""TrackSession: the ROS-free session under the node and the tools, over the real demo model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import numpy as np
import pytest

from asymtrack_ros.synthetic import make_sequence
from asymtrack_ros.tracking import Tracker, TrackState
from asymtrack_ros.tracking.session import (
    BAD_IMAGE,
    BAD_STAMP,
    REJECTED_INIT,
    SIZE_CHANGE,
    TRACK_STARTED,
    ArrayFrame,
    BadImageError,
    SessionConfig,
    SessionFrame,
    TrackSession,
)

DEMO = Path(__file__).resolve().parents[1] / "models" / "asymtrack_t_demo.pt"
MS = 1_000_000


@pytest.fixture(scope="module")
def backend():
    from asymtrack_ros.backends import create_backend

    b = create_backend("onnxruntime", str(DEMO), threads=1)
    yield b
    b.close()


@pytest.fixture(scope="module")
def sequence():
    return make_sequence(31, 12, size=(120, 160), speed=2.0, distractors=1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class BrokenFrame(SessionFrame):
    def image(self) -> np.ndarray:
        raise BadImageError("cannot decode")


def frame_at(sequence, i: int, stamp_ns: Optional[int] = -1) -> ArrayFrame:
    return ArrayFrame(i * 33 * MS if stamp_ns == -1 else stamp_ns, sequence.frames[i], payload=i)


def feed(session: TrackSession, frame: SessionFrame):
    seq, events = session.receive(frame)
    step = session.step(seq, frame) if seq is not None else None
    return seq, events, step


def bare_boxes(backend, sequence, start: int) -> List[tuple]:
    tracker = Tracker(backend)
    boxes = [tracker.init(sequence.frames[start], sequence.boxes[start]).box]
    boxes += [tracker.update(f).box for f in sequence.frames[start + 1:]]
    return boxes


def test_lock_step_equals_the_bare_tracker(backend, sequence):
    session = TrackSession(backend)
    session.request_init(sequence.boxes[0], stamp_ns=0)
    got = []
    for i in range(len(sequence.frames)):
        _, events, step = feed(session, frame_at(sequence, i))
        assert not events and len(step.outputs) == 1
        out = step.outputs[0]
        assert out.frame.payload == i and out.track_id == "1" and out.frames_since_init == i
        got.append(out.box)
        assert [e.kind for e in step.events] == ([TRACK_STARTED] if i == 0 else [])
    np.testing.assert_allclose(got, bare_boxes(backend, sequence, 0), atol=1e-6)


def test_init_on_a_past_frame_catches_up_and_outputs_the_newest(backend, sequence):
    session = TrackSession(backend)
    for i in range(6):
        _, _, step = feed(session, frame_at(sequence, i))
        assert step.outputs[0].state == TrackState.IDLE and step.outputs[0].shown_box is None
    session.request_init(sequence.boxes[2], stamp_ns=2 * 33 * MS + 3 * MS)  # within the tolerance
    assert session.has_work()
    step = session.step()
    assert len(step.outputs) == 1
    out = step.outputs[0]
    assert out.frame.payload == 5 and out.frames_since_init == 3
    expected = bare_boxes(backend, sequence, 2)
    np.testing.assert_allclose(out.box, expected[3], atol=1e-6)
    _, _, step = feed(session, frame_at(sequence, 6))  # frames already caught up are not tracked again
    assert step.outputs[0].frames_since_init == 4
    np.testing.assert_allclose(step.outputs[0].box, expected[4], atol=1e-6)


def test_an_init_waits_for_its_frame_then_times_out(backend, sequence):
    clock = FakeClock()
    session = TrackSession(backend, SessionConfig(init_wait_timeout_s=1.0), clock=clock)
    feed(session, frame_at(sequence, 0))
    session.request_init(sequence.boxes[3], stamp_ns=3 * 33 * MS)
    assert session.step().outputs == []  # not received yet: waits
    assert not session.has_work()
    for i in (1, 2):
        assert feed(session, frame_at(sequence, i))[2].outputs[0].state == TrackState.IDLE
    step = feed(session, frame_at(sequence, 3))[2]
    assert step.outputs[0].state == TrackState.TRACKING and step.outputs[0].frames_since_init == 0
    session.request_init(sequence.boxes[9], stamp_ns=9 * 33 * MS)
    clock.now = 1.5
    step = session.step()
    assert [e.kind for e in step.events] == [REJECTED_INIT] and "waited 1 s" in step.events[0].message
    assert session.state == TrackState.TRACKING and session.track_id == "1"


@pytest.mark.parametrize("box", [(500.0, 500.0, 10.0, 10.0), (0.0, 0.0, 1e6, 1e6), (0.0, 0.0, 1e300, 5.0),
                                 (math.nan, 0.0, 5.0, 5.0), (0.0, 0.0, -3.0, 5.0), (1.0, 2.0, 3.0)])
def test_a_rejected_init_leaves_the_running_track_alone(backend, sequence, box):
    session = TrackSession(backend)
    session.request_init(sequence.boxes[0])
    feed(session, frame_at(sequence, 0))
    feed(session, frame_at(sequence, 1))
    session.request_init(box)
    step = session.step()
    assert [e.kind for e in step.events] == [REJECTED_INIT] and step.outputs == []
    out = feed(session, frame_at(sequence, 2))[2].outputs[0]
    assert out.state == TrackState.TRACKING and out.track_id == "1" and out.frames_since_init == 2


def test_an_init_on_a_bad_image_is_rejected_and_the_track_kept(backend, sequence):
    session = TrackSession(backend)
    session.request_init(sequence.boxes[0])
    feed(session, frame_at(sequence, 0))
    broken = BrokenFrame(1 * 33 * MS)
    step = feed(session, broken)[2]
    assert [e.kind for e in step.events] == [BAD_IMAGE] and step.outputs == []
    session.request_init(sequence.boxes[1], stamp_ns=broken.stamp_ns)
    step = session.step()
    assert [e.kind for e in step.events] == [REJECTED_INIT] and "cannot decode" in step.events[0].message
    out = feed(session, frame_at(sequence, 2))[2].outputs[0]
    assert out.state == TrackState.TRACKING and out.track_id == "1"


def test_a_frame_of_another_size_ends_the_track(backend, sequence):
    session = TrackSession(backend)
    session.request_init(sequence.boxes[0])
    feed(session, frame_at(sequence, 0))
    other = ArrayFrame(33 * MS, np.zeros((60, 80, 3), np.uint8))
    step = feed(session, other)[2]
    assert [e.kind for e in step.events] == [SIZE_CHANGE] and "160x120 to 80x60" in step.events[0].message
    assert step.outputs[0].state == TrackState.IDLE and step.outputs[0].box is None
    assert session.track_id == ""


def test_stamps_repeated_or_older_are_dropped_and_a_real_jump_clears_the_buffer(backend, sequence):
    session = TrackSession(backend, SessionConfig(time_jump_frames=3))
    for i in range(5):
        feed(session, frame_at(sequence, i))
    seq, events, _ = feed(session, frame_at(sequence, 5, stamp_ns=4 * 33 * MS))
    assert seq is None and [e.kind for e in events] == [BAD_STAMP] and "repeats" in events[0].message
    for n in range(2):
        seq, events, _ = feed(session, frame_at(sequence, 5, stamp_ns=(40 + 10 * n) * MS))
        assert seq is None and "dropped" in events[0].message
    seq, events, step = feed(session, frame_at(sequence, 6, stamp_ns=60 * MS))
    assert seq is not None and "buffer cleared" in events[0].message and len(step.outputs) == 1
    session.request_init(sequence.boxes[0], stamp_ns=0)  # older than the cleared buffer now holds
    step = session.step()
    assert [e.kind for e in step.events] == [REJECTED_INIT]
    assert "older than the oldest" in step.events[0].message


def test_unstamped_frames_are_tracked_but_not_buffered(backend, sequence):
    session = TrackSession(backend)
    seq, events, step = feed(session, frame_at(sequence, 0, stamp_ns=None))
    assert seq is not None and not events and step.outputs[0].state == TrackState.IDLE
    session.request_init(sequence.boxes[0])  # the newest frame: found without a stamp
    step = session.step()
    assert step.outputs[0].state == TrackState.TRACKING and step.outputs[0].frame.payload == 0


def test_reset_stops_and_the_next_track_gets_a_new_id(backend, sequence):
    session = TrackSession(backend)
    session.request_init(sequence.boxes[0])
    feed(session, frame_at(sequence, 0))
    session.reset()
    assert session.has_work()
    out = feed(session, frame_at(sequence, 1))[2].outputs[0]
    assert out.state == TrackState.IDLE and out.track_id == "" and session.track_id == ""
    session.request_init(sequence.boxes[2])
    feed(session, frame_at(sequence, 2))
    assert session.track_id == "2"


def test_the_box_is_shown_only_while_tracking(backend, sequence):
    session = TrackSession(backend)
    session.request_init(sequence.boxes[0])
    assert feed(session, frame_at(sequence, 0))[2].outputs[0].shown_box is not None
    rng = np.random.default_rng(0)
    states = []
    for i in range(1, 40):  # the target is gone: noise only
        noise = rng.integers(0, 256, sequence.frames[0].shape, dtype=np.uint8)
        out = feed(session, ArrayFrame(i * 33 * MS, noise))[2].outputs[0]
        states.append(out.state)
        assert out.box is not None and (out.shown_box is not None) == (out.state == TrackState.TRACKING)
    assert TrackState.LOST in states
