"""The search branch as it is exported: ``AsymTrack.track`` rearranged for ONNX Runtime's CPU kernels.

Same network and the same arithmetic as the model (``export_onnx`` checks every export against
``AsymTrack.track``), laid out differently:

- Stages without attention (0 and 1 in every variant) run on channel-first token matrices
  (C, H*W). ONNX Runtime's CPU LayerNormalization, and its broadcasts against a per-channel
  vector, loop over rows; with rows of only 32 channels (4096 of them in T's first stage) that
  loop is the cost, and a second thread makes it slower. Channel-first, a LayerNorm is two
  MatMuls with a row of 1/C (the means) plus elementwise ops over whole rows of H*W, and the
  convolutions read the (1, C, H, W) view without a Transpose. Where only Linears read a
  LayerNorm, its scale and shift are folded into those Linears.
  ``channels_first=False`` (what ``export_onnx`` uses from opset 17 on, where LayerNorm is one
  ``LayerNormalization`` node that TensorRT 8.6+ runs as its normalization layer) keeps every
  stage channel-last.
- The attention stage keeps channel-last tokens (H*W, C): its matrix products want them.
- In both layouts each Linear is one Gemm on a 2-D token matrix and the EfficientMod context is
  broadcast over the ratio groups instead of tiled.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asymtrack_ros.model.layers import ETM, OPE, EfficientModBlock


def normalize_channels(t: Tensor, eps: float) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the channels (rows) of a (C, N) token matrix."""
    channels = t.shape[0]
    mean_row = torch.full((1, channels), 1.0 / channels, dtype=t.dtype)
    centred = t - mean_row @ t
    return centred / torch.sqrt(mean_row @ (centred * centred) + eps)


def layer_norm_channels(norm: nn.LayerNorm, t: Tensor) -> Tensor:
    return normalize_channels(t, norm.eps) * norm.weight[:, None] + norm.bias[:, None]


def linear_channels(weight: Tensor, bias: Tensor, t: Tensor) -> Tensor:
    """A Linear on (C_in, N) tokens: weight @ t + bias, one Gemm."""
    return torch.addmm(bias[:, None], weight, t)


def fold_norm(norm: nn.LayerNorm, linear: nn.Linear) -> Tuple[Tensor, Tensor]:
    """Weight and bias of ``linear(norm(x))`` acting on the normalised, unscaled x."""
    return linear.weight * norm.weight[None, :], linear.bias + linear.weight @ norm.bias


def modulation_block_channels(block: EfficientModBlock, t: Tensor, height: int, width: int) -> Tensor:
    """``EfficientModBlock`` on (C, H*W) tokens."""
    mod = block.mod
    channels = t.shape[0]
    u = normalize_channels(t, block.norm.eps)
    context = linear_channels(*fold_norm(block.norm, mod.f), u).reshape(1, channels, height, width)
    context = mod.dwconv(context).reshape(channels, height * width)
    context = linear_channels(mod.g.weight, mod.g.bias, F.gelu(context))
    h = linear_channels(*fold_norm(block.norm, mod.fc1), u)
    if mod.ratio > 1:
        # repeat(1, 1, 1, ratio) puts copy j of the context at channels j*C..(j+1)*C-1.
        h = (F.gelu(h).reshape(mod.ratio, channels, -1) * context).reshape(mod.ratio * channels, -1)
    else:
        h = h * context
    return t + block.gamma[:, None] * linear_channels(mod.fc2.weight, mod.fc2.bias, h)


def etm_channels(etm: ETM, t: Tensor, kernels: Tensor) -> Tensor:
    """``ETM.forward`` on (C, N) tokens; ``kernels`` (1, P, P+3) as in the TemplateState."""
    xn = linear_channels(etm.pre_kernels_x.weight, etm.pre_kernels_x.bias, t)  # (P, N)
    padded = F.pad((xn @ t.transpose(0, 1)).unsqueeze(0), (1, 1))  # prototypes (1, P, C+2)
    h = (kernels[..., 0:1] * padded[..., :-2] + kernels[..., 1:2] * padded[..., 1:-1]
         + kernels[..., 2:3] * padded[..., 2:])
    kmix = etm.kernel_norm(kernels[..., 3:] @ F.relu(h))[0]  # (P, C)
    gate = torch.sigmoid(etm.proj_c_to_1(kmix).transpose(0, 1) @ kmix)  # (1, C)
    v = (kmix.transpose(0, 1) @ xn) * gate.transpose(0, 1)  # (C, N)
    return t + F.relu(layer_norm_channels(etm.norm, v))


