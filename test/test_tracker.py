"""Tracker: confidence formula, LOST/TRACKING hysteresis, bad input, and the published loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
import pytest

from asymtrack_ros.backends.base import Backend, SearchOutput
from asymtrack_ros.model_info import ModelInfo
from asymtrack_ros.tracking import (
    DEFAULT_CALIBRATION,
    Tracker,
    TrackerConfig,
    TrackState,
    corner_confidence,
    crop,
    peak_confidence,
)
from asymtrack_ros.tracking.state import CORNER_THRESHOLDS

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO / "models" / "asymtrack_t_demo.pt"
# The published loop's behaviour: corner confidence, no scale clamp, no extra search.
PLAIN = dict(confidence="corner", max_scale_step=None, reacquire_after=None)


def mixture(confidence: float, cells: int = 64, peak: int = 27) -> np.ndarray:
    """confidence * one-hot + (1 - confidence) * uniform: its peak confidence is exactly ``confidence``."""
    p = np.full(cells, (1.0 - confidence) / cells)
    p[peak] += confidence
    return p.astype(np.float32)


class ScriptedBackend(Backend):
    """Returns a box of fixed relative size at the crop centre, with scripted corner confidences."""

    name = "scripted"

    def __init__(self, confidences: List[float], box_wh: float = 0.25, box_cx: float = 0.5):
        self.info = ModelInfo.for_variant("tiny")
        self.confidences = list(confidences)
        self.box_wh, self.box_cx = box_wh, box_cx
        self.templates: List[np.ndarray] = []
        self.searches: List[np.ndarray] = []

    def init_template(self, z: np.ndarray) -> None:
        assert z.shape == (1, 3, 128, 128) and z.dtype == np.float32
        self.templates.append(z)

    def track(self, x: np.ndarray) -> SearchOutput:
        assert x.shape == (1, 3, 256, 256) and x.dtype == np.float32
        self.searches.append(x)
        c = self.confidences.pop(0) if self.confidences else 1.0
        boxes = np.array([self.box_cx, 0.5, self.box_wh, self.box_wh], np.float32)
        return SearchOutput(boxes, mixture(c), mixture(c, peak=36))


def image(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- confidence ---------------------------------------------------------------------------------

def test_peaky_is_one_flat_is_zero():
    assert peak_confidence(mixture(1.0)) == pytest.approx(1.0)
    assert peak_confidence(np.full(64, 1 / 64)) == pytest.approx(0.0, abs=1e-6)
    assert corner_confidence(mixture(1.0), np.full(64, 1 / 64)) == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("c", [0.1, 0.35, 0.6, 0.9])
def test_mixture_scores_its_weight(c):
    assert peak_confidence(mixture(c)) == pytest.approx(c, abs=1e-6)
    assert corner_confidence(mixture(c), mixture(c, peak=50)) == pytest.approx(c, abs=1e-6)
    assert corner_confidence(mixture(0.81), mixture(0.25)) == pytest.approx(0.45, abs=1e-6)


def test_peak_split_between_neighbours_is_still_confident():
    p = np.zeros(144)
    p[50], p[51], p[62] = 0.4, 0.35, 0.25
    assert peak_confidence(p) == pytest.approx(1.0)
    two_modes = np.zeros(144)
    two_modes[0], two_modes[143] = 0.5, 0.5
    assert peak_confidence(two_modes) < 0.5


def test_confidence_in_unit_interval_and_robust():
    rng = np.random.default_rng(0)
    for alpha in (0.05, 1.0, 20.0):
        for _ in range(20):
            p = rng.dirichlet(np.full(64, alpha))
            assert 0.0 <= peak_confidence(p) <= 1.0
    assert peak_confidence(np.full(64, np.nan)) == 0.0
    assert peak_confidence(np.zeros(64)) == 0.0
    with pytest.raises(ValueError):
        peak_confidence(np.ones(10))


# --- state machine ------------------------------------------------------------------------------

def run(confidences: List[float], config: Optional[TrackerConfig] = None, box=(100, 80, 40, 40)):
    backend = ScriptedBackend(confidences)
    tracker = Tracker(backend, config or TrackerConfig(lost_threshold=0.3, recover_threshold=0.5,
                                                       frames_to_lose=3, frames_to_recover=2, **PLAIN))
    frame = image()
    first = tracker.init(frame, box)
    return tracker, backend, first, [tracker.update(frame) for _ in confidences]


def test_hysteresis_sequence():
    confs = [0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.2, 0.6, 0.4, 0.6, 0.6, 0.35, 0.9]
    _, _, first, results = run(confs)
    assert first.state == TrackState.TRACKING and first.frame_index == 0 and first.confidence == 1.0
    T, L = TrackState.TRACKING, TrackState.LOST
    assert [r.state for r in results] == [T, T, T, T, T, T, L, L, L, L, L, T, T, T]
    assert [r.frame_index for r in results] == list(range(1, len(confs) + 1))
    assert [r.confidence for r in results] == pytest.approx(confs, abs=1e-6)
    assert [int(s) for s in TrackState] == [0, 1, 2]


def test_lost_reports_and_searches_around_last_confident_box():
    confs = [0.9, 0.1, 0.1, 0.1, 0.2, 0.2]
    _, backend, _, results = run(confs, box=(100, 80, 40, 40))
    confident = results[0].box
    # low-confidence frames while still TRACKING follow the network (published behaviour)
    assert results[1].box == results[1].raw_box
    for r in results[3:]:
        assert r.state == TrackState.LOST and r.box == confident
        centre = (r.raw_box[0] + r.raw_box[2] / 2, r.raw_box[1] + r.raw_box[3] / 2)
        assert centre == pytest.approx((confident[0] + confident[2] / 2, confident[1] + confident[3] / 2))


@pytest.mark.parametrize("follow", [False, True])
def test_follow_while_lost_moves_the_search_with_middling_boxes(follow):
    # The network's box sits 0.1 crop sides (16 px for a 40 px box) right of every crop's centre.
    backend = ScriptedBackend([0.9, 0.1, 0.1, 0.1, 0.4, 0.4, 0.2, 0.4], box_cx=0.6)
    config = TrackerConfig(lost_threshold=0.3, recover_threshold=0.5, follow_while_lost=follow, **PLAIN)
    tracker = Tracker(backend, config)
    tracker.init(image(), (100, 80, 40, 40))
    results = [tracker.update(image()) for _ in range(8)]
    confident = results[0].box
    assert [r.state.name for r in results] == ["TRACKING"] * 3 + ["LOST"] * 5
    assert all(r.box == confident for r in results[3:])  # the reported box never moves while LOST
    # Offset of each LOST frame's network box from the last confident box: 16 px when the search
    # was centred on that box. The first LOST frame was searched from the last TRACKING box.
    offsets = [r.raw_box[0] - confident[0] for r in results[3:]]
    # With follow, a LOST box at or above the LOST threshold (0.4) centres the next search and
    # one below it (0.2) sends the search back; without, only boxes >= 0.5 would move it.
    expected = [48.0, 16.0, 32.0, 48.0, 16.0] if follow else [48.0, 16.0, 16.0, 16.0, 16.0]
    assert offsets == pytest.approx(expected)


def test_lost_search_factor_enlarges_the_search():
    config = TrackerConfig(frames_to_lose=1, frames_to_recover=1, lost_search_factor=8.0, **PLAIN)
    _, _, first, results = run([0.0, 0.0, 0.9], config, box=(100, 80, 40, 40))
    side = np.ceil(40 * 4.0)
    assert results[0].raw_box[2] == pytest.approx(0.25 * side)
    assert results[0].state == TrackState.LOST
    assert results[1].raw_box[2] == pytest.approx(0.25 * np.ceil(40 * 8.0))
    assert results[2].state == TrackState.TRACKING and results[2].box == results[2].raw_box


def test_recovery_needs_consecutive_frames():
    config = TrackerConfig(frames_to_lose=1, frames_to_recover=3, **PLAIN)
    _, _, _, results = run([0.0, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9], config)
    assert [r.state.name for r in results] == ["LOST"] * 6 + ["TRACKING"]


def test_reset_returns_to_idle():
    tracker, _, _, _ = run([0.9])
    tracker.reset()
    assert tracker.state == TrackState.IDLE and tracker.box is None
    with pytest.raises(RuntimeError, match="init"):
        tracker.update(image())
    tracker.init(image(), (10, 10, 30, 30))
    assert tracker.state == TrackState.TRACKING


def test_prev_box_replaces_search_centre():
    backend = ScriptedBackend([0.9, 0.9])
    tracker = Tracker(backend)
    tracker.init(image(), (100, 80, 40, 40))
    r = tracker.update(image(), prev_box=(20, 30, 40, 40))
    assert (r.box[0] + r.box[2] / 2, r.box[1] + r.box[3] / 2) == pytest.approx((40, 50))
    expected = crop(image(), (20, 30, 40, 40), 4.0, 256)[0]
    mean, std = np.array(backend.info.mean), np.array(backend.info.std)
    got = backend.searches[-1][0].transpose(1, 2, 0) * std + mean
    np.testing.assert_allclose(got * 255.0, expected, atol=1e-3)


def test_box_is_clipped_to_image_keeping_ten_pixels():
    backend = ScriptedBackend([0.9], box_wh=0.01)
    tracker = Tracker(backend, TrackerConfig(**PLAIN))
    tracker.init(image(), (300, 220, 30, 30))
    x, y, w, h = tracker.update(image()).box
    assert w == 10.0 and h == 10.0 and x + w <= 320 and y + h <= 240


def test_timings_are_reported():
    _, _, first, results = run([0.9, 0.9])
    for r in [first] + results:
        t = r.timings
        assert min(t) >= 0 and t.total_ms >= t.preprocess_ms + t.inference_ms - 1e-6


def test_non_finite_network_box_keeps_previous_box():
    class NanBackend(ScriptedBackend):
        def track(self, x):
            out = super().track(x)
            return out._replace(boxes=np.full(4, np.nan, np.float32))

    tracker = Tracker(NanBackend([0.9]))
    tracker.init(image(), (100, 80, 40, 40))
    r = tracker.update(image())
    assert r.confidence == 0.0 and r.box == (100.0, 80.0, 40.0, 40.0)


# --- calibrated confidence, scale clamp, re-acquisition ---------------------------------------

def test_thresholds_come_from_the_model_calibration():
    backend = ScriptedBackend([])
    tracker = Tracker(backend)
    assert not tracker.calibrated and tracker.calibration == DEFAULT_CALIBRATION
    assert (tracker.config.lost_threshold, tracker.config.recover_threshold) == (
        DEFAULT_CALIBRATION.lost_threshold, DEFAULT_CALIBRATION.recover_threshold)
    own = DEFAULT_CALIBRATION.to_dict()
    own.update(lost_threshold=0.15, recover_threshold=0.65)
    backend.info = ModelInfo.for_variant("tiny", calibration=own)
    tracker = Tracker(backend)
    assert tracker.calibrated and tracker.config.lost_threshold == 0.15
    assert tracker.config.recover_threshold == 0.65
    assert Tracker(backend, TrackerConfig(lost_threshold=0.4)).config.lost_threshold == 0.4
    corner = Tracker(backend, TrackerConfig(confidence="corner")).config
    assert (corner.lost_threshold, corner.recover_threshold) == CORNER_THRESHOLDS
    with pytest.raises(ValueError, match="recover_threshold"):
        Tracker(backend, TrackerConfig(lost_threshold=0.7))  # above the model's recover threshold


def test_result_carries_corner_confidence_and_features():
    _, _, first, results = run([0.8])
    assert first.features is None and first.corner_confidence == 1.0
    r = results[0]
    assert r.corner_confidence == pytest.approx(0.8, abs=1e-6) and r.confidence == r.corner_confidence
    assert len(r.features) == len(DEFAULT_CALIBRATION.features)
    assert r.features[0] == pytest.approx(0.8, abs=1e-6)
    calibrated = Tracker(ScriptedBackend([0.8]))
    calibrated.init(image(), (100, 80, 40, 40))
    r = calibrated.update(image())
    assert r.confidence == pytest.approx(DEFAULT_CALIBRATION.score(np.array(r.features)))


@pytest.mark.parametrize("step", [None, 1.1])
def test_scale_clamp_limits_growth_per_frame(step):
    backend = ScriptedBackend([1.0] * 5, box_wh=1.0)  # the network says: the whole search crop
    tracker = Tracker(backend, TrackerConfig(confidence="corner", reacquire_after=None, max_scale_step=step))
    frame = image(960, 1280)
    tracker.init(frame, (600, 460, 40, 40))
    widths = [tracker.update(frame).box[2] for _ in range(3)]
    if step is None:
        assert widths[0] == pytest.approx(160.0)  # 4 x the box in one frame
    else:
        assert widths == pytest.approx([40 * 1.1, 40 * 1.1 ** 2, 40 * 1.1 ** 3])


def test_reacquire_adds_one_search_per_frame_wide_then_tiles():
    config = TrackerConfig(frames_to_lose=1, reacquire_after=2, reacquire_wide_frames=2, reacquire_factor=8.0,
                           max_scale_step=None, confidence="corner")
    backend = ScriptedBackend([0.0] * 12, box_wh=0.25)
    tracker = Tracker(backend, config)
    tracker.init(image(), (100, 80, 40, 40))
    counts, raw = [], []
    for _ in range(8):
        before = len(backend.searches)
        r = tracker.update(image())
        counts.append(len(backend.searches) - before)
        raw.append(r.raw_box)
        assert r.state == TrackState.LOST and r.box == (100.0, 80.0, 40.0, 40.0)
    # LOST from frame 1; the extra search starts on the 3rd LOST frame, never more than one
    assert counts == [1, 1, 2, 2, 2, 2, 2, 2]
    assert tracker.config.reacquire_after == 2


def test_tiles_cover_the_image():
    from asymtrack_ros.tracking.reacquire import extra_search, tile_boxes

    tiles = tile_boxes((0, 0, 40, 40), 4.0, (1280, 720))  # crop side 160
    side = 160.0
    covered = np.zeros((720, 1280), bool)
    for x, y, w, h in tiles:
        x1, y1 = int(x + w / 2 - side / 2), int(y + h / 2 - side / 2)
        covered[max(y1, 0):y1 + int(side), max(x1, 0):x1 + int(side)] = True
        assert (w, h) == (40, 40)
    assert covered.all() and len(tiles) == 11 * 6  # centres 120 px apart (3/4 of a crop)
    assert extra_search(0, (5, 6, 40, 40), 4.0, 1, (1280, 720)) == (5, 6, 40, 40)
    assert extra_search(1, (5, 6, 40, 40), 4.0, 1, (1280, 720)) == tiles[0]
    assert extra_search(1 + len(tiles), (5, 6, 40, 40), 4.0, 1, (1280, 720)) == tiles[0]
    assert len(tile_boxes((0, 0, 100, 100), 8.0, (320, 240))) == 1


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("box", [(10, 10, 0, 20), (10, 10, 20, -1), (np.nan, 10, 20, 20), (10, 10, np.inf, 5),
                                 (400, 10, 20, 20), (-50, 10, 20, 20), (10, 10, 20), "abcd", None])
def test_bad_init_boxes_raise_value_error(box):
    tracker = Tracker(ScriptedBackend([]))
    with pytest.raises(ValueError):
        tracker.init(image(), box)
    assert tracker.state == TrackState.IDLE


@pytest.mark.parametrize("bad", [np.zeros((0, 0, 3), np.uint8), np.zeros((10, 10, 5), np.uint8),
                                 np.zeros((2, 10, 10, 3), np.uint8), np.zeros((10, 10, 3), np.float32),
                                 [[1, 2], [3, 4]]])
def test_bad_images_raise(bad):
    with pytest.raises((ValueError, TypeError)):
        Tracker(ScriptedBackend([])).init(bad, (1, 1, 5, 5))


def test_image_of_another_size_is_an_error():
    tracker = Tracker(ScriptedBackend([]))
    tracker.init(image(), (10, 10, 30, 30))
    with pytest.raises(ValueError, match="initialised on 320x240"):
        tracker.update(image(480, 640))
    assert tracker.state == TrackState.TRACKING


def test_grey_and_rgba_are_converted():
    rgb = image()
    grey = rgb[:, :, 1].copy()
    rgba = np.concatenate([rgb, np.full((240, 320, 1), 7, np.uint8)], axis=2)
    pairs = [(np.repeat(grey[:, :, None], 3, axis=2), grey), (np.repeat(grey[:, :, None], 3, axis=2),
                                                             grey[:, :, None]), (rgb, rgba)]
    for reference, other in pairs:
        a, b = ScriptedBackend([0.9]), ScriptedBackend([0.9])
        for backend, img in ((a, reference), (b, other)):
            tracker = Tracker(backend)
            tracker.init(img, (100, 80, 40, 40))
            tracker.update(img)
        np.testing.assert_array_equal(a.templates[0], b.templates[0])
        np.testing.assert_array_equal(a.searches[0], b.searches[0])


def test_bad_prev_box_is_an_error_but_outside_is_allowed():
    tracker = Tracker(ScriptedBackend([0.9, 0.9]))
    tracker.init(image(), (100, 80, 40, 40))
    with pytest.raises(ValueError):
        tracker.update(image(), prev_box=(1, 2, np.nan, 4))
    assert tracker.update(image(), prev_box=(-500, -500, 20, 20)).box[2] >= 10


@pytest.mark.parametrize("kwargs", [dict(lost_threshold=0.6, recover_threshold=0.5),
                                    dict(lost_threshold=-0.1), dict(recover_threshold=1.5),
                                    dict(frames_to_lose=0), dict(frames_to_recover=1.5),
                                    dict(lost_search_factor=0.0), dict(lost_search_factor=float("nan")),
                                    dict(min_box_size=-1.0), dict(confidence_radius=-1),
                                    dict(confidence="peak"), dict(max_scale_step=0.9),
                                    dict(max_scale_step=float("inf")), dict(reacquire_after=-1),
                                    dict(reacquire_wide_frames=0), dict(reacquire_factor=0.0),
                                    dict(follow_while_lost="yes")])
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        TrackerConfig(**kwargs)


def test_tracking_package_does_not_import_torch_or_rclpy():
    code = ("import sys, asymtrack_ros.tracking, asymtrack_ros.synthetic, asymtrack_ros.evaluation; "
            "bad = [m for m in ('torch', 'rclpy') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO))


# --- the published tracking loop ----------------------------------------------------------------

def pytorch_backend(path: Path):
    try:
        from asymtrack_ros.backends.pytorch_backend import PyTorchBackend
        from asymtrack_ros.model import load_published
    except ImportError as exc:
        pytest.skip(f"PyTorch backend or model loader not available: {exc}")
    return PyTorchBackend(load_published(path))


def onnxruntime_backend(path: Path, tmp_dir: Path):
    try:
        from asymtrack_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
        from asymtrack_ros.export import export_onnx
        from asymtrack_ros.model import load_published
    except ImportError as exc:
        pytest.skip(f"ONNX export or ONNX Runtime backend not available: {exc}")
    prefix = tmp_dir / path.name.split(".")[0]
    export_onnx(load_published(path), prefix)
    return OnnxRuntimeBackend(prefix, threads=1)


def reference_steps(backend, reference_dir: Path, variant: str) -> float:
    """Largest error (px) over the 7 tracked frames, each from the published previous state."""
    seq = np.load(reference_dir / f"tracker_{variant}.npz")
    states = seq["official_states"]
    never_lost = TrackerConfig(lost_threshold=0.0, recover_threshold=1.0, **PLAIN)
    tracker = Tracker(backend, never_lost)
    tracker.init(seq["frames"][0], seq["init_box"])
    errors = [np.abs(np.array(tracker.update(seq["frames"][i], prev_box=states[i - 1]).box) - states[i]).max()
              for i in range(1, len(states))]
    return float(max(errors))


@pytest.mark.parametrize("variant", ["tiny", "small", "base"])
def test_published_loop_pytorch(reference_dir, variant):
    import torch

    torch.set_num_threads(1)
    backend = pytorch_backend(reference_dir / f"official_{variant}_random.pth.tar")
    assert reference_steps(backend, reference_dir, variant) < 0.01


@pytest.mark.parametrize("variant", ["tiny", "small", "base"])
def test_published_loop_onnxruntime(reference_dir, variant, tmp_path):
    pytest.importorskip("torch").set_num_threads(1)
    backend = onnxruntime_backend(reference_dir / f"official_{variant}_random.pth.tar", tmp_path)
    try:
        assert reference_steps(backend, reference_dir, variant) < 0.01
    finally:
        backend.close()


def confidences_visible_hidden(backend, confidence: str):
    """Confidences on visible and on hidden frames of 3 synthetic sequences with an occlusion and an exit,
    searching around the true previous box (so that only the confidence is measured); and the tracker."""
    from asymtrack_ros.synthetic import make_sequence

    visible, hidden = [], []
    for seed in range(3):
        seq = make_sequence(seed, 40, occlusions=[(15, 25)], exits=[(30, 38)])
        tracker = Tracker(backend, TrackerConfig(frames_to_lose=100, **dict(PLAIN, confidence=confidence)))
        tracker.init(seq.frames[0], seq.boxes[0])
        for i in range(1, len(seq)):
            r = tracker.update(seq.frames[i], prev_box=seq.boxes[i - 1])
            (visible if seq.visible[i] else hidden).append(r.confidence)
    return np.array(visible), np.array(hidden), tracker


def test_confidence_separates_visible_from_occluded():
    """Needs the trained demo model: random weights give no meaningful corner distributions."""
    if not DEMO_MODEL.is_file():
        pytest.skip(f"trained demo model {DEMO_MODEL} not present (random weights cannot separate)")
    from asymtrack_ros.backends import create_backend

    pytest.importorskip("torch").set_num_threads(1)
    backend = create_backend("pytorch", DEMO_MODEL)
    try:
        visible, hidden, _ = confidences_visible_hidden(backend, "corner")
        assert np.median(visible) > np.median(hidden) + 0.2
        visible, hidden, tracker = confidences_visible_hidden(backend, "calibrated")
    finally:
        backend.close()
    # the model's own calibration: hidden frames fall below its LOST threshold, visible ones recover
    assert np.mean(hidden < tracker.config.lost_threshold) > 0.8
    assert np.mean(visible >= tracker.config.recover_threshold) > 0.8
