"""Offline replay: run a Tracker over a bag's frames in order, one result per frame, into sinks.

Deterministic and not real time: every frame is processed. Frames before the init frame are IDLE.
``run`` stops at the first bag error, closes every sink (so the output bag, CSV and video keep
what was processed) and returns the records with the error.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from asymtrack_ros.bag.messages import Box
from asymtrack_ros.bag.reader import BagError, Frame
from asymtrack_ros.bag.writer import TrackWriter

IDLE, TRACKING, LOST = 0, 1, 2
STATE_NAMES = {IDLE: "IDLE", TRACKING: "TRACKING", LOST: "LOST"}
GroundTruth = Dict[int, Optional[Box]]  # stamp_ns -> box, None where the target is absent


class InitError(BagError):
    """The init box does not match a frame of the bag."""


class InitSpec(NamedTuple):
    box: Box
    stamp_ns: Optional[int] = None  # None: the first frame


class TrackRecord(NamedTuple):
    index: int
    stamp_ns: int
    log_ns: int
    frame_id: str
    state: int
    box: Optional[Box]
    confidence: float
    latency_ms: float  # frame read + decode + tracking
    inference_ms: float  # search (or template) branch alone
    frames_since_init: int


class ReplayResult(NamedTuple):
    records: List[TrackRecord]
    error: Optional[Exception]
    wall_s: float


Sink = Callable[[Frame, TrackRecord], None]


def parse_init(text: str) -> InitSpec:
    """``x,y,w,h`` or ``x,y,w,h@stamp_ns`` -> InitSpec."""
    box_text, _, stamp_text = text.partition("@")
    try:
        box = tuple(float(v) for v in box_text.split(","))
        stamp = int(stamp_text) if stamp_text else None
    except ValueError:
        box, stamp = (), None
    if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"--init must be 'x,y,w,h' or 'x,y,w,h@stamp_ns' with w, h > 0, got {text!r}")
    return InitSpec(box, stamp)  # type: ignore[arg-type]


class Stepper:
    """Feeds frames to a ``Tracker``: IDLE until the init frame, then ``init`` once and ``update``."""

    def __init__(self, tracker: Any, init: InitSpec, track_id: str = "track-1"):
        self.tracker, self.init, self.track_id = tracker, init, track_id
        self.started = False
        self._previous: Optional[int] = None

    def _is_init_frame(self, frame: Frame) -> bool:
        wanted = self.init.stamp_ns
        if wanted is None or wanted == frame.stamp_ns:
            return True
        if self._previous is not None and self._previous < wanted < frame.stamp_ns:
            raise InitError(f"no frame has the init stamp {wanted} ns (frames at {self._previous} and "
                            f"{frame.stamp_ns} ns); give the stamp of the frame the box was drawn on")
        return False

    def step(self, frame: Frame, read_ms: float) -> TrackRecord:
        t0 = time.perf_counter()
        if not self.started and not self._is_init_frame(frame):
            self._previous = frame.stamp_ns
            return TrackRecord(frame.index, frame.stamp_ns, frame.log_ns, frame.frame_id, IDLE, None, 0.0,
                               read_ms, 0.0, 0)
        if self.started:
            result = self.tracker.update(frame.image)
        else:
            result = self.tracker.init(frame.image, self.init.box)
            self.started = True
        latency = read_ms + (time.perf_counter() - t0) * 1000.0
        return TrackRecord(frame.index, frame.stamp_ns, frame.log_ns, frame.frame_id, int(result.state),
                           tuple(float(v) for v in result.box), float(result.confidence), latency,
                           float(result.timings.inference_ms), int(result.frame_index))


def run(frames: Iterable[Frame], stepper: Stepper, sinks: Sequence[Sink] = (),
        closers: Sequence[Callable[[], None]] = (), progress: Optional[Callable[[TrackRecord], None]] = None
        ) -> ReplayResult:
    """Process every frame; stop at the first error (bag damage, tracker failure) and close sinks."""
    records: List[TrackRecord] = []
    error: Optional[Exception] = None
    start = time.perf_counter()
    iterator = iter(frames)
    try:
        while True:
            t0 = time.perf_counter()
            frame = next(iterator, None)
            if frame is None:
                break
            record = stepper.step(frame, (time.perf_counter() - t0) * 1000.0)
            for sink in sinks:
                sink(frame, record)
            records.append(record)
            if progress is not None:
                progress(record)
    except (BagError, ValueError, RuntimeError, OSError) as exc:
        error = exc
    finally:
        for close in closers:
            close()
    if error is None and not stepper.started and stepper.init.stamp_ns is not None:
        error = InitError(f"no frame has the init stamp {stepper.init.stamp_ns} ns")
    return ReplayResult(records, error, time.perf_counter() - start)


def bag_sink(writer: TrackWriter, track_id: str = "track-1") -> Sink:
    def write(frame: Frame, r: TrackRecord) -> None:
        writer.write(r.stamp_ns, r.log_ns, r.frame_id, r.state, r.box, r.confidence,
                     track_id if r.state != IDLE else "", r.latency_ms, r.inference_ms, r.frames_since_init)
    return write


class CsvSink:
    """``stamp_ns,x,y,w,h,confidence,state`` (state by name; empty box while IDLE), flushed per row."""

    HEADER = ("stamp_ns", "x", "y", "w", "h", "confidence", "state")

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(self.HEADER)

    def __call__(self, frame: Frame, r: TrackRecord) -> None:
        box: Tuple[str, ...] = tuple(f"{v:.2f}" for v in r.box) if r.box is not None else ("",) * 4
        self._csv.writerow((r.stamp_ns,) + box + (f"{r.confidence:.4f}", STATE_NAMES.get(r.state, r.state)))
        self._file.flush()

    def close(self) -> None:
        self._file.close()
