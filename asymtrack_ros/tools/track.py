"""asymtrack-track VIDEO --init x,y,w,h: track one target through a video or an image folder.

Writes a CSV (frame, x, y, w, h, confidence, state, state_id, total_ms), optionally an annotated
video, and prints a summary (frames, mean FPS and latency of the tracker).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from asymtrack_ros.backends.base import Backend, BackendError
from asymtrack_ros.packaged import DEMO_MODEL_NAME, find_model
from asymtrack_ros.synthetic import image_paths, read_rgb
from asymtrack_ros.tracking import Tracker, TrackerConfig, TrackResult, TrackState

BACKENDS = ("auto", "pytorch", "onnxruntime", "tensorrt")
DEMO_MODEL = Path("models") / DEMO_MODEL_NAME
USER_ERRORS = (ValueError, OSError, ImportError, BackendError)
COLOURS = {TrackState.TRACKING: (0, 255, 0), TrackState.LOST: (255, 0, 0), TrackState.IDLE: (255, 255, 0)}


class UsageError(ValueError):
    pass


def parse_box(text: str) -> Tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h (four numbers), got {text!r}")
    return values  # type: ignore[return-value]


def resolve_model(model: Optional[str]) -> str:
    """--model, else $ASYMTRACK_MODEL, else the packaged demo model."""
    path = find_model(model)
    if path is None:
        raise UsageError(f"no model given and the demo model {DEMO_MODEL} is not installed: "
                         "pass --model PATH (or set ASYMTRACK_MODEL)")
    return str(path)


def open_backend(kind: str, model: Optional[str]) -> Backend:
    path = resolve_model(model)
    from asymtrack_ros.backends import create_backend

    return create_backend(kind, path)


def open_frames(source: str) -> Tuple[Iterator[np.ndarray], Optional[int], float]:
    """(RGB frames, frame count if known, fps) of a video file or a folder of images."""
    path = Path(source)
    if path.is_dir():
        paths = image_paths(path)
        if not paths:
            raise UsageError(f"{source}: folder contains no images")
        return (read_rgb(p) for p in paths), len(paths), 30.0
    if not path.is_file():
        raise UsageError(f"{source}: no such file or folder")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UsageError(f"{source}: cannot open as a video")
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return frames(), (count if count > 0 else None), float(fps)


def annotate(frame: np.ndarray, result: TrackResult) -> np.ndarray:
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    x, y, w, h = result.box
    colour = COLOURS[result.state][::-1]
    cv2.rectangle(bgr, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))), colour, 2)
    label = f"{result.frame_index} {result.state.name} {result.confidence:.2f}"
    cv2.putText(bgr, label, (5, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return bgr


def csv_row(result: TrackResult) -> List[str]:
    return ([str(result.frame_index)] + [f"{v:.3f}" for v in result.box]
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
    p.add_argument("--init", required=True, type=parse_box, help="initial box x,y,w,h in pixels")
    p.add_argument("--model", help="model file (.pt, .pth.tar or ONNX pair); default $ASYMTRACK_MODEL "
                                    f"or {DEMO_MODEL}")
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument("--csv", help="output CSV (default: VIDEO name + _track.csv in the current folder)")
    p.add_argument("--video-out", help="write an annotated video here (.mp4 / .avi)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    add_tracker_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def add_tracker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lost-threshold", type=float, default=TrackerConfig.lost_threshold)
    p.add_argument("--recover-threshold", type=float, default=TrackerConfig.recover_threshold)
    p.add_argument("--lost-search-factor", type=float, default=None,
                   help="crop factor of the search while LOST (default: the model's)")


def tracker_config(args: argparse.Namespace) -> TrackerConfig:
    return TrackerConfig(lost_threshold=args.lost_threshold, recover_threshold=args.recover_threshold,
                         lost_search_factor=args.lost_search_factor)


def default_csv(video: str) -> Path:
    return Path(Path(video.rstrip("/\\")).stem + "_track.csv")


def run(args: argparse.Namespace) -> List[TrackResult]:
    from tqdm import tqdm

    config = tracker_config(args)
    frames, count, fps = open_frames(args.video)
    if args.max_frames is not None:
        count = min(count, args.max_frames) if count else args.max_frames
    backend = open_backend(args.backend, args.model)
    writer = None
    results: List[TrackResult] = []
    csv_path = Path(args.csv) if args.csv else default_csv(args.video)
    try:
        tracker = Tracker(backend, config)
        with open(csv_path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(CSV_HEADER)
            for i, frame in enumerate(tqdm(frames, total=count, disable=args.quiet, unit="frame")):
                if args.max_frames is not None and i >= args.max_frames:
                    break
                result = tracker.init(frame, args.init) if i == 0 else tracker.update(frame)
                results.append(result)
                out.writerow(csv_row(result))
                if args.video_out:
                    writer = writer or open_writer(args.video_out, frame.shape, fps)
                    writer.write(annotate(frame, result))
    finally:
        backend.close()
        if writer is not None:
            writer.release()
    if not results:
        raise UsageError(f"{args.video}: no frames")
    print(f"wrote {csv_path}" + (f" and {args.video_out}" if args.video_out else ""))
    return results


def open_writer(path: str, shape: Tuple[int, ...], fps: float) -> cv2.VideoWriter:
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.lower().endswith(".avi") else "mp4v"))
    writer = cv2.VideoWriter(path, fourcc, fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise UsageError(f"cannot write video {path}")
    return writer


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        results = run(args)
    except USER_ERRORS as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
