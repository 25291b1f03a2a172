"""Warm start of AsymTrack's backbone by feature distillation from ImageNet EfficientNet-Lite0.

No ImageNet weights of AsymTrack's own backbone can be had, so the backbone learns to predict
the teacher's features: at strides 4, 8, 16 and 32 a temporary 1x1 convolution maps the
student's feature map to the teacher's channels, and the loss is the mean squared error against
the teacher's map normalised over channels (LayerNorm without weights, so that every stride
counts alike). The student runs its search path on a single image without the template parts
(ETM and template attention need a template; they are trained with the tracker). After
distillation the projections are dropped: the result is a plain AsymTrack (random neck and head)
for ``asymtrack-train --init``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asymtrack_ros.model.asymtrack import STAGE_DIMS, AsymTrack
from asymtrack_ros.training.stills import load_photos
from asymtrack_ros.training.teacher import INPUT_MEAN, INPUT_STD, STRIDE_CHANNELS

STUDENT_CHANNELS = {4: STAGE_DIMS[0], 8: STAGE_DIMS[1], 16: STAGE_DIMS[2], 32: 256}


def student_features(model: AsymTrack, x: Tensor) -> Dict[int, Tensor]:
    """{stride: NCHW feature map} of the backbone on images ``x`` (normalised NCHW)."""
    out: Dict[int, Tensor] = {}
    h = model.stem(x.permute(0, 2, 3, 1))
    for stride, stage in zip((4, 8, 16), model.stages):
        h = stage.ope(stage.blocks(h))
        out[stride] = h.permute(0, 3, 1, 2)
        h = stage.downsample(h)
    out[32] = h.permute(0, 3, 1, 2)
    return out


class Distiller(nn.Module):
    """The student AsymTrack plus the temporary 1x1 projections onto the teacher's channels."""

    def __init__(self, student: AsymTrack, teacher: nn.Module) -> None:
        super().__init__()
        self.student, self.teacher = student, teacher
        self.proj = nn.ModuleDict({str(s): nn.Conv2d(STUDENT_CHANNELS[s], c, 1)
                                   for s, c in STRIDE_CHANNELS.items()})

    def loss(self, rgb: Tensor) -> Tuple[Tensor, Dict[str, float]]:
        """``rgb``: NCHW float in [0, 1]."""
        info = self.student.info
        mean = torch.tensor(info.mean, device=rgb.device).view(1, 3, 1, 1)
        std = torch.tensor(info.std, device=rgb.device).view(1, 3, 1, 1)
        with torch.no_grad():
            target = self.teacher.features((rgb - INPUT_MEAN) / INPUT_STD)
        student = student_features(self.student, (rgb - mean) / std)
        total = rgb.new_zeros(())
        stats: Dict[str, float] = {}
        for stride, t in target.items():
            t = F.layer_norm(t.permute(0, 2, 3, 1), t.shape[1:2]).permute(0, 3, 1, 2)
            p = self.proj[str(stride)](student[stride])
            part = F.mse_loss(F.interpolate(p, size=t.shape[-2:], mode="bilinear", align_corners=False)
                              if p.shape[-2:] != t.shape[-2:] else p, t)
            stats[f"mse_s{stride}"] = float(part.detach())
            total = total + part
        stats["loss"] = float(total.detach())
        return total, stats


def random_crop(rng: random.Random, photo: np.ndarray, size: int) -> np.ndarray:
    """A random square crop (30-100 % of the short side), resized to ``size``, maybe flipped."""
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.3, 1.0))
    y, x = rng.randint(0, h - side), rng.randint(0, w - side)
    crop = cv2.resize(photo[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def image_batch(photos: Sequence[np.ndarray], rng: random.Random, batch: int, size: int) -> Tensor:
    crops = np.stack([random_crop(rng, photos[rng.randrange(len(photos))], size) for _ in range(batch)])
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0


def load_images(folders: Sequence[str], max_side: int = 320) -> List[np.ndarray]:
    return load_photos([Path(f) for f in folders], max_side=max_side)
