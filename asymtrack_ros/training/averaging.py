"""Weight averaging along one training run (stochastic weight averaging, Izmailov et al. 2018).

Checkpoints of one run after warmup lie in one basin; their uniform average usually sits nearer
its centre than any one of them, which is what a tracker needs on video it was not trained on.
The averaged weights come with averaged BatchNorm statistics that belong to no real network, so
``update_batchnorm`` re-estimates them on fresh training pairs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

import torch
from torch import Tensor, nn

from asymtrack_ros.training.trainer import CHECKPOINT_FORMAT

CHECKPOINT_NAME = re.compile(r"checkpoint_(\d+)\.pt$")


def kept_checkpoints(out_dir: str, from_step: int) -> List[Path]:
    """The numbered checkpoints of a run (``checkpoint_STEP.pt``) from ``from_step`` on, by step."""
    found = []
    for path in Path(out_dir).glob("checkpoint_*.pt"):
        match = CHECKPOINT_NAME.search(path.name)
        if match and int(match.group(1)) >= from_step:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def load_weights(path: Path) -> Dict[str, Tensor]:
    state = torch.load(str(path), map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an asymtrack_ros training checkpoint")
    return state["model"]


def average_weights(states: Sequence[Dict[str, Tensor]]) -> Dict[str, Tensor]:
    """Uniform mean of floating-point tensors; counters (integer buffers) from the last state."""
    if not states:
        raise ValueError("nothing to average")
    keys = list(states[-1])
    for state in states:
        if list(state) != keys:
            raise ValueError("checkpoints of different models cannot be averaged")
    averaged = {}
    for key in keys:
        last = states[-1][key]
        if last.is_floating_point():
            averaged[key] = torch.stack([s[key].double() for s in states]).mean(0).to(last.dtype)
        else:
            averaged[key] = last.clone()
    return averaged


@torch.no_grad()
def update_batchnorm(model: nn.Module, batches: Iterable[Sequence[Tensor]], device: str = "cpu") -> int:
    """Re-estimate every BatchNorm's running mean/var as the plain mean over ``batches`` of
    (template, search, ...) inputs; returns the number of batches seen (0 when there is no BN).

    torch.optim.swa_utils.update_bn does the same for one-input models; AsymTrack takes two."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    was_training = model.training
    model.train()
    seen = 0
    for batch in batches:
        model(batch[0].to(device), batch[1].to(device))
        seen += 1
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
    return seen
