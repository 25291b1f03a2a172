"""Fit the tracker's confidence and LOST/TRACKING thresholds on real sequences; store them.

1. ``log_frames``: run the tracker (corner confidence, so that the states do not depend on the
   weights being fitted) over train-split sequences; per frame keep the raw box's features
   (calibration.FEATURES), its IoU with the ground truth and whether the target is present.
   With ``frame_steps`` (1, 2, 3) each sequence is also tracked at every 2nd and 3rd frame: a
   model rarely loses the target on the videos it was trained on, and faster motion gives the fit
   failures of more kinds, as on videos it has never seen.
2. ``fit_logistic``: L2-regularised logistic regression (Newton steps, numpy only) of
   "on target" (IoU >= 0.5) against "off target" (IoU < 0.1 or target absent), classes weighted
   equally; frames in between are left out.
3. ``choose_thresholds``: replay the LOST/TRACKING hysteresis on the logged confidences for a
   grid of (lost, recover <= 0.8) pairs and take the pair with the largest sum of the LOST
   share of off-target frames and the TRACKING share of on-target frames among those keeping at
   least ``min_tracking`` of the on-target frames TRACKING.
4. ``write_calibration``: into the deploy ``.pt`` (its ``info``) and both ONNX files (the
   ``asymtrack_info`` metadata), which must stay equal for the pair to load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from asymtrack_ros.evaluation import OFF_TARGET_IOU, ON_TARGET_IOU, iou
from asymtrack_ros.synthetic import LazyFrames
from asymtrack_ros.synthetic import Sequence as Seq
from asymtrack_ros.tracking import FEATURES, Calibration, TrackerConfig

PathLike = Union[str, Path]


class FrameLog(NamedTuple):
    """Per-frame logs of several runs, concatenated; ``starts`` marks each run's first row.

    A run is one sequence (``sequence``: its index among the folders logged) tracked at every
    ``frame_step``-th frame. Logs written before these two fields load as one run per sequence
    at every frame.
    """

    features: np.ndarray  # (N, F)
    iou: np.ndarray  # (N,) raw box vs ground truth (0 where absent)
    present: np.ndarray  # (N,) bool
    starts: np.ndarray  # (N,) bool
    raw_boxes: np.ndarray  # (N, 4)
    gt: np.ndarray  # (N, 4)
    sequence: Optional[np.ndarray] = None  # (N,) int
    frame_step: Optional[np.ndarray] = None  # (N,) int

    def complete(self) -> FrameLog:
        """This log with ``sequence`` and ``frame_step`` filled in where they are missing."""
        sequence = np.cumsum(self.starts) - 1 if self.sequence is None else self.sequence
        step = np.ones(len(self.iou), int) if self.frame_step is None else self.frame_step
        return self._replace(sequence=sequence, frame_step=step)

    def select(self, mask: np.ndarray) -> FrameLog:
        """The rows of ``mask`` (whole runs, so that ``starts`` stays right)."""
        return FrameLog(*(None if v is None else v[mask] for v in self))

    def save(self, path: PathLike) -> None:
        np.savez_compressed(path, **self.complete()._asdict())

    @classmethod
    def load(cls, path: PathLike) -> FrameLog:
        with np.load(path) as data:
            return cls(**{k: data[k] for k in cls._fields if k in data.files}).complete()


def every_kth_frame(seq: Seq, step: int) -> Seq:
    """The sequence at 1/step of its frame rate (frames 0, step, 2*step, ...)."""
    if step == 1:
        return seq
    frames = seq.frames
    sub = LazyFrames(frames.paths[::step]) if isinstance(frames, LazyFrames) else list(frames)[::step]
    return Seq(frames=sub, boxes=seq.boxes[::step], visible=seq.visible[::step], name=f"{seq.name}@{step}")


def log_frames(backend: object, folders: Sequence[Path], config: TrackerConfig,
               progress: bool = False, frame_steps: Sequence[int] = (1,)) -> FrameLog:
    """Track each sequence at each frame step (frames after the first are logged)."""
    from tqdm import tqdm

    from asymtrack_ros.benchmark import AsymTrackRunner, read_otb

    if not frame_steps or min(frame_steps) < 1:
        raise ValueError(f"frame steps must be >= 1, got {list(frame_steps)}")
    runner = AsymTrackRunner(backend, config)  # type: ignore[arg-type]
    parts: Dict[str, List[np.ndarray]] = {k: [] for k in FrameLog._fields}
    runs = [(index, folder, step) for step in frame_steps for index, folder in enumerate(folders)]
    for index, folder, step in tqdm(runs, disable=not progress, unit="seq", leave=False):
        seq = every_kth_frame(read_otb(folder), step)
        if len(seq) < 2:
            continue
        run = runner.run(seq)
        gt, raw = seq.boxes[1:], run.raw_boxes[1:]
        present = np.asarray(seq.visible[1:], bool) & np.all(np.isfinite(gt), axis=1)
        overlap = np.where(present, iou(raw, np.where(np.isfinite(gt), gt, 0.0)), 0.0)
        starts = np.zeros(len(gt), bool)
        starts[:1] = True
        rows = (run.features[1:], overlap, present, starts, raw, gt,
                np.full(len(gt), index), np.full(len(gt), step))
        for key, value in zip(FrameLog._fields, rows):
            parts[key].append(value)
    return FrameLog(*(np.concatenate(parts[k]) for k in FrameLog._fields))


def labels(log: FrameLog) -> Tuple[np.ndarray, np.ndarray]:
    """(mask of the frames used, 1 = on target / 0 = off target)."""
    on = log.present & (log.iou >= ON_TARGET_IOU)
    off = (~log.present) | (log.iou < OFF_TARGET_IOU)
    return on | off, on.astype(np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2,
                 iterations: int = 50) -> Tuple[np.ndarray, float]:
    """(weights, bias) on the raw features; classes weighted equally; features standardised inside."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    positives = max(float(y.sum()), 1.0)
    negatives = max(float(len(y) - y.sum()), 1.0)
    sample = np.where(y > 0.5, 0.5 / positives, 0.5 / negatives)
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0
    theta = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ theta, -50, 50)))
        gradient = z.T @ (sample * (p - y)) + penalty * theta
        hessian = (z * (sample * p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = theta[:-1] / scale
    return weights, float(theta[-1] - np.dot(weights, mean))


def replay(confidences: np.ndarray, log: FrameLog, lost_threshold: float, recover_threshold: float,
           frames_to_lose: int = 3, frames_to_recover: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """(reported boxes, LOST flags) of the hysteresis over logged frames (open loop)."""
    boxes, lost = log.raw_boxes.copy(), np.zeros(len(confidences), bool)
    state_lost, count, confident = False, 0, log.raw_boxes[0]
    for i, c in enumerate(confidences):
        if log.starts[i]:
            state_lost, count, confident = False, 0, log.raw_boxes[i]
        if not state_lost:
            count = count + 1 if c < lost_threshold else 0
            state_lost, count = (True, 0) if count >= frames_to_lose else (False, count)
        else:
            count = count + 1 if c >= recover_threshold else 0
            state_lost, count = (False, 0) if count >= frames_to_recover else (True, count)
        if not state_lost and c >= lost_threshold:
            confident = log.raw_boxes[i]
        lost[i] = state_lost
        if state_lost:
            boxes[i] = confident
    return boxes, lost


def agreement(lost: np.ndarray, log: FrameLog) -> Tuple[float, float]:
    """(share of off-target frames reported LOST, share of on-target frames reported TRACKING).

    Judged on the network's box of each frame, as asymtrack-bench-real does.
    """
    off = (~log.present) | (log.iou < OFF_TARGET_IOU)
    on = log.present & (log.iou >= ON_TARGET_IOU)
    return (float((off & lost).sum() / max(off.sum(), 1)), float((on & ~lost).sum() / max(on.sum(), 1)))


def choose_thresholds(confidences: np.ndarray, log: FrameLog, min_tracking: float = 0.95,
                      frames_to_lose: int = 3, max_recover: float = 0.8) -> Tuple[float, float, float, float]:
    """(lost, recover, LOST share, TRACKING share) of the best pair on the grid.

    Best: the largest LOST share + TRACKING share among pairs keeping at least ``min_tracking``
    TRACKING (else the pair with the most TRACKING). ``recover`` stays at or below
    ``max_recover``: on a model that rarely finds the target again, a higher one always looks
    better on the log (never recover) and would make re-acquisition impossible.
    """
    best: Optional[Tuple[float, float, float, float]] = None
    fallback: Optional[Tuple[float, float, float, float]] = None
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    for lost_t in grid:
        for recover_t in grid[(grid > lost_t) & (grid <= max_recover + 1e-9)]:
            _, lost = replay(confidences, log, lost_t, recover_t, frames_to_lose)
            lost_share, tracking_share = agreement(lost, log)
            candidate = (float(lost_t), float(recover_t), lost_share, tracking_share)
            if tracking_share >= min_tracking and (best is None or sum(candidate[2:]) > sum(best[2:])):
                best = candidate
            if fallback is None or tracking_share > fallback[3]:
                fallback = candidate
    return best if best is not None else fallback  # type: ignore[return-value]


def calibrate(log: FrameLog, min_tracking: float = 0.95, notes: Optional[dict] = None) -> Calibration:
    mask, y = labels(log)
    weights, bias = fit_logistic(log.features[mask], y[mask])
    draft = Calibration(tuple(float(w) for w in weights), bias, 0.3, 0.5)
    confidences = np.array([draft.score(f) for f in log.features])
    lost_t, recover_t, lost_share, tracking_share = choose_thresholds(confidences, log, min_tracking)
    details = dict(notes or {}, frames=int(len(log.iou)), fitted_frames=int(mask.sum()),
                   replay_lost_share=round(lost_share, 4), replay_tracking_share=round(tracking_share, 4))
    return Calibration(draft.weights, bias, lost_t, recover_t, FEATURES, notes=details)


def cross_validate(log: FrameLog, folds: int = 3, min_tracking: float = 0.95) -> Tuple[float, float]:
    """(LOST share, TRACKING share) pooled over ``folds`` splits by sequence.

    Each fold is calibrated on the runs of the other folds (every frame step) and replayed on its
    own runs at the smallest frame step. Less optimistic than replaying on the log that was
    fitted; the held-out split stays the final judge."""
    log = log.complete()
    names = np.unique(log.sequence)
    if folds < 2 or len(names) < folds:
        raise ValueError(f"cross-validation needs 2 <= folds <= sequences ({len(names)}), got {folds}")
    fold = np.searchsorted(names, log.sequence) % folds  # sequences dealt round the folds in order
    lost_on_off = off_count = tracking_on = on_count = 0
    for k in range(folds):
        calibration = calibrate(log.select(fold != k), min_tracking)
        test = log.select((fold == k) & (log.frame_step == log.frame_step.min()))
        confidences = np.array([calibration.score(f) for f in test.features])
        _, lost = replay(confidences, test, calibration.lost_threshold, calibration.recover_threshold)
        off = (~test.present) | (test.iou < OFF_TARGET_IOU)
        on = test.present & (test.iou >= ON_TARGET_IOU)
        lost_on_off += int((off & lost).sum())
        off_count += int(off.sum())
        tracking_on += int((on & ~lost).sum())
        on_count += int(on.sum())
    return lost_on_off / max(off_count, 1), tracking_on / max(on_count, 1)


def _write_pt(path: Path, calibration: dict) -> None:
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or "info" not in obj:
        raise ValueError(f"{path}: not a deploy checkpoint with an 'info' entry (asymtrack-convert it first)")
    obj["info"] = dict(obj["info"], calibration=calibration)
    torch.save(obj, path)


def _write_onnx(path: Path, calibration: dict) -> None:
    import onnx

    from asymtrack_ros.backends.model_files import INFO_KEY

    proto = onnx.load(str(path))
    entries = [e for e in proto.metadata_props if e.key == INFO_KEY]
    if len(entries) != 1:
        raise ValueError(f"{path}: no '{INFO_KEY}' metadata (not written by asymtrack-export)")
    entries[0].value = json.dumps(dict(json.loads(entries[0].value), calibration=calibration), sort_keys=True)
    onnx.save(proto, str(path))


def write_calibration(model: PathLike, calibration: Calibration) -> List[Path]:
    """Store ``calibration`` in the model's ``.pt`` and ONNX pair (those that exist); returns them."""
    from asymtrack_ros.backends.model_files import model_prefix, onnx_pair_paths

    prefix = model_prefix(model)
    data = calibration.to_dict()
    written = []
    pt = Path(f"{prefix}.pt")
    if pt.is_file():
        _write_pt(pt, data)
        written.append(pt)
    for path in onnx_pair_paths(prefix):
        if path.is_file():
            _write_onnx(path, data)
            written.append(path)
    if not written:
        raise FileNotFoundError(f"no {prefix}.pt or ONNX pair to write the calibration into")
    return written
