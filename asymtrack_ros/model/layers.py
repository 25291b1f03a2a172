"""Building blocks of AsymTrack. Backbone tensors are channel-last: (B, H, W, C)."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def nhwc_conv(conv: nn.Module, x: Tensor) -> Tensor:
    """Apply an NCHW convolution to a channel-last tensor."""
    return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class ConvNorm(nn.Module):
    """Strided convolution followed by LayerNorm: the stem and the downsamples between stages."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size, stride, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(nhwc_conv(self.conv, x))


class ContextModulation(nn.Module):
    """EfficientMod's modulation: fc1(u) gated by a depthwise-conv context of u, then fc2."""

    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__()
        self.ratio = ratio
        self.fc1 = nn.Linear(dim, dim * ratio)
        self.f = nn.Linear(dim, dim)
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.g = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim * ratio, dim)

    def forward(self, u: Tensor) -> Tensor:
        context = self.g(F.gelu(nhwc_conv(self.dwconv, self.f(u))))
        h = self.fc1(u)
        if self.ratio > 1:
            h = F.gelu(h) * context.repeat(1, 1, 1, self.ratio)
        else:
            h = h * context
        return self.fc2(h)


class EfficientModBlock(nn.Module):
    """y = x + gamma * M(LN(x))."""

    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mod = ContextModulation(dim, ratio)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.gamma * self.mod(self.norm(x))


def prototypes(weights: Tensor, x: Tensor) -> Tensor:
    """(B,H,W,N) token weights x (B,H,W,C) tokens -> (B,N,C) prototypes."""
    b, h, w, n = weights.shape
    return weights.reshape(b, h * w, n).transpose(1, 2) @ x.reshape(b, h * w, -1)


class ETM(nn.Module):
    """Efficient template modulation.

    The template yields N prototypes and, from them, per-target dynamic kernels (B, N, N+3):
    a 3-tap depthwise kernel per prototype and an N x N pointwise kernel. Each frame, the search
    prototypes are filtered with those kernels along the channel axis and redistributed to the
    search tokens. The filtering is written with shifts, multiplies and one matmul so that the
    search graph has no dynamic-weight convolution.
    """

    def __init__(self, dim: int, num_prototypes: int) -> None:
        super().__init__()
        self.num_prototypes = num_prototypes
        self.pre_kernels = nn.Linear(dim, num_prototypes)
        self.pre_kernels_x = nn.Linear(dim, num_prototypes)
        self.weight_linear = nn.Linear(dim, num_prototypes + 3)
        self.kernel_norm = nn.LayerNorm(dim)
        self.proj_c_to_1 = nn.Linear(dim, 1)
        self.norm = nn.LayerNorm(dim)

    def template_kernels(self, z: Tensor) -> Tensor:
        """Template features (B,H,W,C) -> dynamic kernels (B, N, N+3)."""
        return self.weight_linear(prototypes(self.pre_kernels(z), z))

    def forward(self, x: Tensor, kernels: Tensor) -> Tensor:
        xn = self.pre_kernels_x(x)
        kx = prototypes(xn, x)
        padded = F.pad(kx, (1, 1))
        h = (kernels[..., 0:1] * padded[..., :-2] + kernels[..., 1:2] * padded[..., 1:-1]
             + kernels[..., 2:3] * padded[..., 2:])
        kmix = self.kernel_norm(kernels[..., 3:] @ F.relu(h))
        b, hh, ww, n = xn.shape
        v = xn.reshape(b, hh * ww, n) @ kmix
        gate = torch.sigmoid(self.proj_c_to_1(kmix).transpose(1, 2) @ kmix)
        v = (v * gate).reshape(b, hh, ww, -1)
        return x + F.relu(self.norm(v))


