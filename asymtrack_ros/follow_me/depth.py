"""A robust depth of the target from an aligned depth image, and its 3D point.

The depth image must be registered to the colour image (same size and intrinsics, as a camera's
``aligned_depth_to_color`` topic). Depth is the z coordinate in the camera optical frame (as
REP-118 depth images are), not the range along the ray. The target's depth is the median over
the central part of the box, ignoring invalid pixels (0, NaN, inf, negative); its spread is the
median absolute deviation (MAD) of the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")


class DepthImageError(ValueError):
    """The depth image cannot be used; the text says why."""


@dataclass(frozen=True)
class DepthEstimate:
    valid: bool
    depth: float = math.nan  # metres (z)
    spread: float = math.nan  # metres (MAD)
    valid_fraction: float = 0.0
    reason: str = ""


def depth_from_buffer(data: bytes, width: int, height: int, step: int, encoding: str,
                      is_bigendian: bool = False) -> np.ndarray:
    """A sensor_msgs/Image's fields -> HxW float32 metres, NaN where invalid; raises DepthImageError.
    16UC1 (and mono16) are millimetres, 32FC1 metres."""
    if encoding not in DEPTH_ENCODINGS:
        raise DepthImageError(f"depth encoding {encoding!r} is not supported; supported: "
                              f"{', '.join(DEPTH_ENCODINGS)}")
    size = 4 if encoding == "32FC1" else 2
    if width <= 0 or height <= 0 or step < width * size or len(data) != step * height:
        raise DepthImageError(f"depth image {width}x{height} {encoding}: step {step} and {len(data)} bytes "
                              "of data do not match")
    kind = ("f4" if size == 4 else "u2")
    dtype = np.dtype(kind).newbyteorder(">" if is_bigendian else "<")
    rows = np.frombuffer(bytes(data), np.uint8).reshape(height, step)[:, :width * size]
    values = np.ascontiguousarray(rows).view(dtype).reshape(height, width).astype(np.float32)
    if size == 2:
        values *= 0.001
    values[~np.isfinite(values) | (values <= 0)] = np.nan
    return values


def central_region(box: Sequence[float], fraction: float, width: int, height: int
                   ) -> Optional[Tuple[int, int, int, int]]:
    """Pixel bounds (x0, y0, x1, y1) of the box's central ``fraction`` (of its width and height),
    clipped to the image; None when nothing is left."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + 0.5 * w, y + 0.5 * h
    half_w, half_h = 0.5 * max(1.0, w * fraction), 0.5 * max(1.0, h * fraction)
    x0, x1 = max(0, int(math.floor(cx - half_w))), min(width, int(math.ceil(cx + half_w)))
    y0, y1 = max(0, int(math.floor(cy - half_h))), min(height, int(math.ceil(cy + half_h)))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def target_depth(depth_m: np.ndarray, box: Sequence[float], central_fraction: float = 0.5,
                 min_valid_fraction: float = 0.2) -> DepthEstimate:
    """Median and MAD of the valid depths (finite, > 0) in the box's central part, in metres."""
    height, width = depth_m.shape[:2]
    region = central_region(box, central_fraction, width, height)
    if region is None:
        return DepthEstimate(False, reason="the box lies outside the depth image")
    x0, y0, x1, y1 = region
    patch = depth_m[y0:y1, x0:x1].reshape(-1)
    values = patch[np.isfinite(patch) & (patch > 0)]
    fraction = values.size / patch.size
    if values.size == 0 or fraction < min_valid_fraction:
        return DepthEstimate(False, valid_fraction=fraction,
                             reason=f"{fraction:.0%} of the box centre has a valid depth "
                                    f"(minimum {min_valid_fraction:.0%})")
    median = float(np.median(values))
    spread = float(np.median(np.abs(values - median)))
    return DepthEstimate(True, median, spread, fraction)


def back_project(ray_xy: Tuple[float, float], depth: float) -> Tuple[float, float, float]:
    """The point at depth ``depth`` (z) on the undistorted ray (x, y, 1), in the optical frame."""
    return ray_xy[0] * depth, ray_xy[1] * depth, depth
