"""Offline replay: track through a bag's frames in order, one record per frame, into sinks.

Deterministic and not real time: every frame is processed, through a ``TrackSession`` (the
tracking core the node runs too). Frames before the init frame are IDLE. ``run`` stops at the
first bag error, closes every sink (so the output bag, CSV and video keep what was processed)
and returns the records with the error. ``replay_bag`` wires a bag reader to the outputs (an
output bag, a CSV, a video, an image strip) and summarises the run.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from asymtrack_ros.backends.base import Backend
from asymtrack_ros.bag.messages import Box
from asymtrack_ros.bag.reader import BagError, BagReader, Frame, TopicError
from asymtrack_ros.bag.report import GroundTruth, Summary, TrackRecord, summarise
from asymtrack_ros.bag.types import BOX_TYPES, IMAGE_TYPES
from asymtrack_ros.bag.video import Annotator, StripSink, VideoSink
from asymtrack_ros.bag.writer import BagWriter, TrackWriter
from asymtrack_ros.tracking.offline import OfflineSession
from asymtrack_ros.tracking.session import Output
from asymtrack_ros.tracking.state import TrackerConfig, TrackState

GT_TOPIC = "/ground_truth"


class InitError(BagError):
    """The init box does not match a frame of the bag."""


class InitSpec(NamedTuple):
    box: Box
    stamp_ns: Optional[int] = None  # None: the first frame


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
    """Feeds a bag's frames to a tracking session: IDLE until the init frame, then tracked.

    Every frame is processed once, in bag order, whatever its stamp (a bag may repeat stamps):
    the init box is taken on the frame whose stamp is exactly the init stamp (default: the first
    frame); passing that stamp without meeting it is an ``InitError``.
    """

    def __init__(self, backend: Backend, init: InitSpec, tracker_config: Optional[TrackerConfig] = None):
        self.session = OfflineSession(backend, tracker_config)
        self.init = init
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
        if self.started:
            output = self.session.update(frame.image, frame)
        elif self._is_init_frame(frame):
            output = self.session.init(frame.image, self.init.box, frame)
            self.started = True
        else:
            self._previous = frame.stamp_ns
            return record_of(frame, self.session.update(frame.image, frame), read_ms)
        return record_of(frame, output, read_ms + (time.perf_counter() - t0) * 1000.0)


def record_of(frame: Frame, output: Output, latency_ms: float) -> TrackRecord:
    box = tuple(float(v) for v in output.box) if output.box is not None else None
    return TrackRecord(frame.index, frame.stamp_ns, frame.log_ns, frame.frame_id, output.state, box,
                       output.confidence, latency_ms, output.inference_ms, output.frames_since_init,
                       output.track_id)


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


def bag_sink(writer: TrackWriter) -> Sink:
    """Writes each record as the node would publish it, with the session's track id."""
    def write(frame: Frame, r: TrackRecord) -> None:
        writer.write(r.stamp_ns, r.log_ns, r.frame_id, r.state, r.box, r.confidence,
                     r.track_id, r.latency_ms, r.inference_ms,
                     r.frames_since_init)
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
        self._csv.writerow((r.stamp_ns,) + box + (f"{r.confidence:.4f}", TrackState(r.state).name))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# ---------------------------------------------------------------------- a bag in, outputs out
class Outputs(NamedTuple):
    bag: Optional[Path] = None
    csv: Optional[Path] = None
    video: Optional[str] = None
    strip: Optional[str] = None
    storage: str = "mcap"
    overwrite: bool = False
    tracks_topic: str = "/tracks"
    status_topic: str = "/track_status"


class RunReport(NamedTuple):
    result: ReplayResult
    summary: Summary
    written: Dict[str, Path]


