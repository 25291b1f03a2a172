"""The single-object tracker: OpenCV-style ``init`` / ``update`` over any inference backend.

Each ``update`` crops a search region around the previous box, runs the backend, maps the
network's box back to image pixels as the published loop does (optionally clamping the change
of scale), scores it (calibration.py: corner confidence, appearance against the template, box
sanity) and steps the TRACKING/LOST hysteresis. While LOST, the reported box is the last
confident box and the search stays centred on it (optionally with a larger crop factor; with
``follow_while_lost`` it follows network boxes at or above the LOST threshold instead); after
``reacquire_after`` frames one extra search per frame looks wider, then over the whole image in
tiles (reacquire.py), and a confident, similar-looking find brings the target back.
"""

from __future__ import annotations

import time
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from asymtrack_ros.backends.base import Backend, SearchOutput
from asymtrack_ros.tracking.appearance import Signature, signature
from asymtrack_ros.tracking.calibration import FEATURES, box_features, calibration_of
from asymtrack_ros.tracking.confidence import corner_confidence
from asymtrack_ros.tracking.crop import crop, preprocess
from asymtrack_ros.tracking.inputs import Box, as_rgb, check_box, clip_box
from asymtrack_ros.tracking.reacquire import extra_search
from asymtrack_ros.tracking.state import CORNER_THRESHOLDS, Hysteresis, TrackerConfig, TrackState


class Timings(NamedTuple):
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    total_ms: float


class TrackResult(NamedTuple):
    box: Box  # (x, y, w, h) pixels; while LOST the last confident box
    confidence: float  # in [0, 1]: the config's confidence (calibrated by default)
    state: TrackState
    frame_index: int  # frames since init; the init frame is 0
    timings: Timings
    raw_box: Box  # this frame's network box (equals ``box`` while TRACKING)
    corner_confidence: float = 1.0  # the corner confidence alone (confidence.py)
    features: Optional[Tuple[float, ...]] = None  # calibration.FEATURES of raw_box; None at init


class Candidate(NamedTuple):
    box: Box
    corner: float
    confidence: float
    features: np.ndarray
    signature: Optional[Signature]


def _ms(start: float, end: float) -> float:
    return (end - start) * 1000.0


