"""Line-of-sight angles, normalised image offset and angular size of a box.

Conventions (camera optical frame, REP-103/105: x right, y down, z forward), for the undistorted
ray (x, y, 1) through the box centre:
- azimuth = atan2(x, z): positive when the target is right of the optical axis;
- elevation = atan2(-y, hypot(x, z)): positive when the target is above it;
- angular width / height: the angle between the rays through the midpoints of the box's left and
  right (top and bottom) edges;
- offset: the box centre relative to the image centre, in [-1, 1] for a centre inside the image,
  positive right (offset_x) and down (offset_y), as the image axes; it needs no intrinsics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from asymtrack_ros.follow_me.camera import CameraModel, angle_between


@dataclass(frozen=True)
class Bearing:
    offset_x: float
    offset_y: float
    valid_angles: bool = False
    azimuth: float = math.nan
    elevation: float = math.nan
    angular_width: float = math.nan
    angular_height: float = math.nan
    centre_ray: Optional[Tuple[float, float]] = None  # undistorted (x, y) on z = 1


def box_centre(box: Sequence[float]) -> Tuple[float, float]:
    x, y, w, h = (float(v) for v in box)
    return x + 0.5 * w, y + 0.5 * h


def normalised_offset(box: Sequence[float], width: int, height: int) -> Tuple[float, float]:
    u, v = box_centre(box)
    return (u - 0.5 * width) / (0.5 * width), (v - 0.5 * height) / (0.5 * height)


def bearing(box: Sequence[float], width: int, height: int, camera: Optional[CameraModel] = None) -> Bearing:
    """The bearing of ``box`` (x, y, w, h pixels) in a ``width`` x ``height`` image; angles only with
    ``camera`` (whose size must be the image's)."""
    offset_x, offset_y = normalised_offset(box, width, height)
    if camera is None:
        return Bearing(offset_x, offset_y)
    x, y, w, h = (float(v) for v in box)
    u, v = box_centre(box)
    pixels = np.array([[u, v], [x, v], [x + w, v], [u, y], [u, y + h]])
    rays = np.concatenate([camera.undistort(pixels), np.ones((5, 1))], axis=1)
    cx, cy = rays[0, 0], rays[0, 1]
    return Bearing(
        offset_x, offset_y, True,
        azimuth=math.atan2(cx, 1.0),
        elevation=math.atan2(-cy, math.hypot(cx, 1.0)),
        angular_width=angle_between(rays[1], rays[2]),
        angular_height=angle_between(rays[3], rays[4]),
        centre_ray=(float(cx), float(cy)),
    )
