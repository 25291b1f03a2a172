"""One tracking session over a stream of frames: the ROS-free core of the node and the tools.

A ``TrackSession`` owns everything between "a frame arrived" and "this is what to publish for
it": the ring buffer of recent frames (by stamp), init requests (a box drawn on a frame that may
already have gone by: looked up within a tolerance, waited for while it has not arrived yet, then
caught up over the frames after it), resets, track ids, the image-size policy (a frame of another
size ends the track) and the rule that a box is shown only while TRACKING. It never calls back
into its user: ``step`` returns the output records and the events (rejected init, bad image, bad
stamp, size change) and the user publishes or logs them.

Threading: ``receive``, ``request_init`` and ``reset`` may be called from any thread (callbacks);
``step`` from one worker thread only (it runs the tracker).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from asymtrack_ros.backends.base import Backend
from asymtrack_ros.frame_buffer import (
    EmptyBufferError,
    FrameBuffer,
    FrameBufferError,
    OutOfOrderError,
    StampInFutureError,
)
from asymtrack_ros.tracking.inputs import Box, check_box
from asymtrack_ros.tracking.state import TrackerConfig, TrackState
from asymtrack_ros.tracking.tracker import Tracker, TrackResult

# Event kinds: what went wrong (or started) while receiving or stepping.
REJECTED_INIT = "rejected_init"
BAD_IMAGE = "bad_image"
BAD_STAMP = "bad_stamp"
SIZE_CHANGE = "size_change"
TRACK_STARTED = "track_started"


class BadImageError(ValueError):
    """A frame's image cannot be decoded or converted: the frame is skipped, the track kept."""


class SessionFrame:
    """A frame as the session sees it: a stamp, a size in bytes and an image made on demand.

    ``stamp_ns`` None means "no stamp": tracked, never buffered for stamped init requests.
    Subclasses override ``image`` (raising ``BadImageError`` for an undecodable frame) and may
    keep the image in memory between ``image`` and ``release``.
    """

    def __init__(self, stamp_ns: Optional[int], nbytes: int = 0, payload: Any = None):
        self.stamp_ns = stamp_ns
        self.nbytes = nbytes
        self.payload = payload  # what the user needs to publish the output (a header, a record...)

    def image(self) -> np.ndarray:
        raise NotImplementedError

    def release(self) -> None:
        """Drop any decoded copy (the session calls this once the frame has been tracked)."""


class ArrayFrame(SessionFrame):
    """A frame whose image is already an RGB array (the offline tools)."""

    def __init__(self, stamp_ns: Optional[int], image: np.ndarray, payload: Any = None):
        super().__init__(stamp_ns, int(image.nbytes), payload)
        self._image = image

    def image(self) -> np.ndarray:
        return self._image


@dataclass(frozen=True)
class SessionConfig:
    """``buffer_length`` frames (and at most ``buffer_max_bytes``) are kept for stamped init
    requests, which match a frame within ``init_stamp_tolerance_s`` and wait at most
    ``init_wait_timeout_s`` for it to arrive (``math.inf``: until a newer frame shows it never
    will). ``time_jump_frames`` older stamps in a row mean time really went back (a bag loop, a
    camera restart): the buffer is cleared instead of dropping every frame."""

    buffer_length: int = 30
    buffer_max_bytes: Optional[int] = None
    init_stamp_tolerance_s: float = 0.02
    init_wait_timeout_s: float = 1.0
    time_jump_frames: int = 3

    def __post_init__(self) -> None:
        if not (self.init_stamp_tolerance_s >= 0 and math.isfinite(self.init_stamp_tolerance_s)):
            raise ValueError(f"init_stamp_tolerance_s must be >= 0, got {self.init_stamp_tolerance_s}")
        if not self.init_wait_timeout_s >= 0:
            raise ValueError(f"init_wait_timeout_s must be >= 0, got {self.init_wait_timeout_s}")
        if self.time_jump_frames < 1:
            raise ValueError(f"time_jump_frames must be >= 1, got {self.time_jump_frames}")


class Event(NamedTuple):
    kind: str  # REJECTED_INIT, BAD_IMAGE, BAD_STAMP, SIZE_CHANGE or TRACK_STARTED
    message: str


class Output(NamedTuple):
    """What to publish for one frame."""

    frame: SessionFrame
    state: TrackState
    track_id: str  # "" while IDLE
    box: Optional[Box]  # the tracker's box (while LOST the last confident one); None while IDLE
    confidence: float
    inference_ms: float
    frames_since_init: int
    result: Optional[TrackResult]  # None while IDLE

    @property
    def shown_box(self) -> Optional[Box]:
        """The box a consumer may act on: only while TRACKING (a LOST box is a stale guess)."""
        return self.box if self.state == TrackState.TRACKING else None


