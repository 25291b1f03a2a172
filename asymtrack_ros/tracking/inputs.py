"""Validation of the tracker's inputs: clear errors instead of failures deep inside numpy."""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

Box = Tuple[float, float, float, float]
# An init box may overhang the image, but one many times its size is a mistake (and its template crop
# would need gigabytes): at most this many times the image's width and height.
MAX_BOX_SCALE = 2.0


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as HxWx3 uint8: grey (HxW or HxWx1) is replicated, RGBA drops alpha."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        rgb = image
    elif image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        grey = image.reshape(image.shape[0], image.shape[1], 1)
        rgb = np.repeat(grey, 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        rgb = image[:, :, :3]
    else:
        raise ValueError(f"image must be HxW, HxWx1, HxWx3 or HxWx4, got shape {image.shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    return rgb


def check_box(box: Sequence[float], image_size: Tuple[int, int], what: str = "box",
              inside: bool = True) -> Box:
    """Validate an (x, y, w, h) box; with ``inside`` it must overlap the (W, H) image and be at most
    ``MAX_BOX_SCALE`` times its width and height."""
    try:
        values = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be 4 numbers (x, y, w, h), got {box!r}") from None
    if values.size != 4:
        raise ValueError(f"{what} must be 4 numbers (x, y, w, h), got {values.size}")
    x, y, w, h = (float(v) for v in values)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"{what} has non-finite values: {(x, y, w, h)}")
    if w <= 0 or h <= 0:
        raise ValueError(f"{what} must have positive width and height, got {(x, y, w, h)}")
    width, height = image_size
    if inside and (x >= width or y >= height or x + w <= 0 or y + h <= 0):
        raise ValueError(f"{what} {(x, y, w, h)} lies outside the {width}x{height} image")
    if inside and (w > MAX_BOX_SCALE * width or h > MAX_BOX_SCALE * height):
        raise ValueError(f"{what} {w:g}x{h:g} is more than {MAX_BOX_SCALE:g} times the size of the "
                         f"{width}x{height} image")
    return x, y, w, h


def clip_box(box: Sequence[float], width: int, height: int, margin: float) -> Box:
    """Clip to the image keeping at least ``margin`` pixels of width and height (published rule)."""
    x1, y1, w, h = box
    x2, y2 = x1 + w, y1 + h
    x1 = min(max(0.0, x1), width - margin)
    x2 = min(max(margin, x2), width)
    y1 = min(max(0.0, y1), height - margin)
    y2 = min(max(margin, y2), height)
    return float(x1), float(y1), float(max(margin, x2 - x1)), float(max(margin, y2 - y1))