def pick_image_topic(reader: BagReader, topic: Optional[str]) -> str:
    """``topic``, else the bag's only image topic."""
    if topic:
        return topic
    topics = sorted(reader.image_topics())
    if not topics and reader.damage:
        raise TopicError(f"{reader.path} is truncated or damaged and no image topic survives in its intact "
                         f"part ({reader.damage}): nothing to replay")
    if len(topics) != 1:
        found = ", ".join(topics) if topics else "none"
        raise TopicError(f"pass --image-topic (image topics in {reader.path}: {found})")
    return topics[0]


def init_from_topic(reader: BagReader, topic: str) -> InitSpec:
    """The first box of a Detection2D (or Detection2DArray) topic, with its stamp."""
    for stamped in reader.boxes(topic):
        if stamped.box is not None:
            return InitSpec(stamped.box, stamped.stamp_ns)
    raise TopicError(f"{topic} holds no box to initialise from")


def ground_truth(reader: BagReader, topic: Optional[str]) -> Optional[GroundTruth]:
    """Stamp -> box (None where the target is absent); what is readable of a damaged bag."""
    if topic is None:
        if reader.topics.get(GT_TOPIC) not in BOX_TYPES:
            return None
        topic = GT_TOPIC
    gt: GroundTruth = {}
    try:
        for stamped in reader.boxes(topic):
            gt[stamped.stamp_ns] = stamped.box
    except BagError as exc:
        if not gt or isinstance(exc, TopicError):
            raise
    return gt


def default_out(bag: Path) -> Path:
    base = bag.with_suffix("") if bag.is_file() else bag
    return base.parent / f"{base.name}_tracks"


def _progress(total: Optional[int], enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True)


class _Sinks(NamedTuple):
    sinks: List[Sink]
    closers: List[Callable[[], None]]
    written: Dict[str, Path]
    video: Optional[VideoSink]
    strip: Optional[StripSink]


def _open_sinks(outputs: Outputs, gt: Optional[GroundTruth]) -> _Sinks:
    opened = _Sinks([], [], {}, VideoSink(outputs.video) if outputs.video else None,
                    StripSink() if outputs.strip else None)
    try:
        if outputs.bag is not None:
            bag = BagWriter(outputs.bag, outputs.storage, outputs.overwrite)
            opened.closers.append(bag.close)
            opened.sinks.append(bag_sink(TrackWriter(bag, outputs.tracks_topic, outputs.status_topic)))
            opened.written["bag"] = outputs.bag
        if outputs.csv is not None:
            csv_sink = CsvSink(outputs.csv)
            opened.closers.append(csv_sink.close)
            opened.sinks.append(csv_sink)
            opened.written["csv"] = outputs.csv
        if opened.video is not None or opened.strip is not None:
            opened.sinks.append(Annotator(opened.video, opened.strip, gt))
            if opened.video is not None:
                opened.closers.append(opened.video.close)
    except BaseException:
        for close in opened.closers:
            close()
        raise
    return opened


def replay_bag(reader: BagReader, image_topic: str, init: InitSpec, backend: Backend, outputs: Outputs,
               gt: Optional[GroundTruth] = None, progress: bool = False,
               tracker_config: Optional[TrackerConfig] = None) -> RunReport:
    """Track through ``image_topic`` into ``outputs``; the outputs keep what was done on an error."""
    reader.check_topic(image_topic, IMAGE_TYPES, "image")
    opened = _open_sinks(outputs, gt)
    bar = _progress(reader.count(image_topic), progress)
    result = run(reader.frames(image_topic), Stepper(backend, init, tracker_config), opened.sinks,
                 opened.closers, (lambda r: bar.update(1)) if bar is not None else None)
    if bar is not None:
        bar.close()
    written = dict(opened.written)
    if opened.video is not None and opened.video.path is not None:
        written["video"] = opened.video.path
    if opened.strip is not None:
        saved = opened.strip.save(outputs.strip)  # type: ignore[arg-type]
        if saved is not None:
            written["strip"] = saved
    return RunReport(result, summarise(result.records, gt, result.wall_s), written)
