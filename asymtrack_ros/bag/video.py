"""Annotated frames for people: an MP4 (AVI if OpenCV has no mp4v encoder) and a PNG image strip."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from asymtrack_ros.tracking.state import TrackState

STATE_COLOURS = {TrackState.IDLE: (160, 160, 160), TrackState.TRACKING: (40, 220, 40),
                 TrackState.LOST: (255, 140, 0)}  # RGB
GT_COLOUR = (255, 255, 255)


def _rect(image: np.ndarray, box: Sequence[float], colour: Tuple[int, int, int], thickness: int) -> None:
    x, y, w, h = (float(v) for v in box)
    cv2.rectangle(image, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))), colour,
                  thickness, cv2.LINE_AA)


def _label(image: np.ndarray, text: str, row: int, colour: Tuple[int, int, int] = (255, 255, 255)) -> None:
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    top = 2 + (h + base + 4) * row
    cv2.rectangle(image, (0, top), (w + 6, top + h + base + 4), (0, 0, 0), -1)
    cv2.putText(image, text, (3, top + h + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)


def annotate(image: np.ndarray, index: int, state: int, box: Optional[Sequence[float]], confidence: float,
             gt: Optional[Sequence[float]] = None, iou: Optional[float] = None) -> np.ndarray:
    """A copy of the RGB ``image`` with the ground truth (white, thin), the track and a caption."""
    out = np.ascontiguousarray(image).copy()
    if gt is not None:
        _rect(out, gt, GT_COLOUR, 1)
    if box is not None and state != TrackState.IDLE:
        _rect(out, box, STATE_COLOURS.get(state, (255, 0, 0)), 2)
    colour = STATE_COLOURS.get(state, (255, 255, 255))
    _label(out, f"#{index} {TrackState(state).name} conf {confidence:.2f}", 0, colour)
    if gt is not None or iou is not None:
        _label(out, "truth: white" + (f"  IoU {iou:.2f}" if iou is not None else ""), 1)
    return out


class VideoSink:
    """Writes RGB frames to ``path`` (.mp4 with mp4v; falls back to .avi with MJPG)."""

    def __init__(self, path: Union[str, Path], fps: float = 30.0):
        self.requested = Path(path)
        self.path: Optional[Path] = None
        self.fps = fps
        self._writer: Optional[cv2.VideoWriter] = None

    def _open(self, size: Tuple[int, int]) -> None:
        self.requested.parent.mkdir(parents=True, exist_ok=True)
        for path, codec in ((self.requested, "mp4v"), (self.requested.with_suffix(".avi"), "MJPG")):
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), self.fps, size)
            if writer.isOpened():
                self._writer, self.path = writer, path
                return
            writer.release()
        raise OSError(f"OpenCV cannot write video to {self.requested} (no mp4v or MJPG encoder)")

    def add(self, image: np.ndarray) -> None:
        if self._writer is None:
            self._open((image.shape[1], image.shape[0]))
        self._writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class StripSink:
    """Keeps a bounded, evenly spaced subset of frames; ``save`` writes ``count`` of them as a grid."""

    def __init__(self, count: int = 6, columns: int = 3, keep: int = 64, width: int = 320):
        self.count, self.columns, self.keep, self.width = count, columns, keep, width
        self._frames: List[np.ndarray] = []
        self._stride, self._seen = 1, 0

    def add(self, image: np.ndarray) -> None:
        if self._seen % self._stride == 0:
            scale = min(1.0, self.width / image.shape[1])
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) \
                if scale < 1.0 else image.copy()
            self._frames.append(small)
            if len(self._frames) >= self.keep:
                self._frames, self._stride = self._frames[::2], self._stride * 2
        self._seen += 1

    def save(self, path: Union[str, Path]) -> Optional[Path]:
        if not self._frames:
            return None
        picks = np.linspace(0, len(self._frames) - 1, min(self.count, len(self._frames))).round().astype(int)
        tiles = [self._frames[i] for i in picks]
        h, w = tiles[0].shape[:2]
        tiles = [cv2.resize(t, (w, h)) for t in tiles]
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % self.columns)
        rows = [np.hstack(tiles[i:i + self.columns]) for i in range(0, len(tiles), self.columns)]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {out}")
        return out


class Annotator:
    """Sink for ``replay.run``: draws each frame's record (and ground truth) into a video and a strip."""

    def __init__(self, video: Optional[VideoSink], strip: Optional[StripSink],
                 gt: Optional[Dict[int, Optional[Sequence[float]]]] = None):
        self.video, self.strip, self.gt = video, strip, gt or {}

    def __call__(self, frame: Any, record: Any) -> None:
        from asymtrack_ros.evaluation import iou

        truth = self.gt.get(record.stamp_ns)
        score = None
        if truth is not None and record.box is not None and record.state != TrackState.IDLE:
            score = float(iou(np.array(record.box), np.array(truth))[0])
        image = annotate(frame.image, record.index, record.state, record.box, record.confidence, truth, score)
        if self.video is not None:
            self.video.add(image)
        if self.strip is not None and record.state != TrackState.IDLE:
            self.strip.add(image)
