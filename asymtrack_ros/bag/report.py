"""Summary of a replay or demo run: counts, accuracy against ground truth, throughput and latency."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from asymtrack_ros.bag.messages import Box
from asymtrack_ros.evaluation import precision, score_sequence, success_auc
from asymtrack_ros.tracking.state import TrackState

GroundTruth = Dict[int, Optional[Box]]  # stamp_ns -> box, None where the target is absent


class TrackRecord(NamedTuple):
    """One frame of a replay or demo run."""

    index: int
    stamp_ns: int
    log_ns: int
    frame_id: str
    state: TrackState
    box: Optional[Box]
    confidence: float
    latency_ms: float  # frame read + decode + tracking
    inference_ms: float  # search (or template) branch alone
    frames_since_init: int
    track_id: str  # the session's ("1", "2", ... one per init); "" while IDLE


@dataclass
class Summary:
    frames: int
    tracked: int
    lost: int
    idle: int
    scored: int  # frames judged against ground truth (target present, after the init frame)
    auc: Optional[float]
    precision20: Optional[float]
    mean_iou: Optional[float]
    fps: float  # frames per second of the measured per-frame time (tracker, or end to end)
    wall_fps: float  # frames per second of the whole run, reading and writing included
    latency_ms_mean: float
    latency_ms_p50: float
    latency_ms_p95: float
    inference_ms_mean: float

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


def _accuracy(records: Sequence[TrackRecord], gt: GroundTruth) -> tuple:
    tracked = [r for r in records if r.state != TrackState.IDLE and r.stamp_ns in gt]
    if len(tracked) < 2:
        return 0, None, None, None
    pred = np.array([r.box for r in tracked], np.float64)
    visible = np.array([gt[r.stamp_ns] is not None for r in tracked])
    boxes = np.array([gt[r.stamp_ns] if gt[r.stamp_ns] is not None else (0, 0, 1, 1) for r in tracked],
                     np.float64)
    score = score_sequence(pred, boxes, visible)
    if score.frames == 0:
        return 0, None, None, None
    return score.frames, success_auc(score.ious), precision(score.errors), float(score.ious.mean())


def summarise(records: Sequence[TrackRecord], gt: Optional[GroundTruth], wall_s: float) -> Summary:
    states = [r.state for r in records]
    active = [r for r in records if r.state != TrackState.IDLE][1:]  # without the init frame
    latency = np.array([r.latency_ms for r in active] or [0.0])
    inference = np.array([r.inference_ms for r in active] or [0.0])
    scored, auc, prec, miou = _accuracy(records, gt) if gt else (0, None, None, None)
    return Summary(
        frames=len(records), tracked=states.count(TrackState.TRACKING), lost=states.count(TrackState.LOST),
        idle=states.count(TrackState.IDLE),
        scored=scored, auc=auc, precision20=prec, mean_iou=miou,
        fps=float(len(active) / (latency.sum() / 1000.0)) if active and latency.sum() > 0 else 0.0,
        wall_fps=len(records) / wall_s if wall_s > 0 else 0.0,
        latency_ms_mean=float(latency.mean()), latency_ms_p50=float(np.percentile(latency, 50)),
        latency_ms_p95=float(np.percentile(latency, 95)), inference_ms_mean=float(inference.mean()))


def format_summary(s: Summary, title: str = "replay", latency_label: str = "per frame") -> str:
    lines: List[str] = [
        f"{title}: {s.frames} frames ({s.tracked} TRACKING, {s.lost} LOST, {s.idle} IDLE)"]
    if s.auc is not None:
        lines.append(f"  accuracy vs ground truth ({s.scored} frames): success AUC {s.auc:.3f}  "
                     f"precision@20px {s.precision20:.3f}  mean IoU {s.mean_iou:.3f}")
    else:
        lines.append("  accuracy: no ground truth")
    lines.append(f"  speed: {s.fps:.1f} FPS ({latency_label}), {s.wall_fps:.1f} FPS overall")
    lines.append(f"  latency {latency_label}: mean {s.latency_ms_mean:.1f} ms  "
                 f"p50 {s.latency_ms_p50:.1f} ms  p95 {s.latency_ms_p95:.1f} ms  "
                 f"(inference mean {s.inference_ms_mean:.1f} ms)")
    return "\n".join(lines)
