"""Annotated stills (COCO) as training pairs: one labelled object, the photo moved between frames.

The template frame is the photo with one of its boxes; the search frame is the same photo shifted
(Gaussian, sigma ``shift`` x the object's side), rescaled about the object (log-sigma ``scale``)
and relit. As the paper does with COCO, the motion is synthetic and the box exact.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import cv2
import numpy as np

from asymtrack_ros.datasets.types import StillImage
from asymtrack_ros.training.stills import Pair, StillsRenderer


def usable_boxes(boxes: np.ndarray, shape: Tuple[int, int], min_side: float = 8.0,
                 max_area: float = 0.6) -> np.ndarray:
    """Indices of boxes big enough to track and not filling the photo."""
    h, w = shape
    bw, bh = boxes[:, 2], boxes[:, 3]
    ok = np.isfinite(boxes).all(axis=1) & (bw >= min_side) & (bh >= min_side)
    return np.flatnonzero(ok & (bw * bh <= max_area * w * h))


def move(image: np.ndarray, box: np.ndarray, scale: float, shift: np.ndarray) -> Pair:
    """``image`` scaled by ``scale`` about the box centre, then shifted: (frame, box)."""
    centre = box[:2] + box[2:] / 2
    offset = centre + shift - scale * centre
    matrix = np.array([[scale, 0.0, offset[0]], [0.0, scale, offset[1]]])
    fill = tuple(float(v) for v in image.reshape(-1, 3).mean(axis=0))
    frame = cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    wh = box[2:] * scale
    return frame, np.concatenate([centre + shift - wh / 2, wh])


class BoxStillsRenderer:
    """Template/search pairs from photos with object boxes (see module docstring)."""

    def __init__(self, images: Sequence[StillImage], shift: float = 0.5, scale: float = 0.15,
                 min_side: float = 8.0):
        if not images:
            raise ValueError("BoxStillsRenderer needs at least one annotated image")
        self.images: List[StillImage] = list(images)
        self.shift, self.scale, self.min_side = shift, scale, min_side

    def render(self, rng: np.random.Generator, attempts: int = 10) -> Pair:
        for _ in range(attempts):
            image, boxes = self.images[int(rng.integers(len(self.images)))].load()
            usable = usable_boxes(boxes, image.shape[:2], self.min_side)
            if usable.size:
                break
        else:
            raise ValueError("no usable box (side >= min_side) in the sampled images")
        box = boxes[int(usable[rng.integers(usable.size)])]
        side = float(np.sqrt(box[2] * box[3]))
        frame_x, box_x = move(image, box, float(np.exp(rng.normal(0.0, self.scale))),
                              rng.normal(0.0, self.shift * side, 2))
        return image, box.copy(), StillsRenderer._relight(rng, frame_x), box_x
