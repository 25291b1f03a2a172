"""One confidence in [0, 1] from cheap per-box cues, with weights fitted on real video.

``p = sigmoid(bias + sum(w_i * f_i))`` over the features below. The weights and the
LOST/TRACKING thresholds on ``p`` come from the model file's ``calibration`` (written by
``asymtrack-calibrate`` from real sequences of the train split); a model without one gets
``DEFAULT_CALIBRATION``, fitted the same way on the demo model (see docs/TRACKER.md).

Features of a candidate box, relative to the template, the last confident box (the last one
clear of the image border, for the sizes) and the box the search was centred on:

- ``corner``: the corner confidence (confidence.py)
- ``ncc_template``, ``hist_template``: appearance against the init box (appearance.py)
- ``ncc_recent``: appearance against the last confident box
- ``area_change``: ``|log(area / confident area)|``
- ``aspect_change``: ``|log(aspect / confident aspect)|``
- ``coverage``: box area / image area (a box filling the frame is suspect)
- ``jump``: centre distance to the search centre / sqrt(search-centre box area)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from asymtrack_ros.tracking.appearance import Signature, hist_similarity, ncc

FEATURES = ("corner", "ncc_template", "hist_template", "ncc_recent", "area_change",
            "aspect_change", "coverage", "jump")
CALIBRATION_VERSION = 1


def box_features(corner: float, now: Signature, template: Signature, recent: Signature,
                 box: Sequence[float], confident: Sequence[float], centre: Sequence[float],
                 image_size: Tuple[int, int]) -> np.ndarray:
    """The feature vector (in ``FEATURES`` order) of one candidate box."""
    _, _, w, h = box
    _, _, cw, ch = confident
    area, confident_area = max(w * h, 1e-6), max(cw * ch, 1e-6)
    dx = (box[0] + 0.5 * w) - (centre[0] + 0.5 * centre[2])
    dy = (box[1] + 0.5 * h) - (centre[1] + 0.5 * centre[3])
    return np.array([
        corner, ncc(now, template), hist_similarity(now, template), ncc(now, recent),
        abs(math.log(area / confident_area)), abs(math.log((w / max(h, 1e-6)) / (cw / max(ch, 1e-6)))),
        area / float(image_size[0] * image_size[1]),
        math.hypot(dx, dy) / math.sqrt(max(centre[2] * centre[3], 1e-6)),
    ], np.float64)


@dataclass(frozen=True)
class Calibration:
    """Logistic weights over ``features`` and the thresholds on the resulting confidence."""

    weights: Tuple[float, ...]
    bias: float
    lost_threshold: float
    recover_threshold: float
    features: Tuple[str, ...] = FEATURES
    version: int = CALIBRATION_VERSION
    notes: Optional[Dict[str, Any]] = None  # where it was fitted, with what figures

    def __post_init__(self) -> None:
        if self.version != CALIBRATION_VERSION:
            raise ValueError(f"calibration version {self.version} is not supported "
                             f"(expected {CALIBRATION_VERSION})")
        if tuple(self.features) != FEATURES:
            raise ValueError(f"calibration features {list(self.features)} do not match this "
                             f"tracker's {list(FEATURES)}; re-run asymtrack-calibrate")
        if len(self.weights) != len(FEATURES) or not all(math.isfinite(w) for w in self.weights):
            raise ValueError(f"calibration needs {len(FEATURES)} finite weights, got {self.weights}")
        if not 0.0 <= self.lost_threshold < self.recover_threshold <= 1.0:
            raise ValueError(f"calibration thresholds must satisfy 0 <= lost < recover <= 1, got "
                             f"{self.lost_threshold}, {self.recover_threshold}")

    def score(self, features: np.ndarray) -> float:
        z = self.bias + float(np.dot(self.weights, features))
        return float(1.0 / (1.0 + math.exp(-min(max(z, -50.0), 50.0))))

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["weights"], d["features"] = list(self.weights), list(self.features)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Calibration:
        try:
            return cls(weights=tuple(float(w) for w in d["weights"]), bias=float(d["bias"]),
                       lost_threshold=float(d["lost_threshold"]),
                       recover_threshold=float(d["recover_threshold"]),
                       features=tuple(d.get("features", FEATURES)),
                       version=int(d.get("version", CALIBRATION_VERSION)), notes=d.get("notes"))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"unreadable calibration {d!r}: {exc}") from None


# Fitted on the first demo model (the synthetic-only one, before the real-data fine-tune that
# replaced it) over the train split of data/real;
# used for models without their own calibration (e.g. a published checkpoint).
DEFAULT_CALIBRATION = Calibration(
    weights=(5.6585, 5.9352, 10.6751, 1.0171, -2.3575, 1.0797, -3.6604, -1.4157), bias=-14.5619,
    lost_threshold=0.1, recover_threshold=0.8,
    notes={"source": "asymtrack-calibrate models/asymtrack_t_demo.pt --data out/real (train split, "
                     "21 sequences, 6995 frames, --min-tracking 0.97)"})


def calibration_of(info: Any) -> Tuple[Calibration, bool]:
    """(the model's calibration, True) or (``DEFAULT_CALIBRATION``, False)."""
    data = getattr(info, "calibration", None)
    if data is None:
        return DEFAULT_CALIBRATION, False
    return Calibration.from_dict(data), True
