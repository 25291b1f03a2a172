"""Multiply-accumulate counts of the template and search branches (the convention papers report)."""

from __future__ import annotations

from typing import Dict

import torch
from torch.utils.flop_counter import FlopCounterMode

from .asymtrack import AsymTrack, dummy_inputs


def count_macs(model: AsymTrack) -> Dict[str, int]:
    """MACs of ``init_template`` and ``track`` for one (batch 1) input pair.

    Counts convolutions and matrix products (torch's FlopCounterMode, which reports 2 FLOPs per
    MAC); normalisations, activations and element-wise products are not counted.
    """
    z, x = dummy_inputs(model)
    device = next(model.parameters()).device
    z, x = z.to(device), x.to(device)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            state = model.init_template(z)
        template = counter.get_total_flops() // 2
        with FlopCounterMode(display=False) as counter:
            model.track(x, state)
        search = counter.get_total_flops() // 2
    return {"template": template, "search": search, "total": template + search}
