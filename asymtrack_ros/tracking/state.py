"""Tracking states, the tracker's thresholds and the LOST/TRACKING hysteresis."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from typing import Optional


class TrackState(enum.IntEnum):
    """Same numbering as the ROS message's ``state`` field."""

    IDLE = 0
    TRACKING = 1
    LOST = 2


def state_name(number: int) -> str:
    """A message's ``state`` field as a state name; an unknown number reads as IDLE."""
    try:
        return TrackState(number).name
    except ValueError:
        return TrackState.IDLE.name


def state_number(name: str) -> int:
    """A state name as the messages' ``state`` number; an unknown name is IDLE."""
    return int(TrackState.__members__.get(name, TrackState.IDLE))


CONFIDENCES = ("calibrated", "corner")
CORNER_THRESHOLDS = (0.3, 0.5)  # documented defaults of the corner confidence alone


@dataclass(frozen=True)
class TrackerConfig:
    """Thresholds, the confidence used, the scale clamp and the re-acquisition search.

    ``confidence``: "calibrated" (default) is the logistic combination of calibration.py, with
    weights from the model file (or the documented defaults); "corner" is the corner confidence
    alone (confidence.py). TRACKING becomes LOST after ``frames_to_lose`` consecutive frames
    with confidence below ``lost_threshold``; LOST becomes TRACKING after ``frames_to_recover``
    consecutive frames at or above ``recover_threshold``. A threshold left at None comes from the
    model's calibration ("calibrated") or ``CORNER_THRESHOLDS`` ("corner"). While LOST the search
    is centred on the last confident box with crop factor ``lost_search_factor`` (None: the
    model's own search factor). With ``follow_while_lost`` the search instead follows the
    network's box of any LOST frame whose confidence is at least ``lost_threshold`` (without it,
    only a box at ``recover_threshold`` or above moves the search); the reported box stays the
    last confident one either way.

    ``max_scale_step``: the box's width and height change by at most this factor per frame
    (None: unclamped, the published loop). ``reacquire_after``: after this many frames LOST, one
    extra search per frame looks further: a crop of factor ``reacquire_factor`` around the last
    confident box for ``reacquire_wide_frames`` frames, then tiles of that size over the whole
    frame, one per frame (None: no extra search).
    """

    lost_threshold: Optional[float] = None
    recover_threshold: Optional[float] = None
    frames_to_lose: int = 3
    frames_to_recover: int = 2
    lost_search_factor: Optional[float] = None
    min_box_size: float = 10.0
    confidence_radius: int = 1
    confidence: str = "calibrated"
    max_scale_step: Optional[float] = None
    reacquire_after: Optional[int] = 5
    reacquire_wide_frames: int = 5
    reacquire_factor: float = 8.0
    follow_while_lost: bool = False

    def __post_init__(self) -> None:
        self._check_thresholds()
        for name in ("frames_to_lose", "frames_to_recover", "reacquire_wide_frames"):
            _check_count(name, getattr(self, name), 1)
        if self.reacquire_after is not None:
            _check_count("reacquire_after", self.reacquire_after, 0)
        factor = self.lost_search_factor
        if factor is not None and not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"lost_search_factor must be a positive number or None, got {factor}")
        if not (math.isfinite(self.reacquire_factor) and self.reacquire_factor > 0):
            raise ValueError(f"reacquire_factor must be a positive number, got {self.reacquire_factor}")
        step = self.max_scale_step
        if step is not None and not (math.isfinite(step) and step >= 1.0):
            raise ValueError(f"max_scale_step must be a number >= 1 or None, got {step}")
        if not (math.isfinite(self.min_box_size) and self.min_box_size >= 0):
            raise ValueError(f"min_box_size must be >= 0, got {self.min_box_size}")
        _check_count("confidence_radius", self.confidence_radius, 0)
        if not isinstance(self.follow_while_lost, bool):
            raise ValueError(f"follow_while_lost must be True or False, got {self.follow_while_lost!r}")
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"confidence must be one of {CONFIDENCES}, got {self.confidence!r}")

    def _check_thresholds(self) -> None:
        lost, recover = self.lost_threshold, self.recover_threshold
        if lost is not None and not 0.0 <= lost < 1.0:
            raise ValueError(f"lost_threshold must be in [0, 1), got {lost}")
        if recover is not None and not 0.0 < recover <= 1.0:
            raise ValueError(f"recover_threshold must be in (0, 1], got {recover}")
        if lost is not None and recover is not None and not lost < recover:
            raise ValueError(f"recover_threshold must be in (lost_threshold, 1], got "
                             f"{recover} with lost_threshold {lost}")

    def resolved(self, lost: float, recover: float) -> TrackerConfig:
        """This config with unset thresholds taken from ``lost`` / ``recover``."""
        return replace(self, lost_threshold=lost if self.lost_threshold is None else self.lost_threshold,
                       recover_threshold=recover if self.recover_threshold is None
                       else self.recover_threshold)


def _check_count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


class Hysteresis:
    """Counts consecutive low / high confidences and switches TRACKING <-> LOST."""

    def __init__(self, config: TrackerConfig):
        self.config = config
        self.state = TrackState.IDLE
        self.count = 0

    def start(self) -> None:
        self.state = TrackState.TRACKING
        self.count = 0

    def stop(self) -> None:
        self.state = TrackState.IDLE
        self.count = 0

    def step(self, confidence: float) -> TrackState:
        cfg = self.config
        if self.state == TrackState.TRACKING:
            self.count = self.count + 1 if confidence < cfg.lost_threshold else 0
            if self.count >= cfg.frames_to_lose:
                self.state, self.count = TrackState.LOST, 0
        elif self.state == TrackState.LOST:
            self.count = self.count + 1 if confidence >= cfg.recover_threshold else 0
            if self.count >= cfg.frames_to_recover:
                self.state, self.count = TrackState.TRACKING, 0
        return self.state
