"""asymtrack-track VIDEO --init x,y,w,h: track one target through a video or an image folder.

Writes a CSV (frame, x, y, w, h, confidence, state, state_id, total_ms), optionally an annotated
video, and prints a summary (frames, mean FPS and latency of the tracker).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import sys
from pathlib import Path
from typing import Any, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from asymtrack_ros.bag import video
from asymtrack_ros.cli import (
    USER_ERRORS,
    UsageError,
    add_model_arguments,
    add_tracker_arguments,
    open_backend_from_args,
    tracker_config,
)
from asymtrack_ros.synthetic import image_paths
from asymtrack_ros.tracking import TrackResult, TrackState
from asymtrack_ros.tracking.offline import OfflineSession, OfflineTrackError


def parse_box(text: str) -> Tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h (four numbers), got {text!r}")
    return values  # type: ignore[return-value]


class Frame(NamedTuple):
    index: int  # position in the input (0 = its first frame)
    name: str  # file name, or "frame N" of a video
    image: Optional[np.ndarray]  # HxWx3 RGB; None: cannot be decoded
    problem: str  # why the frame is damaged; "" when intact


class Frames(NamedTuple):
    frames: Iterator[Frame]
    count: Optional[int]  # frames from the start frame on, as the folder or the video header says
    fps: float


def image_damage(data: bytes) -> str:
    """Why an encoded JPEG or PNG is incomplete ("" if it looks whole): its end marker is missing."""
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9"):
        return "truncated JPEG (no end-of-image marker FFD9)"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-12:]:
        return "truncated PNG (no IEND chunk)"
    return ""


def read_image(path: Path, index: int) -> Frame:
    data = path.read_bytes()
    problem = image_damage(data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        return Frame(index, path.name, None, problem or "cannot be decoded")
    return Frame(index, path.name, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), problem)


def open_frames(source: str, start: int = 0) -> Frames:
    """The frames of a video file or a folder of images, from frame ``start`` on."""
    path = Path(source)
    if path.is_dir():
        paths = image_paths(path)
        if not paths:
            raise UsageError(f"{source}: folder contains no images")
        if start >= len(paths):
            raise UsageError(f"--start-frame {start}: {source} has {len(paths)} images (0-{len(paths) - 1})")
        return Frames((read_image(p, i) for i, p in enumerate(paths) if i >= start), len(paths) - start, 30.0)
    if not path.is_file():
        raise UsageError(f"{source}: no such file or folder")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UsageError(f"{source}: cannot open as a video")
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    for skipped in range(start):
        if not capture.grab():
            capture.release()
            raise UsageError(f"--start-frame {start}: {source} ends after {skipped} frames")
    return Frames(_video_frames(capture, start), (count - start if count > start else None), float(fps))


def _video_frames(capture: cv2.VideoCapture, start: int) -> Iterator[Frame]:
    try:
        index = start
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield Frame(index, f"frame {index}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), "")
            index += 1
    finally:
        capture.release()


def annotate(frame: np.ndarray, result: TrackResult) -> np.ndarray:
    """The frame (BGR, for the video writer) with the box and a caption, as the replay draws them."""
    rgb = video.annotate(frame, result.frame_index, result.state, result.box, result.confidence)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def csv_row(result: TrackResult, frame: Optional[int] = None) -> List[str]:
    """``frame``: the input frame number (default: frames since init)."""
    index = result.frame_index if frame is None else frame
    return ([str(index)] + [f"{v:.3f}" for v in result.box]
            + [f"{result.confidence:.4f}", result.state.name, str(int(result.state)),
               f"{result.timings.total_ms:.3f}"])


CSV_HEADER = ["frame", "x", "y", "w", "h", "confidence", "state", "state_id", "total_ms"]


def summary(results: Sequence[TrackResult]) -> str:
    updates = [r for r in results if r.frame_index > 0]
    if not updates:
        return f"frames: {len(results)} (no update after the first frame)"
    total = np.array([r.timings.total_ms for r in updates])
    infer = np.array([r.timings.inference_ms for r in updates])
    lost = sum(r.state == TrackState.LOST for r in updates)
    return (f"frames: {len(results)}, mean FPS: {1000.0 / total.mean():.1f}, "
            f"mean latency: {total.mean():.2f} ms (inference {infer.mean():.2f} ms), "
            f"frames LOST: {lost}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asymtrack-track", description=__doc__.splitlines()[0])
    p.add_argument("video", help="video file (anything cv2.VideoCapture reads) or a folder of images")
    p.add_argument("--init", required=True, type=parse_box,
                   help="initial box x,y,w,h in pixels, drawn on the start frame")
    p.add_argument("--start-frame", type=int, default=0, metavar="N",
                   help="take the template on input frame N (0-based; for a target that appears later): "
                        "frames before it are skipped, not tracked and not written; the CSV's frame "
                        "column keeps the input's numbering")
    add_model_arguments(p)
    p.add_argument("--csv", help="output CSV (default: VIDEO name + _track.csv in the current folder)")
    p.add_argument("--video-out", help="write an annotated video here (.mp4: mp4v, .avi: MJPG); checked "
                                       "before tracking starts")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames (from the start "
                                                                  "frame)")
    add_tracker_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def default_csv(video: str) -> Path:
    return Path(Path(video.rstrip("/\\")).stem + "_track.csv")


def warn(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"asymtrack-track: warning: {message}", file=sys.stderr)


def first_frame(frames: Iterator[Frame], source: str) -> Frame:
    first = next(frames, None)
    if first is None:
        raise UsageError(f"{source}: no frames")
    if first.image is None or first.problem:
        raise UsageError(f"{source}: the start frame {first.index} ({first.name}) is damaged "
                         f"({first.problem}); the template cannot be taken from it: fix it or pass another "
                         "--start-frame")
    return first


def run(args: argparse.Namespace) -> List[TrackResult]:
    """Track every frame from the start frame; damaged frames are skipped with a warning naming them."""
    from tqdm import tqdm

    if args.start_frame < 0:
        raise UsageError(f"--start-frame must be >= 0, got {args.start_frame}")
    config = tracker_config(args)
    source = open_frames(args.video, args.start_frame)
    frames = iter(source.frames)
    first = first_frame(frames, args.video)
    total = source.count if args.max_frames is None else min(source.count or args.max_frames, args.max_frames)
    csv_path = Path(args.csv) if args.csv else default_csv(args.video)
    results: List[TrackResult] = []
    skipped: List[int] = []
    with contextlib.ExitStack() as stack:
        writer = open_writer(args.video_out, first.image.shape, source.fps) if args.video_out else None
        if writer is not None:
            stack.callback(writer.release)
        out = csv.writer(stack.enter_context(open(csv_path, "w", newline="")))
        out.writerow(CSV_HEADER)
        backend = open_backend_from_args(args)
        stack.callback(backend.close)
        session = OfflineSession(backend, config)
        bar = stack.enter_context(tqdm(total=total, disable=args.quiet, unit="frame"))
        read = 0
        for frame in itertools.chain([first], frames):
            if args.max_frames is not None and read >= args.max_frames:
                break
            read += 1
            bar.update(1)
            if frame.image is None or frame.problem:
                warn(f"frame {frame.index} ({frame.name}): {frame.problem}; skipped, not tracked")
                skipped.append(frame.index)
                continue
            try:
                output = session.update(frame.image) if results else session.init(frame.image, args.init)
            except OfflineTrackError as exc:
                raise UsageError(f"frame {frame.index} ({frame.name}): {exc}") from None
            result = output.result
            results.append(result)
            out.writerow(csv_row(result, frame.index))
            if writer is not None:
                writer.write(annotate(frame.image, result))
        finish_count(bar, read, source.count, args)
    if skipped:
        warn(f"skipped {len(skipped)} damaged frame(s): {', '.join(map(str, skipped))}")
    print(f"wrote {csv_path}" + (f" and {args.video_out}" if args.video_out else ""))
    return results


def finish_count(bar: Any, read: int, announced: Optional[int], args: argparse.Namespace) -> None:
    """End the bar at the frames really read; say so when a video announced more than it holds."""
    if announced is not None and read < announced and (args.max_frames is None or read < args.max_frames):
        warn(f"{args.video}: {read} frames read from the start frame on, the file announced {announced} "
             "(it is truncated, or its header misreports the count)")
    if not bar.disable and bar.total != read:
        bar.total = read
        bar.refresh()


VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


def open_writer(path: str, shape: Tuple[int, ...], fps: float) -> cv2.VideoWriter:
    """An annotated-video writer; a bad path, extension or codec is a UsageError (before tracking)."""
    target = Path(path)
    codec = VIDEO_CODECS.get(target.suffix.lower())
    if codec is None:
        raise UsageError(f"--video-out {path}: unknown video extension {target.suffix!r}; use "
                         + " or ".join(f"{ext} ({c})" for ext, c in VIDEO_CODECS.items()))
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"--video-out {path}: folder {folder} does not exist")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*codec), fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise UsageError(f"--video-out {path}: OpenCV cannot write it (is {folder} writable? is its {codec} "
                         "encoder available here? .avi with MJPG always is)")
    return writer


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        results = run(args)
    except USER_ERRORS as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    if not results:
        print(f"{parser.prog}: error: {args.video}: no frame could be tracked", file=sys.stderr)
        return 2
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