class Tracker:
    """``Tracker(backend).init(image, box)`` then ``update(image)`` per frame.

    Images are RGB uint8 (HxWx3; grey and RGBA are converted) of the size given to ``init``.
    The tracker does not own the backend: close it yourself. ``config`` thresholds left at None
    come from the model's calibration (``self.calibrated`` says whether it had one).
    """

    def __init__(self, backend: Backend, config: Optional[TrackerConfig] = None):
        self.backend = backend
        self.info = backend.info
        self.calibration, self.calibrated = calibration_of(self.info)
        config = config if config is not None else TrackerConfig()
        defaults = ((self.calibration.lost_threshold, self.calibration.recover_threshold)
                    if config.confidence == "calibrated" else CORNER_THRESHOLDS)
        self.config = config.resolved(*defaults)
        self._hysteresis = Hysteresis(self.config)
        self.reset()

    @property
    def state(self) -> TrackState:
        return self._hysteresis.state

    @property
    def box(self) -> Optional[Box]:
        """The box the next search is centred on (None while IDLE)."""
        return self._box

    def reset(self) -> None:
        """Forget the target; the tracker is IDLE until the next ``init``."""
        self._hysteresis.stop()
        self._box: Optional[Box] = None
        self._confident_box: Optional[Box] = None
        self._reference: Optional[Box] = None  # last confident box clear of the image border
        self._candidate: Optional[Box] = None
        self._template: Optional[Signature] = None
        self._recent: Optional[Signature] = None
        self._image_size: Optional[Tuple[int, int]] = None
        self._frame_index = 0
        self._lost_frames = 0

    def init(self, image: np.ndarray, box: Sequence[float]) -> TrackResult:
        """Take the template from ``image`` at ``box`` (x, y, w, h) and start TRACKING."""
        t0 = time.perf_counter()
        rgb = as_rgb(image)
        size = (rgb.shape[1], rgb.shape[0])
        init_box = check_box(box, size, "init box")
        patch, _ = crop(rgb, init_box, self.info.template_factor, self.info.template_size)
        z = preprocess(patch, self.info.mean, self.info.std)
        t1 = time.perf_counter()
        self.reset()
        self.backend.init_template(z)
        t2 = time.perf_counter()
        self._image_size = size
        self._box = self._confident_box = self._reference = init_box
        self._template = self._recent = signature(rgb, init_box)
        self._hysteresis.start()
        t3 = time.perf_counter()
        timings = Timings(_ms(t0, t1), _ms(t1, t2), _ms(t2, t3), _ms(t0, t3))
        return TrackResult(init_box, 1.0, TrackState.TRACKING, 0, timings, init_box)

    def update(self, image: np.ndarray, prev_box: Optional[Sequence[float]] = None) -> TrackResult:
        """Track one frame. ``prev_box`` (x, y, w, h), if given, replaces the search centre."""
        if self.state == TrackState.IDLE:
            raise RuntimeError("Tracker.update() called before init() (or after reset())")
        t0 = time.perf_counter()
        rgb = self._check_image(image)
        lost = self.state == TrackState.LOST
        centre = (self._candidate or self._lost_centre()) if lost else self._box
        if prev_box is not None:
            centre = check_box(prev_box, self._image_size, "prev_box", inside=False)
        factor = self.info.search_factor
        if lost and self.config.lost_search_factor is not None:
            factor = self.config.lost_search_factor
        spent = [0.0, 0.0, 0.0]
        best = self._search(rgb, centre, factor, spent)
        extra = self._extra_search_box() if lost and prev_box is None else None
        if extra is not None:
            other = self._search(rgb, extra, self.config.reacquire_factor, spent, local=False)
            best = other if other.confidence > best.confidence else best
        t1 = time.perf_counter()
        result_box = self._step(best)
        self._frame_index += 1
        t2 = time.perf_counter()
        timings = Timings(spent[0], spent[1], spent[2] + _ms(t1, t2), _ms(t0, t2))
        return TrackResult(result_box, best.confidence, self.state, self._frame_index, timings,
                           best.box, best.corner, tuple(float(f) for f in best.features))

    def _check_image(self, image: np.ndarray) -> np.ndarray:
        rgb = as_rgb(image)
        size = (rgb.shape[1], rgb.shape[0])
        if size != self._image_size:
            raise ValueError(f"image is {size[0]}x{size[1]} but the tracker was initialised on "
                             f"{self._image_size[0]}x{self._image_size[1]}; call init() again")
        return rgb

    def _extra_search_box(self) -> Optional[Box]:
        after = self.config.reacquire_after
        if after is None or self._lost_frames < after:
            return None
        return extra_search(self._lost_frames - after, self._lost_centre(), self.config.reacquire_factor,
                            self.config.reacquire_wide_frames, self._image_size)

    def _lost_centre(self) -> Box:
        """The last confident position at the last size seen clear of the border.

        A target leaving the frame shrinks to a clipped sliver; searching at that size would
        miss it when it comes back whole.
        """
        x, y, w, h = self._confident_box
        _, _, rw, rh = self._reference
        return x + 0.5 * (w - rw), y + 0.5 * (h - rh), rw, rh

    def _clear_of_border(self, box: Box) -> bool:
        x, y, w, h = box
        width, height = self._image_size
        return x > 1.0 and y > 1.0 and x + w < width - 2.0 and y + h < height - 2.0

    def _search(self, rgb: np.ndarray, centre: Box, factor: float, spent: List[float],
                local: bool = True) -> Candidate:
        """One network pass on the crop around ``centre``; adds its times (ms) to ``spent``.

        The extra search while LOST (``local`` False) looks away from the last position on
        purpose: its box is not scale-clamped and its jump is not held against it.
        """
        t0 = time.perf_counter()
        patch, resize_factor = crop(rgb, centre, factor, self.info.search_size)
        x = preprocess(patch, self.info.mean, self.info.std)
        t1 = time.perf_counter()
        out = self.backend.track(x)
        t2 = time.perf_counter()
        candidate = self._candidate_from(out, rgb, centre, resize_factor, local)
        t3 = time.perf_counter()
        spent[0] += _ms(t0, t1)
        spent[1] += _ms(t1, t2)
        spent[2] += _ms(t2, t3)
        return candidate

    def _network_box(self, out: SearchOutput, centre: Box, resize_factor: float,
                     local: bool) -> Optional[Box]:
        boxes = np.asarray(out.boxes, np.float64).reshape(-1)
        if boxes.size != 4 or not np.all(np.isfinite(boxes)):
            return None
        cx, cy, w, h = (boxes * self.info.search_size / resize_factor).tolist()
        half_side = 0.5 * self.info.search_size / resize_factor
        cx += centre[0] + 0.5 * centre[2] - half_side
        cy += centre[1] + 0.5 * centre[3] - half_side
        step = self.config.max_scale_step
        if step is not None and local:
            w = min(max(w, centre[2] / step), centre[2] * step)
            h = min(max(h, centre[3] / step), centre[3] * step)
        width, height = self._image_size
        return clip_box((cx - 0.5 * w, cy - 0.5 * h, w, h), width, height, self.config.min_box_size)

    def _candidate_from(self, out: SearchOutput, rgb: np.ndarray, centre: Box,
                        resize_factor: float, local: bool) -> Candidate:
        box = self._network_box(out, centre, resize_factor, local)
        if box is None:
            return Candidate(centre, 0.0, 0.0, np.zeros(len(FEATURES)), None)
        corner = corner_confidence(out.prob_tl, out.prob_br, self.config.confidence_radius)
        sig = signature(rgb, box)
        features = box_features(corner, sig, self._template, self._recent, box, self._reference,
                                centre if local else box, self._image_size)
        confidence = corner if self.config.confidence == "corner" else self.calibration.score(features)
        return Candidate(box, corner, confidence, features, sig)

    def _step(self, best: Candidate) -> Box:
        state = self._hysteresis.step(best.confidence)
        if state == TrackState.TRACKING:
            self._lost_frames, self._candidate = 0, None
            self._box = best.box
            if best.confidence >= self.config.lost_threshold:
                self._confident_box = best.box
                if self._clear_of_border(best.box):
                    self._reference = best.box
                    self._recent = best.signature or self._recent
            return best.box
        self._lost_frames += 1
        cfg = self.config
        follow_from = cfg.lost_threshold if cfg.follow_while_lost else cfg.recover_threshold
        found = best.signature is not None and best.confidence >= follow_from
        self._candidate = best.box if found else None
        self._box = self._confident_box
        return self._confident_box
