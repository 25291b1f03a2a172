"""Validation during training: one tracking pass over a few real sequences, success AUC.

The model is copied, fused (deploy form) and run through the real tracker, as shipped.
"""

from __future__ import annotations

import copy
from typing import Dict, Sequence

import numpy as np
from torch import nn

from asymtrack_ros.evaluation import score_sequence, summarise
from asymtrack_ros.tracking.offline import OfflineSession


def track(session: OfflineSession, seq) -> np.ndarray:
    """One-pass boxes, initialised from the first visible ground-truth box (NaN before it)."""
    start = int(np.flatnonzero(seq.visible)[0])
    boxes = np.full((len(seq), 4), np.nan)
    for i in range(start, len(seq)):
        frame = seq.frames[i]
        output = session.init(frame, seq.boxes[i]) if i == start else session.update(frame)
        boxes[i] = output.box
    return boxes


def validate(model: nn.Module, sequences: Sequence) -> Dict[str, float]:
    """Pooled success AUC, precision@20 px and frame count over ``sequences``."""
    from asymtrack_ros.backends.pytorch_backend import PyTorchBackend

    deployed = copy.deepcopy(model).cpu().eval()
    deployed.reparameterize()
    backend = PyTorchBackend(deployed)
    try:
        session = OfflineSession(backend)
        scores = []
        for seq in sequences:
            boxes = track(session, seq)
            start = int(np.flatnonzero(seq.visible)[0])
            scores.append(score_sequence(boxes[start:], seq.boxes[start:], seq.visible[start:], seq.name))
    finally:
        backend.close()
    total = summarise(scores)
    return {"val_auc": float(total["auc"]), "val_p20": float(total["precision20"]),
            "val_frames": float(total["frames"])}
