"""The demo model on synthetic exits: LOST while the target is out, re-acquired when it returns.

Real model, real frames (asymtrack_ros.synthetic): the target leaves the frame through its
nearest edge for 30 frames and comes back elsewhere, larger. Without the extra search the tracker
keeps looking where the target left; with it (wide crop, then tiles) it finds the target again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asymtrack_ros.evaluation import iou
from asymtrack_ros.synthetic import make_sequence
from asymtrack_ros.tracking import Tracker, TrackerConfig, TrackState

DEMO = Path(__file__).resolve().parents[1] / "models" / "asymtrack_t_demo.pt"


@pytest.fixture(scope="module")
def backend():
    if not DEMO.is_file():
        pytest.skip(f"demo model {DEMO} not present (random weights cannot re-acquire anything)")
    pytest.importorskip("onnxruntime")
    from asymtrack_ros.backends import create_backend

    b = create_backend("onnxruntime", DEMO, threads=1)
    yield b
    b.close()


def track(backend, seq, config: TrackerConfig):
    tracker = Tracker(backend, config)
    tracker.init(seq.frames[0], seq.boxes[0])
    results = [tracker.update(frame) for frame in seq.frames[1:]]
    overlaps = iou(np.array([r.box for r in results]), seq.boxes[1:])
    return results, overlaps


def exit_sequence(seed: int):
    return make_sequence(seed, length=90, exits=[(20, 50)], speed=4.0)


@pytest.mark.parametrize("seed,needs_extra_search", [(1, True), (4, False)])
def test_target_is_reacquired_after_an_exit(backend, seed, needs_extra_search):
    seq = exit_sequence(seed)
    with_search, overlaps = track(backend, seq, TrackerConfig(reacquire_after=3))
    hidden = ~seq.visible[1:]
    states = np.array([r.state for r in with_search])
    assert np.mean(states[hidden] == TrackState.LOST) > 0.6  # it notices the target is gone
    assert all(r.state == TrackState.TRACKING for r in with_search[-10:])  # and gets it back
    assert overlaps[-10:].mean() > 0.5
    if needs_extra_search:  # seed 1 comes back far from where it left
        without, overlaps_without = track(backend, seq, TrackerConfig(reacquire_after=None))
        assert overlaps_without[-10:].mean() < 0.1 and without[-1].state == TrackState.LOST


def test_extra_search_costs_at_most_one_inference_per_frame(backend):
    class Counting:
        def __init__(self, inner):
            self.inner, self.info, self.calls = inner, inner.info, 0

        def init_template(self, z):
            self.inner.init_template(z)

        def track(self, x):
            self.calls += 1
            return self.inner.track(x)

    counting = Counting(backend)
    seq = exit_sequence(1)
    tracker = Tracker(counting, TrackerConfig(reacquire_after=0))  # type: ignore[arg-type]
    tracker.init(seq.frames[0], seq.boxes[0])
    for frame in seq.frames[1:]:
        before = counting.calls
        lost_before = tracker.state == TrackState.LOST
        tracker.update(frame)
        assert counting.calls - before == (2 if lost_before else 1)


def test_scale_clamp_with_the_demo_model(backend):
    seq = make_sequence(7, length=40, scale_range=(0.5, 1.6))
    results, _ = track(backend, seq, TrackerConfig(max_scale_step=1.05, reacquire_after=None))
    checked = 0
    for before, after in zip(results, results[1:]):
        # while TRACKING the search is centred on the previous box; clipping at the border aside
        if before.state == after.state == TrackState.TRACKING and min(after.box[2:]) > 10.0:
            x, y, w, h = after.box
            if x > 0 and y > 0 and x + w < 320 and y + h < 240:
                ratio = np.array(after.box[2:]) / np.array(before.box[2:])
                assert np.all(ratio <= 1.05 + 1e-9) and np.all(ratio >= 1 / 1.05 - 1e-9)
                checked += 1
    assert checked > 20