def ope_channels(ope: OPE, t: Tensor, height: int, width: int) -> Tensor:
    channels = t.shape[0]
    y = ope.conv(t.reshape(1, channels, height, width)).reshape(channels, height * width)
    return t + ope.ibe_scale[:, None] * F.relu(layer_norm_channels(ope.norm, y))


def token_block(block: EfficientModBlock, t: Tensor, height: int, width: int) -> Tensor:
    """``EfficientModBlock`` on (H*W, C) tokens."""
    mod = block.mod
    channels = t.shape[1]
    u = block.norm(t)
    context = mod.f(u).reshape(1, height, width, channels).permute(0, 3, 1, 2)
    context = mod.dwconv(context).permute(0, 2, 3, 1).reshape(height * width, channels)
    context = mod.g(F.gelu(context))
    h = mod.fc1(u)
    if mod.ratio > 1:
        h = F.gelu(h).reshape(-1, mod.ratio, channels) * context.unsqueeze(1)
        h = h.reshape(-1, mod.ratio * channels)
    else:
        h = h * context
    return t + block.gamma * mod.fc2(h)


def stage_channels_first(stage: nn.Module, t: Tensor, height: int, width: int,
                         state: Dict[str, Tensor]) -> Tensor:
    """A stage without attention on (C, H*W) tokens -> its downsample's conv output (1, C', H', W')."""
    for block in stage.blocks:
        t = modulation_block_channels(block, t, height, width)
    if stage.etm is not None:
        t = etm_channels(stage.etm, t, state[stage.etm_name])
    t = ope_channels(stage.ope, t, height, width)
    return stage.downsample.conv(t.reshape(1, -1, height, width))


def stage_channels_last(stage: nn.Module, x: Tensor, state: Dict[str, Tensor]) -> Tensor:
    """A stage on (1, H, W, C) features -> its downsample's conv output (1, C', H', W')."""
    _, height, width, channels = x.shape
    t = x.reshape(height * width, channels)
    for block in stage.blocks:
        t = token_block(block, t, height, width)
    x = t.reshape(1, height, width, channels)
    if stage.etm is not None:
        x = stage.etm(x, state[stage.etm_name])
    x = stage.ope(x)
    if stage.attn is not None:
        x = stage.attn(x, state["attn_k"], state["attn_v"])
    return stage.downsample.conv(x.permute(0, 3, 1, 2))


class SearchGraph(nn.Module):
    """The exported search branch: (search crop, *TemplateState tensors) -> boxes, prob_tl, prob_br.

    ``rewrite`` (default) exports the formulation of this module; ``rewrite=False`` traces
    ``AsymTrack.track`` as it is. ``channels_first`` runs the stages without attention on
    channel-first tokens. Batch 1 (the exported graphs are batch 1).
    """

    def __init__(self, model: nn.Module, state_names: List[str], rewrite: bool = True,
                 channels_first: bool = True) -> None:
        super().__init__()
        self.model = model
        self.state_names = list(state_names)
        self.rewrite = rewrite
        self.channels_first = channels_first

    def forward(self, x: Tensor, *state: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        tensors = dict(zip(self.state_names, state))
        if not self.rewrite:
            out = self.model.track(x, tensors)
            return out["boxes"], out["prob_tl"], out["prob_br"]
        if x.shape[0] != 1:
            raise ValueError(f"the export formulation is batch 1, got a batch of {x.shape[0]}")
        model = self.model
        # Each convolution's output waits in NCHW for the LayerNorm of its ConvNorm, which the
        # next stage applies in its own layout.
        x = model.stem.conv(x)
        norm = model.stem.norm
        for stage in model.stages:
            _, channels, height, width = x.shape
            if self.channels_first and stage.attn is None:
                t = layer_norm_channels(norm, x.reshape(channels, height * width))
                x = stage_channels_first(stage, t, height, width, tensors)
            else:
                x = stage_channels_last(stage, norm(x.permute(0, 2, 3, 1)), tensors)
            norm = stage.downsample.norm
        feature = norm(x.permute(0, 2, 3, 1))
        return model.head(model.neck(feature).permute(0, 3, 1, 2))

    def max_difference(self, x: Tensor, state: Dict[str, Tensor]) -> float:
        """Largest |rewrite - AsymTrack.track| over the three outputs for one input."""
        out = self.model.track(x, state)
        ours = self(x, *(state[n] for n in self.state_names))
        return max(float((a - out[k]).abs().max()) for a, k in zip(ours, ("boxes", "prob_tl", "prob_br")))
