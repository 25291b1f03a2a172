"""The MAVLink camera protocol's tracking commands and status, as plain data (no pymavlink).

Numeric values are those of MAVLink's common.xml (checked against pymavlink's generated dialect
in the tests). Commands carry normalised image coordinates: 0..1, (0, 0) the top left corner.
- MAV_CMD_CAMERA_TRACK_RECTANGLE: top left and bottom right corners -> an init box.
- MAV_CMD_CAMERA_TRACK_POINT: a point and a radius (normalised by the image width) -> a square
  box of side 2 x radius x width centred on the point, or of ``default_size`` x the image's
  shorter side when the radius is 0 (one pixel: too small for a tracker's template).
Results: ACCEPTED; DENIED for parameters that can never work (NaN, a rectangle outside the image
or empty); TEMPORARILY_REJECTED while the image size is not known yet (no image received).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Optional, Sequence, Tuple

Box = Tuple[float, float, float, float]


class MavResult(IntEnum):
    ACCEPTED = 0
    TEMPORARILY_REJECTED = 1
    DENIED = 2
    UNSUPPORTED = 3
    FAILED = 4


class TrackingStatus(IntEnum):  # CAMERA_TRACKING_STATUS_FLAGS (bitmask)
    IDLE = 0
    ACTIVE = 1
    ERROR = 2
    COASTING = 8


class TrackingMode(IntEnum):  # CAMERA_TRACKING_MODE
    NONE = 0
    POINT = 1
    RECTANGLE = 2


class TargetData(IntEnum):  # CAMERA_TRACKING_TARGET_DATA (bitmask)
    NONE = 0
    IN_STATUS = 4


CAP_HAS_TRACKING_POINT = 512
CAP_HAS_TRACKING_RECTANGLE = 1024
MIN_BOX_PIXELS = 4.0


class CommandRejected(ValueError):
    """A tracking command that cannot be applied: ``result`` is the COMMAND_ACK result."""

    def __init__(self, result: MavResult, reason: str):
        super().__init__(reason)
        self.result = result


def _require_size(size: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    if size is None:
        raise CommandRejected(MavResult.TEMPORARILY_REJECTED,
                              "no image received yet: the image size is unknown")
    return size


def _require_finite(values: Sequence[float], what: str) -> None:
    if not all(math.isfinite(v) for v in values):
        raise CommandRejected(MavResult.DENIED, f"{what} has non-finite parameters {list(values)}")


def rectangle_to_box(top_x: float, top_y: float, bottom_x: float, bottom_y: float,
                     size: Optional[Tuple[int, int]]) -> Box:
    """MAV_CMD_CAMERA_TRACK_RECTANGLE parameters -> (x, y, w, h) pixels of a ``size`` (w, h) image."""
    width, height = _require_size(size)
    _require_finite((top_x, top_y, bottom_x, bottom_y), "rectangle")
    if not all(0.0 <= v <= 1.0 for v in (top_x, top_y, bottom_x, bottom_y)):
        raise CommandRejected(MavResult.DENIED,
                              f"rectangle ({top_x:g}, {top_y:g})-({bottom_x:g}, {bottom_y:g}) lies outside "
                              "the image (coordinates must be in 0..1)")
    box = (top_x * width, top_y * height, (bottom_x - top_x) * width, (bottom_y - top_y) * height)
    if box[2] < MIN_BOX_PIXELS or box[3] < MIN_BOX_PIXELS:
        raise CommandRejected(MavResult.DENIED,
                              f"rectangle is {box[2]:.1f}x{box[3]:.1f} pixels: the bottom right corner must "
                              f"be at least {MIN_BOX_PIXELS:g} pixels right of and below the top left")
    return box


def point_to_box(x: float, y: float, radius: float, size: Optional[Tuple[int, int]],
                 default_size: float) -> Box:
    """MAV_CMD_CAMERA_TRACK_POINT parameters -> a square box around the point, clipped to the image."""
    width, height = _require_size(size)
    _require_finite((x, y, radius), "point")
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0) or not 0.0 <= radius <= 1.0:
        raise CommandRejected(MavResult.DENIED, f"point ({x:g}, {y:g}) radius {radius:g} is outside 0..1")
    side = 2.0 * radius * width if radius > 0 else default_size * min(width, height)
    u, v = x * width, y * height
    x0, y0 = max(0.0, u - side / 2), max(0.0, v - side / 2)
    x1, y1 = min(float(width), u + side / 2), min(float(height), v + side / 2)
    if x1 - x0 < MIN_BOX_PIXELS or y1 - y0 < MIN_BOX_PIXELS:
        raise CommandRejected(MavResult.DENIED, f"the box around point ({x:g}, {y:g}) is smaller than "
                                                f"{MIN_BOX_PIXELS:g} pixels")
    return x0, y0, x1 - x0, y1 - y0


@dataclass(frozen=True)
class ImageStatus:
    """CAMERA_TRACKING_IMAGE_STATUS fields (NaN where unknown, as the message defines)."""

    tracking_status: int
    tracking_mode: int
    target_data: int
    point_x: float = math.nan
    point_y: float = math.nan
    radius: float = math.nan
    rec_top_x: float = math.nan
    rec_top_y: float = math.nan
    rec_bottom_x: float = math.nan
    rec_bottom_y: float = math.nan


def image_status(state: str, box: Optional[Sequence[float]], mode: TrackingMode,
                 size: Optional[Tuple[int, int]]) -> ImageStatus:
    """The tracker's ``state`` (IDLE, TRACKING, LOST) and box as CAMERA_TRACKING_IMAGE_STATUS.
    LOST is ACTIVE | COASTING with the last confident box; IDLE is IDLE with no target."""
    if state == "IDLE" or size is None:
        return ImageStatus(int(TrackingStatus.IDLE), int(TrackingMode.NONE), int(TargetData.NONE))
    flags = TrackingStatus.ACTIVE | (TrackingStatus.COASTING if state == "LOST" else 0)
    mode = mode if mode != TrackingMode.NONE else TrackingMode.RECTANGLE
    if box is None:
        return ImageStatus(int(flags), int(mode), int(TargetData.NONE))
    width, height = size
    x, y, w, h = (float(v) for v in box)
    if mode == TrackingMode.POINT:
        return ImageStatus(int(flags), int(mode), int(TargetData.IN_STATUS),
                           point_x=(x + w / 2) / width, point_y=(y + h / 2) / height,
                           radius=max(w, h) / 2 / width)
    return ImageStatus(int(flags), int(mode), int(TargetData.IN_STATUS),
                       rec_top_x=x / width, rec_top_y=y / height,
                       rec_bottom_x=(x + w) / width, rec_bottom_y=(y + h) / height)
