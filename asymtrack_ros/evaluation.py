"""One-pass evaluation metrics: IoU, success curve and its AUC, precision at 20 px.

Conventions (OTB / GOT-10k): the success curve is the fraction of frames with IoU strictly above
each of 21 thresholds 0, 0.05, ..., 1 and the AUC is its mean; precision is the fraction of frames
whose centre error is at most 20 px. Frames where the target is absent, and the initialisation
frame, are left out (GOT-10k); a predicted box for such frames is not judged.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Sequence

import numpy as np

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_PIXELS = 20.0


def _as_boxes(boxes: np.ndarray, what: str) -> np.ndarray:
    b = np.asarray(boxes, np.float64)
    if b.ndim == 1:
        b = b.reshape(1, -1)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{what} must have shape (N, 4) (x, y, w, h), got {np.shape(boxes)}")
    return b


def iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-row IoU of (N, 4) x, y, w, h boxes; 0 where either box is empty or non-finite."""
    a, b = _as_boxes(pred, "pred"), _as_boxes(gt, "gt")
    if a.shape != b.shape:
        raise ValueError(f"pred and gt must have the same shape, got {a.shape} and {b.shape}")
    ix = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    iy = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    union = np.clip(a[:, 2], 0, None) * np.clip(a[:, 3], 0, None) \
        + np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def centre_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-row Euclidean distance between box centres, in pixels (inf where non-finite)."""
    a, b = _as_boxes(pred, "pred"), _as_boxes(gt, "gt")
    if a.shape != b.shape:
        raise ValueError(f"pred and gt must have the same shape, got {a.shape} and {b.shape}")
    d = np.hypot(a[:, 0] + a[:, 2] / 2 - b[:, 0] - b[:, 2] / 2, a[:, 1] + a[:, 3] / 2 - b[:, 1] - b[:, 3] / 2)
    return np.where(np.isfinite(d), d, np.inf)


def success_curve(ious: np.ndarray) -> np.ndarray:
    ious = np.asarray(ious, np.float64).reshape(-1)
    if ious.size == 0:
        return np.zeros_like(SUCCESS_THRESHOLDS)
    return (ious[None, :] > SUCCESS_THRESHOLDS[:, None]).mean(axis=1)


def success_auc(ious: np.ndarray) -> float:
    return float(success_curve(ious).mean())


def precision(errors: np.ndarray, pixels: float = PRECISION_PIXELS) -> float:
    errors = np.asarray(errors, np.float64).reshape(-1)
    return float((errors <= pixels).mean()) if errors.size else 0.0


class SequenceScore(NamedTuple):
    name: str
    frames: int  # frames scored (present, after the first)
    ious: np.ndarray
    errors: np.ndarray


def score_sequence(pred: np.ndarray, gt: np.ndarray, visible: Optional[np.ndarray] = None,
                   name: str = "sequence") -> SequenceScore:
    """IoUs and centre errors over the frames that count (present, not the init frame)."""
    pred, gt = _as_boxes(pred, "pred"), _as_boxes(gt, "gt")
    if len(pred) != len(gt):
        raise ValueError(f"{name}: {len(pred)} predicted boxes for {len(gt)} ground-truth boxes")
    mask = np.ones(len(gt), bool) if visible is None else np.asarray(visible, bool).reshape(-1).copy()
    if len(mask) != len(gt):
        raise ValueError(f"{name}: {len(mask)} visibility flags for {len(gt)} ground-truth boxes")
    mask[:1] = False
    return SequenceScore(name, int(mask.sum()), iou(pred[mask], gt[mask]), centre_error(pred[mask], gt[mask]))


def summarise(scores: Sequence[SequenceScore]) -> Dict[str, float]:
    """AUC and precision over all scored frames of all sequences pooled (GOT-10k style)."""
    ious = np.concatenate([s.ious for s in scores]) if scores else np.zeros(0)
    errors = np.concatenate([s.errors for s in scores]) if scores else np.zeros(0)
    return {"sequences": float(len(scores)), "frames": float(ious.size), "auc": success_auc(ious),
            "precision20": precision(errors), "mean_iou": float(ious.mean()) if ious.size else 0.0}


# --- LOST / TRACKING against the ground truth -------------------------------------------------

OFF_TARGET_IOU = 0.1
ON_TARGET_IOU = 0.5


class LostStats(NamedTuple):
    """Counts over the frames after the init frame; see ``lost_statistics``."""

    off_target: int  # frames whose box left the target (IoU < 0.1) or whose target is absent
    off_target_lost: int  # ... of them reported LOST
    on_target: int  # frames with the target present and IoU >= 0.5
    on_target_tracking: int  # ... of them reported TRACKING

    @property
    def lost_share(self) -> float:
        return self.off_target_lost / self.off_target if self.off_target else float("nan")

    @property
    def tracking_share(self) -> float:
        return self.on_target_tracking / self.on_target if self.on_target else float("nan")

    def __add__(self, other: LostStats) -> LostStats:  # type: ignore[override]
        return LostStats(*(a + b for a, b in zip(self, other)))


def lost_statistics(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, lost: np.ndarray) -> LostStats:
    """Does the reported state agree with the box? ``lost[i]``: frame i was reported LOST.

    Absent-target frames (``visible`` False or a non-finite ground truth) count as off target,
    whatever the box; the init frame is left out.
    """
    pred, gt = _as_boxes(pred, "pred"), _as_boxes(gt, "gt")
    present = np.asarray(visible, bool).reshape(-1) & np.all(np.isfinite(gt), axis=1)
    lost = np.asarray(lost, bool).reshape(-1)
    if not len(pred) == len(gt) == len(present) == len(lost):
        raise ValueError(f"lengths differ: {len(pred)} boxes, {len(gt)} ground truth, "
                         f"{len(present)} visibility flags, {len(lost)} states")
    overlap = np.where(present, iou(pred, np.where(np.isfinite(gt), gt, 0.0)), 0.0)
    off = (~present) | (overlap < OFF_TARGET_IOU)
    on = present & (overlap >= ON_TARGET_IOU)
    off[:1] = on[:1] = False
    return LostStats(int(off.sum()), int((off & lost).sum()), int(on.sum()), int((on & ~lost).sum()))
