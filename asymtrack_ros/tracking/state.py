"""Tracking states, the tracker's thresholds and the LOST/TRACKING hysteresis."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Optional


class TrackState(enum.IntEnum):
    """Same numbering as the ROS message's ``state`` field."""

    IDLE = 0
    TRACKING = 1
    LOST = 2


@dataclass(frozen=True)
class TrackerConfig:
    """Thresholds on the corner confidence (see ``confidence.py``) and the LOST search.

    TRACKING becomes LOST after ``frames_to_lose`` consecutive frames with confidence below
    ``lost_threshold``; LOST becomes TRACKING after ``frames_to_recover`` consecutive frames at or
    above ``recover_threshold``. While LOST the search is centred on the last confident box with
    crop factor ``lost_search_factor`` (None: the model's own search factor).
    """

    lost_threshold: float = 0.3
    recover_threshold: float = 0.5
    frames_to_lose: int = 3
    frames_to_recover: int = 2
    lost_search_factor: Optional[float] = None
    min_box_size: float = 10.0
    confidence_radius: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.lost_threshold < 1.0:
            raise ValueError(f"lost_threshold must be in [0, 1), got {self.lost_threshold}")
        if not self.lost_threshold < self.recover_threshold <= 1.0:
            raise ValueError(f"recover_threshold must be in (lost_threshold, 1], got "
                             f"{self.recover_threshold} with lost_threshold {self.lost_threshold}")
        for name in ("frames_to_lose", "frames_to_recover"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        factor = self.lost_search_factor
        if factor is not None and not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"lost_search_factor must be a positive number or None, got {factor}")
        if not (math.isfinite(self.min_box_size) and self.min_box_size >= 0):
            raise ValueError(f"min_box_size must be >= 0, got {self.min_box_size}")
        if isinstance(self.confidence_radius, bool) or not isinstance(self.confidence_radius, int) \
                or self.confidence_radius < 0:
            raise ValueError(f"confidence_radius must be an integer >= 0, got {self.confidence_radius!r}")


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
