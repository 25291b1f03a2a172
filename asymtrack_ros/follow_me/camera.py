"""A camera model from sensor_msgs/CameraInfo fields: validation and undistortion of pixels.

Pixels map to normalised image coordinates (x, y) on the plane z = 1 of the camera optical frame
(x right, y down, z forward, REP-103/105). plumb_bob and rational_polynomial go through
cv2.undistortPoints, equidistant through cv2.fisheye.undistortPoints; an empty model or all-zero
coefficients is a pinhole camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Tuple

import cv2
import numpy as np

PINHOLE_MODELS = ("plumb_bob", "rational_polynomial")
FISHEYE_MODELS = ("equidistant",)


class CameraModelError(ValueError):
    """The CameraInfo cannot be used; the text says why."""


@dataclass(frozen=True)
class CameraModel:
    width: int
    height: int
    k: np.ndarray  # 3x3 float64
    d: np.ndarray  # distortion coefficients, float64
    distortion_model: str

    @property
    def fx(self) -> float:
        return float(self.k[0, 0])

    @property
    def fy(self) -> float:
        return float(self.k[1, 1])

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 2) pixel coordinates -> (N, 2) normalised coordinates on the plane z = 1."""
        points = np.asarray(pixels, np.float64).reshape(-1, 1, 2)
        if not np.any(self.d):
            x = (points[:, 0, 0] - self.k[0, 2]) / self.fx
            y = (points[:, 0, 1] - self.k[1, 2]) / self.fy
            return np.stack([x, y], axis=1)
        if self.distortion_model in FISHEYE_MODELS:
            out = cv2.fisheye.undistortPoints(points, self.k, self.d[:4].reshape(1, 4))
        else:
            out = cv2.undistortPoints(points, self.k, self.d)
        return np.asarray(out, np.float64).reshape(-1, 2)

    def ray(self, u: float, v: float) -> np.ndarray:
        """Unit vector from the optical centre through pixel (u, v)."""
        x, y = self.undistort(np.array([[u, v]]))[0]
        vector = np.array([x, y, 1.0])
        return vector / np.linalg.norm(vector)


def _finite(values: Sequence[float], what: str) -> np.ndarray:
    array = np.asarray(values, np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise CameraModelError(f"{what} has non-finite values: {array.tolist()}")
    return array


def camera_model(width: int, height: int, k: Sequence[float], d: Sequence[float],
                 distortion_model: str, binning: Tuple[int, int] = (0, 0),
                 roi: Tuple[int, int, int, int] = (0, 0, 0, 0)) -> CameraModel:
    """A validated model from CameraInfo's width, height, k (row-major 3x3), d, distortion_model,
    binning (x, y) and roi (x_offset, y_offset, width, height); raises CameraModelError."""
    if width <= 0 or height <= 0:
        raise CameraModelError(f"CameraInfo size is {width}x{height}")
    kk = _finite(k, "K")
    if kk.size != 9:
        raise CameraModelError(f"K has {kk.size} values, expected 9")
    kk = kk.reshape(3, 3)
    fx, fy, cx, cy = kk[0, 0], kk[1, 1], kk[0, 2], kk[1, 2]
    if fx <= 0 or fy <= 0:
        raise CameraModelError(f"K has no focal length (fx={fx:g}, fy={fy:g}): camera not calibrated")
    if not (0 <= cx <= width and 0 <= cy <= height):
        raise CameraModelError(f"principal point ({cx:g}, {cy:g}) lies outside the {width}x{height} image")
    if max(binning) > 1 or any(roi[2:]) and tuple(roi) != (0, 0, width, height):
        raise CameraModelError(f"binning {tuple(binning)} / roi {tuple(roi)} are not supported: publish the "
                               "CameraInfo of the image as it is")
    dd = _finite(d, "D")
    model = distortion_model.strip().lower()
    if np.any(dd):
        if model in FISHEYE_MODELS and dd.size < 4:
            raise CameraModelError(f"equidistant needs 4 coefficients, got {dd.size}")
        if model not in PINHOLE_MODELS + FISHEYE_MODELS:
            raise CameraModelError(f"distortion model {distortion_model!r} is not supported; supported: "
                                   f"{', '.join(PINHOLE_MODELS + FISHEYE_MODELS)}")
        if model in PINHOLE_MODELS and dd.size not in (4, 5, 8, 12, 14):
            raise CameraModelError(f"{model} with {dd.size} coefficients (OpenCV takes 4, 5, 8, 12 or 14)")
    return CameraModel(int(width), int(height), kk, dd, model)


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    """The angle in radians between two 3-vectors (stable for small angles)."""
    return math.atan2(float(np.linalg.norm(np.cross(a, b))), float(np.dot(a, b)))
