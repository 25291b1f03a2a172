"""AsymTrack in PyTorch: the network, published-checkpoint loading and our deploy checkpoints."""

from __future__ import annotations

from .asymtrack import AsymTrack, TemplateState, build_model, dummy_inputs
from .checkpoint import (
                         CheckpointError,
                         convert_published,
                         load_deploy,
                         load_model,
                         load_published,
                         save_deploy,
)

__all__ = ["AsymTrack", "TemplateState", "build_model", "dummy_inputs", "CheckpointError",
           "convert_published", "load_deploy", "load_model", "load_published", "save_deploy"]
