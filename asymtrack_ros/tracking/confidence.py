"""A confidence in [0, 1] from the two corner distributions (the published model has no score head).

For each corner distribution p over the F x F cells, take the probability mass in the 3x3 window
around its most likely cell, ``m = sum(p[window(argmax p)])``, and rescale it so that a uniform
distribution scores 0 and a single-cell peak scores 1: ``c = clip((m - k/F^2) / (1 - k/F^2), 0, 1)``
with k the number of cells in the window (9, fewer at the border). The box confidence is the
geometric mean of the two corners, ``sqrt(c_tl * c_br)``: both corners must be sure.

The 3x3 window makes a peak that straddles two cells (target corner between cell corners) as
confident as a single-cell one, while mass spread over the map (target occluded or gone, or a
distractor) lowers it.
"""

from __future__ import annotations

import math

import numpy as np


def peak_confidence(prob: np.ndarray, radius: int = 1) -> float:
    """Normalised mass of the (2r+1)^2 window around the argmax of one F*F distribution."""
    p = np.asarray(prob, np.float64).reshape(-1)
    side = math.isqrt(p.size)
    if side * side != p.size or side == 0:
        raise ValueError(f"a corner distribution must have F*F cells, got {p.size}")
    if not np.all(np.isfinite(p)):
        return 0.0
    total = float(p.sum())
    if total <= 0:
        return 0.0
    grid = p.reshape(side, side) / total
    i, j = divmod(int(np.argmax(grid)), side)
    window = grid[max(i - radius, 0):i + radius + 1, max(j - radius, 0):j + radius + 1]
    uniform = window.size / grid.size
    if uniform >= 1.0:
        return 1.0
    return float(min(max((float(window.sum()) - uniform) / (1.0 - uniform), 0.0), 1.0))


def corner_confidence(prob_tl: np.ndarray, prob_br: np.ndarray, radius: int = 1) -> float:
    """Geometric mean of the two corners' peak confidences, in [0, 1]."""
    return math.sqrt(peak_confidence(prob_tl, radius) * peak_confidence(prob_br, radius))
