"""The AsymTrack network (T / S / B), split into a template branch and a search branch.

``init_template(z)`` runs once per target and returns a ``TemplateState``: the dynamic kernels
of each ETM and the template keys/values of stage 2's attention block. ``track(x, state)`` is
the per-frame search branch and recomputes nothing that depends only on the template.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from ..model_info import FEATURE_STRIDE, VARIANTS, ModelInfo, canonical_variant
from .layers import (
    ETM,
    OPE,
    ConvNorm,
    CornerHead,
    EfficientModBlock,
    TemplateAttentionBlock,
    count_parameters,
)

STAGE_DIMS = (32, 64, 128)
OUT_DIM = 256
PROTOTYPE_WIDTH = 32  # an ETM has dim / 32 prototypes


class TemplateState(Mapping):
    """Everything the search branch needs from the template: an ordered set of named tensors.

    Names (in order): ``etm1_kernels`` (B,2,5), ``etm2_kernels`` (B,4,7), ``attn_k`` and
    ``attn_v`` (B, 8, Lz, 32) with Lz = (Z/16)^2. They are the template graph's outputs and the
    search graph's extra inputs.
    """

    def __init__(self, tensors: Mapping[str, Tensor]) -> None:
        self._tensors: OrderedDict[str, Tensor] = OrderedDict(tensors)

    def __getitem__(self, name: str) -> Tensor:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self._tensors.items())
        return f"TemplateState({shapes})"

    @property
    def names(self) -> List[str]:
        return list(self._tensors)

    def tensors(self) -> Tuple[Tensor, ...]:
        return tuple(self._tensors.values())

    def as_dict(self) -> OrderedDict[str, Tensor]:
        return OrderedDict(self._tensors)

    @classmethod
    def from_dict(cls, tensors: Mapping[str, Tensor]) -> TemplateState:
        return cls(tensors)

    def to(self, *args, **kwargs) -> TemplateState:
        return TemplateState((k, v.to(*args, **kwargs)) for k, v in self._tensors.items())


class Stage(nn.Module):
    """EfficientMod blocks, then ETM (stages 1, 2), OPE, attention (stage 2), downsample."""

    def __init__(self, index: int, depth: int, dim: int, out_dim: int, deploy: bool) -> None:
        super().__init__()
        self.index = index
        self.blocks = nn.Sequential(*[EfficientModBlock(dim, 1 if j % 2 == 0 else 6) for j in range(depth)])
        self.etm = ETM(dim, dim // PROTOTYPE_WIDTH) if index > 0 else None
        self.ope = OPE(dim, deploy=deploy)
        self.attn = TemplateAttentionBlock(dim) if index == 2 else None
        self.downsample = ConvNorm(dim, out_dim, 3, 2)

    @property
    def etm_name(self) -> str:
        return f"etm{self.index}_kernels"

    def template(self, z: Tensor, state: OrderedDict[str, Tensor]) -> Tensor:
        z = self.blocks(z)
        if self.etm is not None:
            # The template stream only yields the ETM's kernels; the reference vectors settle
            # that the template features pass the ETM unchanged.
            state[self.etm_name] = self.etm.template_kernels(z)
        z = self.ope(z)
        if self.attn is not None:
            state["attn_k"], state["attn_v"] = self.attn.template_kv(z)
            return z  # nothing after the attention block's input is used on the template
        return self.downsample(z)

    def search(self, x: Tensor, state: Mapping[str, Tensor]) -> Tensor:
        x = self.blocks(x)
        if self.etm is not None:
            x = self.etm(x, state[self.etm_name])
        x = self.ope(x)
        if self.attn is not None:
            x = self.attn(x, state["attn_k"], state["attn_v"])
        return self.downsample(x)


class AsymTrack(nn.Module):
    """AsymTrack for one variant. Inputs are normalised RGB crops (B,3,Z,Z) and (B,3,X,X)."""

    def __init__(self, variant: str = "small", deploy: bool = True, info: Optional[ModelInfo] = None) -> None:
        super().__init__()
        self.info = info if info is not None else ModelInfo.for_variant(variant)
        if canonical_variant(variant) != self.info.variant:
            raise ValueError(f"variant {variant!r} does not match the metadata's {self.info.variant!r}")
        depths = VARIANTS[self.info.variant]["depths"]
        out_dims = STAGE_DIMS[1:] + (OUT_DIM,)
        self.stem = ConvNorm(3, STAGE_DIMS[0], 7, 4)
        self.stages = nn.ModuleList(
            Stage(i, depths[i], STAGE_DIMS[i], out_dims[i], deploy) for i in range(len(depths)))
        self.neck = nn.Linear(OUT_DIM, OUT_DIM)
        self.head = CornerHead(OUT_DIM, self.info.feature_size, FEATURE_STRIDE)

    @property
    def variant(self) -> str:
        return self.info.variant

    @property
    def template_size(self) -> int:
        return self.info.template_size

    @property
    def search_size(self) -> int:
        return self.info.search_size

    @property
    def feature_size(self) -> int:
        return self.info.feature_size

    @property
    def deploy(self) -> bool:
        return all(stage.ope.deploy for stage in self.stages)

    @property
    def state_names(self) -> List[str]:
        return [s.etm_name for s in self.stages if s.etm is not None] + ["attn_k", "attn_v"]

    def num_parameters(self) -> int:
        return count_parameters(self)

    def init_template(self, z: Tensor) -> TemplateState:
        """Template branch: (B,3,Z,Z) -> TemplateState."""
        state: OrderedDict[str, Tensor] = OrderedDict()
        z = self.stem(z.permute(0, 2, 3, 1))
        for stage in self.stages:
            z = stage.template(z, state)
        return TemplateState((name, state[name]) for name in self.state_names)

    def track(self, x: Tensor, state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
        """Search branch: (B,3,X,X) + TemplateState -> boxes (B,4), prob_tl/br (B,F*F), feature."""
        x = self.stem(x.permute(0, 2, 3, 1))
        for stage in self.stages:
            x = stage.search(x, state)
        feature = x
        boxes, prob_tl, prob_br = self.head(self.neck(feature).permute(0, 3, 1, 2))
        return {"boxes": boxes, "prob_tl": prob_tl, "prob_br": prob_br, "feature": feature}

    def forward(self, z: Tensor, x: Tensor) -> Dict[str, Tensor]:
        """Both branches at once (training and checks): same dict as ``track``."""
        return self.track(x, self.init_template(z))

    def reparameterize(self) -> AsymTrack:
        """Fuse every OPE into one 3x3 convolution, in place (training form -> deploy form)."""
        for stage in self.stages:
            stage.ope.reparameterize()
        return self


def build_model(variant: str, deploy: bool = True, info: Optional[ModelInfo] = None) -> AsymTrack:
    """A randomly initialised AsymTrack; ``deploy=False`` keeps OPE in its training form."""
    return AsymTrack(canonical_variant(variant), deploy=deploy, info=info)


def dummy_inputs(model: AsymTrack, batch: int = 1, seed: int = 0) -> Tuple[Tensor, Tensor]:
    """Random normalised-looking crops of the model's sizes (for checks and FLOP counting)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, 3, model.template_size, model.template_size, generator=gen)
    x = torch.randn(batch, 3, model.search_size, model.search_size, generator=gen)
    return z, x
