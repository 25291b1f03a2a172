"""Real-video benchmark: OTB-layout sequences, the split manifest, and trackers run one pass.

A prepared folder holds ``<name>/img/0001.jpg ...`` and ``<name>/groundtruth_rect.txt``
(``x,y,w,h`` per frame, NaN rows where the target is absent). ``data/real/sequences.json`` says
which sequences are ``train`` and which ``heldout``. A runner tracks one sequence from its first
box without resets and records boxes, states, confidences and the time of each update (image
decoding excluded). No torch here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

import cv2
import numpy as np

from asymtrack_ros.backends.base import Backend
from asymtrack_ros.evaluation import LostStats, SequenceScore, lost_statistics, score_sequence
from asymtrack_ros.synthetic import LazyFrames, image_paths, read_boxes, read_got10k
from asymtrack_ros.synthetic import Sequence as Seq
from asymtrack_ros.tracking import FEATURES, TrackerConfig, TrackState
from asymtrack_ros.tracking.offline import OfflineSession

PathLike = Union[str, Path]
GROUND_TRUTH = "groundtruth_rect.txt"
GOT10K_GROUND_TRUTH = "groundtruth.txt"
SPLITS = ("heldout", "train", "all")
MANIFEST = Path("data") / "real" / "sequences.json"  # the real sequences and their split


def read_otb(folder: PathLike) -> Seq:
    """An OTB-layout sequence (frames decoded lazily); NaN ground-truth rows are not visible.

    A GOT-10k folder (``groundtruth.txt``, ``absence.label``: asymtrack-synth writes them) is read
    too.
    """
    root = Path(folder)
    gt_file = root / GROUND_TRUTH
    if not gt_file.is_file() and (root / GOT10K_GROUND_TRUTH).is_file():
        return read_got10k(root, lazy=True)
    if not gt_file.is_file():
        raise FileNotFoundError(f"{root} has no {GROUND_TRUTH} (not an OTB-layout sequence folder)")
    images = root / "img" if (root / "img").is_dir() else root
    paths = image_paths(images)
    boxes = read_boxes(gt_file)
    if len(paths) != len(boxes):
        raise ValueError(f"{root}: {len(paths)} images but {len(boxes)} ground-truth rows")
    if len(boxes) == 0 or not np.all(np.isfinite(boxes[0])):
        raise ValueError(f"{root}: the first ground-truth row must be a box (it initialises the tracker)")
    visible = np.all(np.isfinite(boxes), axis=1)
    return Seq(frames=LazyFrames(paths), boxes=boxes, visible=visible, name=root.name)


def default_manifest() -> Optional[Path]:
    """``MANIFEST`` under the current folder, else under the installed share folders; None if neither."""
    from asymtrack_ros.packaged import share_dirs

    for folder in [Path.cwd()] + share_dirs():
        if (folder / MANIFEST).is_file():
            return folder / MANIFEST
    return None


def split_names(manifest: PathLike, split: str) -> List[str]:
    """Sequence names of ``split`` (heldout / train / all) in the manifest, in its order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    entries = json.loads(Path(manifest).read_text())["sequences"]
    return [e["name"] for e in entries if split == "all" or e.get("split") == split]


def find_otb(root: PathLike, names: Optional[Sequence[str]] = None) -> List[Path]:
    """Sequence folders under ``root`` (those of ``names`` if given; a missing one is an error)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    if names is None:
        found = sorted(p for p in root.iterdir() if _is_sequence(p))
        if not found:
            raise ValueError(f"{root}: no OTB-layout sequence (folder with {GROUND_TRUTH}) found")
        return found
    missing = [n for n in names if not _is_sequence(root / n)]
    if missing:
        raise ValueError(f"{root}: missing sequences {missing}")
    return [root / n for n in names]


def _is_sequence(folder: Path) -> bool:
    return (folder / GROUND_TRUTH).is_file() or (folder / GOT10K_GROUND_TRUTH).is_file()


class Run(NamedTuple):
    """One tracker's pass over one sequence."""

    name: str
    boxes: np.ndarray  # (N, 4) reported boxes
    lost: np.ndarray  # (N,) bool, reported LOST
    confidences: np.ndarray  # (N,)
    seconds: np.ndarray  # (N-1,) time of each update
    features: Optional[np.ndarray] = None  # (N, F) calibration features of the raw box (ours only)
    raw_boxes: Optional[np.ndarray] = None  # (N, 4) this frame's network box (ours only)


