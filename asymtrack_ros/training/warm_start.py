"""Start training from a finished model: a published ``.pth.tar`` or our deploy ``.pt``.

Both load (``asymtrack_ros.model.load_model``) as the deploy form, where each OPE is one fused 3x3
convolution. Training needs the OPE's training form, so the fused kernel is split back exactly:
with theta = 0 (sigmoid 1/2) and three equal branches summing to W', the fused kernel is
W' - 1/2 * centre(sum of W' taps); W' keeps the fused off-centre taps and its centre tap solves
c' - (c' + s)/2 = c, i.e. c' = 2c + s, s the sum of the off-centre taps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from asymtrack_ros.model import build_model, load_model
from asymtrack_ros.model.asymtrack import AsymTrack


def unfuse_ope_weight(fused: Tensor, branches: int = 3) -> Tensor:
    """The per-branch kernel W'/branches whose training-form OPE (theta 0) equals ``fused``."""
    w = fused.clone()
    off_centre = fused.sum(dim=(2, 3)) - fused[:, :, 1, 1]
    w[:, :, 1, 1] = 2 * fused[:, :, 1, 1] + off_centre
    return w / branches


@torch.no_grad()
def training_form(deployed: AsymTrack) -> AsymTrack:
    """A training-form copy of a deploy-form model computing the same function."""
    model = build_model(deployed.variant, deploy=False, info=deployed.info)
    state = {}
    for key, value in deployed.state_dict().items():
        if ".ope.conv." not in key:
            state[key] = value
            continue
        prefix = key.split(".ope.conv.")[0] + ".ope."
        ope = model.get_submodule(prefix[:-1])
        branch = unfuse_ope_weight(value, ope.num_branches)
        for i in range(ope.num_branches):
            state[f"{prefix}convs.{i}.weight"] = branch.clone()
        state[f"{prefix}theta"] = torch.zeros_like(ope.theta)
    model.load_state_dict(state, strict=True)
    return model


def initial_model(path: str, variant: str) -> nn.Module:
    """The training-form model to start from, loaded from ``path`` (checked against ``variant``)."""
    return training_form(load_model(path, variant))
