"""A cheap appearance signature of a box: a small grey patch and a hue/saturation histogram.

The network's corner maps say how sure it is of *a* box, not that the box holds the target: on
real video the demo model stays "sure" of boxes that drifted onto background or grew to the
whole frame. Comparing the box's content with the template's (normalised cross-correlation of a
16x16 grey patch, Bhattacharyya coefficient of a colour histogram) catches that for about 0.1 ms
per box, without a second network pass.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import cv2
import numpy as np

PATCH = 16
HIST_BINS = (8, 4)  # hue, saturation


class Signature(NamedTuple):
    grey: np.ndarray  # (PATCH*PATCH,) zero mean, unit norm (all zeros for a flat patch)
    hist: np.ndarray  # (8*4,) sums to 1


def _box_pixels(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    h, w = image.shape[:2]
    x, y, bw, bh = box
    x1, y1 = int(np.clip(np.floor(x), 0, w - 1)), int(np.clip(np.floor(y), 0, h - 1))
    x2, y2 = int(np.clip(np.ceil(x + bw), x1 + 1, w)), int(np.clip(np.ceil(y + bh), y1 + 1, h))
    return image[y1:y2, x1:x2]


def signature(image: np.ndarray, box: Sequence[float]) -> Signature:
    """Signature of the part of RGB ``image`` inside ``box`` (x, y, w, h), clipped to the image."""
    pixels = _box_pixels(image, box)
    small = cv2.resize(pixels, (PATCH, PATCH), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32).reshape(-1)
    grey -= grey.mean()
    norm = float(np.linalg.norm(grey))
    grey = grey / norm if norm > 1e-3 else np.zeros_like(grey)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, list(HIST_BINS), [0, 180, 0, 256]).reshape(-1)
    hist = hist / max(float(hist.sum()), 1.0)
    return Signature(grey, hist.astype(np.float32))


def ncc(a: Signature, b: Signature) -> float:
    """Normalised cross-correlation of the grey patches, in [-1, 1] (0 if either is flat)."""
    return float(np.clip(np.dot(a.grey, b.grey), -1.0, 1.0))


def hist_similarity(a: Signature, b: Signature) -> float:
    """Bhattacharyya coefficient of the colour histograms, in [0, 1]."""
    return float(np.clip(np.sqrt(a.hist * b.hist).sum(), 0.0, 1.0))