class AsymTrackRunner:
    """Our tracker over a backend (which the caller owns), through a tracking session as the node
    runs it; the raw per-frame results (network box, calibration features) are kept too."""

    def __init__(self, backend: Backend, config: Optional[TrackerConfig] = None):
        self.session = OfflineSession(backend, config)

    def run(self, seq: Seq) -> Run:
        n = len(seq.frames)
        boxes, raw, lost = np.zeros((n, 4)), np.zeros((n, 4)), np.zeros(n, bool)
        conf, seconds = np.ones(n), np.zeros(max(n - 1, 0))
        features: List[np.ndarray] = []
        for i, frame in enumerate(seq.frames):
            if i == 0:
                r = self.session.init(frame, seq.boxes[0]).result
            else:
                t0 = time.perf_counter()
                r = self.session.update(frame).result
                seconds[i - 1] = time.perf_counter() - t0
            boxes[i], raw[i], lost[i], conf[i] = r.box, r.raw_box, r.state == TrackState.LOST, r.confidence
            features.append(np.full(len(FEATURES), np.nan) if r.features is None else np.asarray(r.features))
        return Run(seq.name, boxes, lost, conf, seconds, np.stack(features), raw)


class NanoTrackRunner:
    """NanoTrack through OpenCV's ``cv2.TrackerNano`` (comparison only; files from the user)."""

    def __init__(self, folder: PathLike):
        folder = Path(folder)
        backbone = sorted(folder.glob("*backbone*.onnx"))
        head = sorted(folder.glob("*head*.onnx"))
        if len(backbone) != 1 or len(head) != 1:
            raise ValueError(f"{folder}: expected one *backbone*.onnx and one *head*.onnx, found "
                             f"{[p.name for p in backbone + head]}")
        if not hasattr(cv2, "TrackerNano"):
            raise ImportError("this OpenCV has no cv2.TrackerNano (OpenCV >= 4.6 with the dnn module)")
        self.params = cv2.TrackerNano_Params()
        self.params.backbone, self.params.neckhead = str(backbone[0]), str(head[0])

    def run(self, seq: Seq) -> Run:
        tracker = cv2.TrackerNano_create(self.params)
        n = len(seq.frames)
        boxes, lost = np.zeros((n, 4)), np.zeros(n, bool)
        conf, seconds = np.ones(n), np.zeros(max(n - 1, 0))
        for i, frame in enumerate(seq.frames):
            bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            if i == 0:
                x, y, w, h = (int(round(v)) for v in seq.boxes[0])
                tracker.init(bgr, (x, y, max(w, 1), max(h, 1)))
                boxes[0] = seq.boxes[0]
                continue
            t0 = time.perf_counter()
            ok, rect = tracker.update(bgr)
            seconds[i - 1] = time.perf_counter() - t0
            boxes[i] = rect if ok else boxes[i - 1]
            lost[i], conf[i] = not ok, float(tracker.getTrackingScore())
        return Run(seq.name, boxes, lost, conf, seconds)


class Scored(NamedTuple):
    run: Run
    score: SequenceScore
    lost: LostStats


def score_run(run: Run, seq: Seq) -> Scored:
    """AUC / precision of the reported boxes; LOST agreement of the tracker's own estimate.

    While LOST our tracker reports the last confident box, which stays on a target that does
    not move; whether LOST was right is judged on this frame's network box (``raw_boxes``)
    instead: LOST while that box is on the target is a missed recovery.
    """
    estimate = run.raw_boxes if run.raw_boxes is not None else run.boxes
    return Scored(run, score_sequence(run.boxes, seq.boxes, seq.visible, seq.name),
                  lost_statistics(estimate, seq.boxes, seq.visible, run.lost))


def run_all(runner: object, folders: Sequence[Path], progress: bool = False) -> List[Scored]:
    """``runner.run`` over each sequence folder, scored."""
    from tqdm import tqdm

    out = []
    for folder in tqdm(folders, disable=not progress, unit="seq", leave=False):
        seq = read_otb(folder)
        out.append(score_run(runner.run(seq), seq))  # type: ignore[attr-defined]
    return out


def fps(scored: Sequence[Scored]) -> float:
    seconds = np.concatenate([s.run.seconds for s in scored]) if scored else np.zeros(0)
    return float(len(seconds) / seconds.sum()) if seconds.size and seconds.sum() > 0 else float("nan")


def pooled_lost(scored: Sequence[Scored]) -> LostStats:
    total = LostStats(0, 0, 0, 0)
    for s in scored:
        total = total + s.lost
    return total


def as_dict(scored: Sequence[Scored]) -> Dict[str, object]:
    from asymtrack_ros.evaluation import precision, success_auc, summarise

    lost = pooled_lost(scored)
    return {"summary": dict(summarise([s.score for s in scored]), fps=fps(scored), **lost._asdict(),
                            lost_share=lost.lost_share, tracking_share=lost.tracking_share),
            "sequences": {s.score.name: dict(frames=s.score.frames, auc=success_auc(s.score.ious),
                                             precision20=precision(s.score.errors), fps=fps([s]),
                                             **s.lost._asdict()) for s in scored}}