class Step(NamedTuple):
    outputs: List[Output]
    events: List[Event]


class _Request(NamedTuple):
    box: Sequence[float]
    stamp_ns: Optional[int]  # None: the newest frame
    received: float


class TrackSession:
    """``receive`` frames, ``request_init`` / ``reset`` at any time, ``step`` in one worker."""

    def __init__(self, backend: Backend, config: Optional[SessionConfig] = None,
                 tracker_config: Optional[TrackerConfig] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.backend = backend
        self.tracker_config = tracker_config  # read at each init: a change applies to the next track
        self._clock = clock
        self._lock = threading.Lock()
        self._config = config or SessionConfig()
        self._buffer: FrameBuffer[Tuple[int, SessionFrame]] = FrameBuffer(self._config.buffer_length,
                                                                          self._config.buffer_max_bytes)
        self._seq = 0
        self._latest: Optional[Tuple[int, SessionFrame]] = None
        self._backwards = 0
        self._request: Optional[_Request] = None
        self._request_fresh = False
        self._generation = 0
        self._seen_generation = 0
        self._tracker: Optional[Tracker] = None
        self._image_shape: Optional[Tuple[int, ...]] = None
        self._last_seq = 0
        self._track_count = 0
        self.track_id = ""
        self.state = TrackState.IDLE

    # ------------------------------------------------------------------ any thread
    @property
    def config(self) -> SessionConfig:
        return self._config

    @config.setter
    def config(self, config: SessionConfig) -> None:
        with self._lock:
            self._config = config
            self._buffer.capacity = config.buffer_length
            self._buffer.max_bytes = config.buffer_max_bytes

    def receive(self, frame: SessionFrame) -> Tuple[Optional[int], List[Event]]:
        """Buffer ``frame``; returns its sequence number (None: dropped, a repeated or older stamp)."""
        events: List[Event] = []
        with self._lock:
            if frame.stamp_ns is not None and not self._admit(frame, events):
                return None, events
            self._seq += 1
            self._latest = (self._seq, frame)
            return self._seq, events

    def _admit(self, frame: SessionFrame, events: List[Event]) -> bool:
        stamp = int(frame.stamp_ns)  # type: ignore[arg-type]
        try:
            self._buffer.push(stamp, (self._seq + 1, frame), frame.nbytes)
        except OutOfOrderError as exc:
            self._backwards = 0 if stamp == self._buffer.newest else self._backwards + 1
            if self._backwards < self._config.time_jump_frames:
                events.append(Event(BAD_STAMP, f"{exc}: frame dropped"))
                return False
            events.append(Event(BAD_STAMP, f"{exc}: time went back for {self._backwards} frames in a "
                                           "row, frame buffer cleared"))
            self._buffer.clear()
            self._buffer.push(stamp, (self._seq + 1, frame), frame.nbytes)
        self._backwards = 0
        return True

    def request_init(self, box: Sequence[float], stamp_ns: Optional[int] = None) -> None:
        """Start a new track at ``box`` (x, y, w, h) on the frame stamped ``stamp_ns`` (None: the
        newest). Replaces a request still waiting; validated and applied by the next ``step``."""
        with self._lock:
            self._request = _Request(box, stamp_ns, self._clock())
            self._request_fresh = True

    def reset(self) -> None:
        """Stop tracking (IDLE) and drop a waiting init request; an output being computed is dropped."""
        with self._lock:
            self._generation += 1
            self._request = None

    def has_work(self) -> bool:
        """Whether ``step`` has something to do without a new frame: a reset or a new init request."""
        with self._lock:
            return self._generation != self._seen_generation or self._request_fresh

    def clear_frames(self) -> None:
        """Forget the buffered frames (e.g. when the stream stops); the track itself is kept."""
        with self._lock:
            self._buffer.clear()
            self._latest = None

    # ------------------------------------------------------------------ the worker
    def step(self, seq: Optional[int] = None, frame: Optional[SessionFrame] = None) -> Step:
        """Apply a reset and an init request, then track ``frame`` (received as ``seq``) unless the
        init already covered it. Returns at most one output (the newest frame processed); its frame
        keeps its image until the caller has published it and calls ``frame.release()``."""
        with self._lock:
            generation, request = self._generation, self._request
            self._request_fresh = False
        events: List[Event] = []
        outputs: List[Output] = []
        if generation != self._seen_generation:
            self._seen_generation = generation
            self._stop_tracking()
        if request is not None:
            outputs += self._try_init(request, events)
        if frame is not None and seq is not None and seq > self._last_seq:
            self._last_seq = seq
            output = self._track(frame, events)
            if output is not None:
                outputs = [output]
        with self._lock:
            if generation != self._generation:
                outputs = []  # a reset arrived while these frames were processed
        return Step(outputs[-1:], events)

    def _stop_tracking(self) -> None:
        if self._tracker is not None:
            self._tracker.reset()
        self.state = TrackState.IDLE
        self.track_id = ""

    def _locate(self, request: _Request, events: List[Event]
                ) -> Optional[Tuple[int, SessionFrame, List[Tuple[int, SessionFrame]]]]:
        """The request's frame and the buffered frames after it; None while it waits or if rejected."""
        with self._lock:
            if self._request is not request:
                return None  # replaced or reset meanwhile
            try:
                if request.stamp_ns is None:
                    if self._latest is None:
                        raise EmptyBufferError("no frame received yet")
                    self._request = None
                    return self._latest[0], self._latest[1], []
                tolerance = int(self._config.init_stamp_tolerance_s * 1e9)
                found_ns, (seq, frame) = self._buffer.nearest(request.stamp_ns, tolerance)
            except (StampInFutureError, EmptyBufferError) as exc:
                waited = self._clock() - request.received
                if waited < self._config.init_wait_timeout_s:
                    return None  # its frame has not arrived yet: tried again at the next step
                self._request = None
                events.append(Event(REJECTED_INIT, f"{exc} (waited {self._config.init_wait_timeout_s:g} s "
                                                   "for the frame)"))
                return None
            except FrameBufferError as exc:
                self._request = None
                events.append(Event(REJECTED_INIT, str(exc)))
                return None
            self._request = None
            return seq, frame, [item for _, item in self._buffer.frames_after(found_ns)]

    def _try_init(self, request: _Request, events: List[Event]) -> List[Output]:
        located = self._locate(request, events)
        if located is None:
            return []
        seq, frame, later = located
        try:  # into a fresh tracker, swapped in on success: a rejected box leaves the track running
            rgb = frame.image()
            box = check_box(request.box, (rgb.shape[1], rgb.shape[0]), "init box")
            tracker = Tracker(self.backend, self.tracker_config)
            result = tracker.init(rgb, box)
        except Exception as exc:  # MemoryError, OverflowError... whatever a bad request raises
            reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            events.append(Event(REJECTED_INIT, reason))
            return []
        self._tracker, self._image_shape = tracker, rgb.shape
        self._track_count += 1
        self.track_id = str(self._track_count)
        self.state = TrackState.TRACKING
        on = "an unstamped frame" if frame.stamp_ns is None else f"frame {frame.stamp_ns / 1e9:.3f} s"
        rounded = tuple(round(v, 1) for v in box)
        events.append(Event(TRACK_STARTED, f"track {self.track_id}: init on {on} at {rounded}, "
                                           f"catching up {len(later)} frames"))
        output = self._output(frame, result)
        self._last_seq = max(self._last_seq, seq)
        for later_seq, later_frame in later:
            self._last_seq = max(self._last_seq, later_seq)
            caught_up = self._track(later_frame, events)
            if caught_up is not None:
                output.frame.release()
                output = caught_up
            if self.state == TrackState.IDLE:
                break
        return [output]

    def _track(self, frame: SessionFrame, events: List[Event]) -> Optional[Output]:
        """One frame: IDLE output when not tracking; None for a bad image (skipped, track kept).

        The image is converted even while IDLE, so that bad images are reported before any track.
        """
        try:
            rgb = frame.image()
        except BadImageError as exc:
            frame.release()
            events.append(Event(BAD_IMAGE, f"bad image: {exc}"))
            return None
        if self._tracker is None or self.state == TrackState.IDLE:
            return self._output(frame, None)
        if rgb.shape != self._image_shape:
            self._size_changed(rgb.shape, events)
            return self._output(frame, None)
        return self._output(frame, self._tracker.update(rgb))

    def _size_changed(self, shape: Tuple[int, ...], events: List[Event]) -> None:
        old = self._image_shape or shape
        events.append(Event(SIZE_CHANGE, f"image size changed from {old[1]}x{old[0]} to "
                                         f"{shape[1]}x{shape[0]}: track {self.track_id} ended, "
                                         "send a new init box"))
        self._stop_tracking()

    def _output(self, frame: SessionFrame, result: Optional[TrackResult]) -> Output:
        if result is None:
            return Output(frame, TrackState.IDLE, "", None, 0.0, 0.0, 0, None)
        self.state = result.state
        return Output(frame, result.state, self.track_id, tuple(result.box), float(result.confidence),
                      float(result.timings.inference_ms), int(result.frame_index), result)
