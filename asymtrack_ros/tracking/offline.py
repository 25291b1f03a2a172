"""A ``TrackSession`` driven frame by frame, as the offline tools (replay, track, evaluate) use it.

The frames are in memory or read in order and every one is tracked: they go in unstamped (no
buffer, no waiting), ``init`` takes the box on the frame given, ``update`` tracks the next. What
the session would report to a live user is an error here, since no one can send a new box: a
rejected init box, or a frame of another size (which ends the track).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from asymtrack_ros.backends.base import Backend
from asymtrack_ros.tracking.session import TRACK_STARTED, ArrayFrame, Output, TrackSession
from asymtrack_ros.tracking.state import TrackerConfig


class OfflineTrackError(ValueError):
    """The session rejected the init box, or ended the track (a frame of another size)."""


class OfflineSession:
    """``init`` on one frame, then ``update`` on each next one; each returns the frame's ``Output``,
    whose ``result`` (the tracker's own) is set on every frame from the init on."""

    def __init__(self, backend: Backend, tracker_config: Optional[TrackerConfig] = None):
        self.session = TrackSession(backend, tracker_config=tracker_config)

    def init(self, image: np.ndarray, box: Sequence[float], payload: Any = None) -> Output:
        """Start a new track on ``image`` at ``box`` (x, y, w, h); a running one is replaced."""
        self.session.request_init(box)
        return self.update(image, payload)

    def update(self, image: np.ndarray, payload: Any = None) -> Output:
        """Track ``image`` (IDLE output before any ``init``)."""
        frame = ArrayFrame(None, image, payload)
        seq, _ = self.session.receive(frame)
        step = self.session.step(seq, frame)
        problems = [event.message for event in step.events if event.kind != TRACK_STARTED]
        if problems:
            raise OfflineTrackError("; ".join(problems))
        return step.outputs[-1]
