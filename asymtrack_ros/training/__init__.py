"""Training AsymTrack: pair sampling (sequences, stills with synthetic motion), losses, the loop.

Imports torch; nothing on the runtime path imports this package.
"""

from __future__ import annotations

from asymtrack_ros.training.data import Jitter, PairDataset, jitter_box, parse_source
from asymtrack_ros.training.losses import giou, tracking_loss
from asymtrack_ros.training.trainer import TrainConfig, Trainer

__all__ = ["Jitter", "PairDataset", "jitter_box", "parse_source", "giou", "tracking_loss", "TrainConfig",
           "Trainer"]