class OPE(nn.Module):
    """Object perception enhancement: a re-parameterisable 3x3 convolution.

    Training form: three 3x3 convs minus sigmoid(theta) times their 1x1 (tap-summed) versions.
    Deploy form (after ``reparameterize()``): one 3x3 convolution without bias.
    """

    def __init__(self, dim: int, num_branches: int = 3, deploy: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.num_branches = num_branches
        self.norm = nn.LayerNorm(dim)
        self.ibe_scale = nn.Parameter(torch.ones(dim))
        if deploy:
            self.conv = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        else:
            self.convs = nn.ModuleList(
                nn.Conv2d(dim, dim, 3, padding=1, bias=False) for _ in range(num_branches))
            self.theta = nn.Parameter(torch.zeros(1))

    @property
    def deploy(self) -> bool:
        return hasattr(self, "conv")

    def fused_weight(self) -> Tensor:
        w = sum(c.weight for c in self.convs)
        centre = F.pad(w.sum(dim=(2, 3), keepdim=True), (1, 1, 1, 1))
        return w - torch.sigmoid(self.theta) * centre

    def forward(self, x: Tensor) -> Tensor:
        xc = x.permute(0, 3, 1, 2)
        if self.deploy:
            y = self.conv(xc)
        else:
            w = sum(c.weight for c in self.convs)
            y = F.conv2d(xc, w, padding=1)
            y = y - torch.sigmoid(self.theta) * F.conv2d(xc, w.sum(dim=(2, 3), keepdim=True))
        return x + self.ibe_scale * F.relu(self.norm(y.permute(0, 2, 3, 1)))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.deploy:
            return
        weight = self.fused_weight()
        self.conv = nn.Conv2d(self.dim, self.dim, 3, padding=1, bias=False).to(weight)
        self.conv.weight.copy_(weight)
        del self.convs
        del self.theta


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class TemplateAttentionBlock(nn.Module):
    """Pre-norm transformer block over [search ; template] tokens, search tokens kept.

    Because LayerNorm, the MLP and the queries act per token, only the template's keys and
    values are needed from the template stream; they are computed once per target.
    """

    def __init__(self, dim: int, num_heads: int = 8, head_dim: int = 32, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        inner = num_heads * head_dim
        # The reference vectors settle the scale as head_dim ** -0.5 = 32 ** -0.5, not
        # (dim / heads) ** -0.5 = 16 ** -0.5 (that one is off by 0.2 on the features).
        self.scale = head_dim ** -0.5
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.proj = nn.Linear(inner, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * mlp_ratio)

    def _split(self, tokens: Tensor, part: int) -> Tensor:
        """Tokens (B,L,C) -> heads (B, heads, L, head_dim) of q (0), k (1) or v (2)."""
        inner = self.num_heads * self.head_dim
        w = self.qkv.weight[part * inner:(part + 1) * inner]
        b, n, _ = tokens.shape
        return F.linear(tokens, w).reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def template_kv(self, z: Tensor) -> Tuple[Tensor, Tensor]:
        """Template features (B,H,W,C) -> keys, values (B, heads, Lz, head_dim)."""
        t = self.norm1(z.flatten(1, 2))
        return self._split(t, 1), self._split(t, 2)

    def forward(self, x: Tensor, k_z: Tensor, v_z: Tensor) -> Tensor:
        b, h, w, c = x.shape
        t = x.reshape(b, h * w, c)
        u = self.norm1(t)
        q = self._split(u, 0)
        k = torch.cat([self._split(u, 1), k_z], dim=2)
        v = torch.cat([self._split(u, 2), v_z], dim=2)
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, h * w, -1)
        t = t + self.proj(out)
        t = t + self.mlp(self.norm2(t))
        return t.reshape(b, h, w, c)


class ConvBnReLU(nn.Sequential):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_dim)
        self.relu = nn.ReLU(inplace=True)


class CornerHead(nn.Module):
    """Two conv towers scoring top-left and bottom-right corners; soft-argmax to a box."""

    def __init__(self, in_dim: int, feature_size: int, stride: int,
                 widths: Tuple[int, ...] = (256, 128, 64, 32)) -> None:
        super().__init__()
        self.feature_size = feature_size
        self.tl = self._tower(in_dim, widths)
        self.br = self._tower(in_dim, widths)
        # Cell (i, j) sits at (j * stride, i * stride) in crop pixels, normalised by the crop size.
        cells = torch.arange(feature_size, dtype=torch.float32) * stride
        crop = float(feature_size * stride)
        self.register_buffer("coord_x", cells.repeat(feature_size) / crop, persistent=False)
        self.register_buffer("coord_y", cells.repeat_interleave(feature_size) / crop, persistent=False)

    @staticmethod
    def _tower(in_dim: int, widths: Tuple[int, ...]) -> nn.Sequential:
        dims = (in_dim,) + tuple(widths)
        layers = [ConvBnReLU(a, b) for a, b in zip(dims[:-1], dims[1:])]
        return nn.Sequential(*layers, nn.Conv2d(dims[-1], 1, 1))

    def _soft_argmax(self, tower: nn.Module, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        prob = torch.softmax(tower(x).flatten(1), dim=1)
        return prob @ self.coord_x, prob @ self.coord_y, prob

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """x (B,C,F,F) -> boxes (B,4) normalised (cx,cy,w,h), prob_tl, prob_br (B, F*F)."""
        x0, y0, prob_tl = self._soft_argmax(self.tl, x)
        x1, y1, prob_br = self._soft_argmax(self.br, x)
        boxes = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=1)
        return boxes, prob_tl, prob_br


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

