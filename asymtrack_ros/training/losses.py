"""The paper's box objective (L1 x5 + GIoU x2 on normalised boxes) and an optional corner term.

Boxes are normalised to the search crop. L1 is taken on the corners (x1, y1, x2, y2), as in the
OSTrack code base AsymTrack builds on. The optional corner term (weight 0 in the paper) is the
cross-entropy between each corner distribution and the bilinear split of the true corner over
its four nearest cells: its expectation is exactly the true corner, and it rewards the peaky
distributions that the tracker's corner confidence reads.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import Tensor


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def giou(pred: Tensor, target: Tensor, eps: float = 1e-7) -> Tuple[Tensor, Tensor]:
    """Generalised IoU and IoU of (N, 4) x1, y1, x2, y2 boxes (degenerate predictions allowed)."""
    area_p = (pred[:, 2] - pred[:, 0]).clamp(min=0) * (pred[:, 3] - pred[:, 1]).clamp(min=0)
    area_t = (target[:, 2] - target[:, 0]).clamp(min=0) * (target[:, 3] - target[:, 1]).clamp(min=0)
    lt = torch.max(pred[:, :2], target[:, :2])
    rb = torch.min(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    union = area_p + area_t - inter
    iou = inter / (union + eps)
    hull = (torch.max(pred[:, 2:], target[:, 2:]) - torch.min(pred[:, :2], target[:, :2])).clamp(min=0)
    hull_area = hull.prod(dim=1)
    return iou - (hull_area - union) / (hull_area + eps), iou


def corner_targets(points: Tensor, feature_size: int) -> Tensor:
    """(N, 2) normalised corners -> (N, F*F) bilinear weights on the cell grid (cell j at j/F)."""
    t = (points * feature_size).clamp(0, feature_size - 1)
    i0 = t.floor().clamp(max=feature_size - 2)
    frac = t - i0
    i0 = i0.long()
    n = points.shape[0]
    grid = points.new_zeros(n, feature_size, feature_size)
    rows = torch.arange(n, device=points.device)
    for dy in (0, 1):
        wy = frac[:, 1] if dy else 1 - frac[:, 1]
        for dx in (0, 1):
            wx = frac[:, 0] if dx else 1 - frac[:, 0]
            grid[rows, i0[:, 1] + dy, i0[:, 0] + dx] += wy * wx
    return grid.flatten(1)


def corner_loss(prob_tl: Tensor, prob_br: Tensor, target_xyxy: Tensor, eps: float = 1e-6) -> Tensor:
    """Cross-entropy of both corner distributions against their bilinear targets (mean over batch)."""
    feature_size = int(round(prob_tl.shape[1] ** 0.5))
    loss = prob_tl.new_zeros(())
    for prob, points in ((prob_tl, target_xyxy[:, :2]), (prob_br, target_xyxy[:, 2:])):
        target = corner_targets(points, feature_size)
        loss = loss - (target * torch.log(prob + eps)).sum(dim=1).mean()
    return loss / 2


def tracking_loss(outputs: Dict[str, Tensor], target: Tensor, l1_weight: float = 5.0,
                  giou_weight: float = 2.0, corner_weight: float = 0.0) -> Tuple[Tensor, Dict[str, float]]:
    """Weighted loss and its parts; ``target`` (B, 4) normalised (cx, cy, w, h)."""
    pred_xyxy = cxcywh_to_xyxy(outputs["boxes"])
    target_xyxy = cxcywh_to_xyxy(target)
    g, iou = giou(pred_xyxy, target_xyxy)
    giou_loss = (1 - g).mean()
    l1 = (pred_xyxy - target_xyxy).abs().mean()
    total = l1_weight * l1 + giou_weight * giou_loss
    corner: Optional[Tensor] = None
    if corner_weight > 0:
        corner = corner_loss(outputs["prob_tl"], outputs["prob_br"], target_xyxy)
        total = total + corner_weight * corner
    stats = {"loss": float(total.detach()), "l1": float(l1.detach()), "giou": float(giou_loss.detach()),
             "iou": float(iou.detach().mean())}
    if corner is not None:
        stats["corner"] = float(corner.detach())
    return total, stats
