"""The single-object tracker: OpenCV-style ``init`` / ``update`` over any inference backend.

Each ``update`` crops a search region around the previous box, runs the backend, maps the
network's box back to image pixels as the published loop does, scores it with the corner
confidence and steps the TRACKING/LOST hysteresis. While LOST, the reported box is the last
confident box and the search stays centred on it (optionally with a larger crop factor).
"""

from __future__ import annotations

import time
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np

from asymtrack_ros.backends.base import Backend, SearchOutput
from asymtrack_ros.tracking.confidence import corner_confidence
from asymtrack_ros.tracking.crop import crop, preprocess
from asymtrack_ros.tracking.inputs import Box, as_rgb, check_box, clip_box
from asymtrack_ros.tracking.state import Hysteresis, TrackerConfig, TrackState


class Timings(NamedTuple):
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    total_ms: float


class TrackResult(NamedTuple):
    box: Box  # (x, y, w, h) pixels; while LOST the last confident box
    confidence: float  # in [0, 1], see confidence.py
    state: TrackState
    frame_index: int  # frames since init; the init frame is 0
    timings: Timings
    raw_box: Box  # this frame's network box (equals ``box`` while TRACKING)


def _ms(start: float, end: float) -> float:
    return (end - start) * 1000.0


class Tracker:
    """``Tracker(backend).init(image, box)`` then ``update(image)`` per frame.

    Images are RGB uint8 (HxWx3; grey and RGBA are converted) of the size given to ``init``.
    The tracker does not own the backend: close it yourself.
    """

    def __init__(self, backend: Backend, config: Optional[TrackerConfig] = None):
        self.backend = backend
        self.info = backend.info
        self.config = config if config is not None else TrackerConfig()
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
        self._image_size: Optional[Tuple[int, int]] = None
        self._frame_index = 0

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
        self._box = self._confident_box = init_box
        self._hysteresis.start()
        timings = Timings(_ms(t0, t1), _ms(t1, t2), 0.0, _ms(t0, t2))
        return TrackResult(init_box, 1.0, TrackState.TRACKING, 0, timings, init_box)

    def update(self, image: np.ndarray, prev_box: Optional[Sequence[float]] = None) -> TrackResult:
        """Track one frame. ``prev_box`` (x, y, w, h), if given, replaces the search centre."""
        if self.state == TrackState.IDLE:
            raise RuntimeError("Tracker.update() called before init() (or after reset())")
        t0 = time.perf_counter()
        rgb = self._check_image(image)
        lost = self.state == TrackState.LOST
        centre = self._confident_box if lost else self._box
        if prev_box is not None:
            centre = check_box(prev_box, self._image_size, "prev_box", inside=False)
        factor = self.info.search_factor
        if lost and self.config.lost_search_factor is not None:
            factor = self.config.lost_search_factor
        patch, resize_factor = crop(rgb, centre, factor, self.info.search_size)
        x = preprocess(patch, self.info.mean, self.info.std)
        t1 = time.perf_counter()
        out = self.backend.track(x)
        t2 = time.perf_counter()
        raw_box, confidence = self._postprocess(out, centre, resize_factor)
        result_box = self._step(raw_box, confidence)
        self._frame_index += 1
        t3 = time.perf_counter()
        timings = Timings(_ms(t0, t1), _ms(t1, t2), _ms(t2, t3), _ms(t0, t3))
        return TrackResult(result_box, confidence, self.state, self._frame_index, timings, raw_box)

    def _check_image(self, image: np.ndarray) -> np.ndarray:
        rgb = as_rgb(image)
        size = (rgb.shape[1], rgb.shape[0])
        if size != self._image_size:
            raise ValueError(f"image is {size[0]}x{size[1]} but the tracker was initialised on "
                             f"{self._image_size[0]}x{self._image_size[1]}; call init() again")
        return rgb

    def _postprocess(self, out: SearchOutput, centre: Box, resize_factor: float) -> Tuple[Box, float]:
        boxes = np.asarray(out.boxes, np.float64).reshape(-1)
        if boxes.size != 4 or not np.all(np.isfinite(boxes)):
            return centre, 0.0
        cx, cy, w, h = (boxes * self.info.search_size / resize_factor).tolist()
        half_side = 0.5 * self.info.search_size / resize_factor
        cx += centre[0] + 0.5 * centre[2] - half_side
        cy += centre[1] + 0.5 * centre[3] - half_side
        width, height = self._image_size
        box = clip_box((cx - 0.5 * w, cy - 0.5 * h, w, h), width, height, self.config.min_box_size)
        return box, corner_confidence(out.prob_tl, out.prob_br, self.config.confidence_radius)

    def _step(self, raw_box: Box, confidence: float) -> Box:
        state = self._hysteresis.step(confidence)
        if state == TrackState.TRACKING:
            self._box = raw_box
            if confidence >= self.config.lost_threshold:
                self._confident_box = raw_box
            return raw_box
        self._box = self._confident_box
        return self._confident_box
