"""sensor_msgs Image / CompressedImage -> RGB uint8 HxWx3, with clear errors for bad input.

cv_bridge does the colour conversion when it is importable (as on a ROS install); otherwise an
equivalent numpy + OpenCV path does (pip installs, CI). Both run after the same validation, so an
unsupported encoding, a step/size mismatch or empty data raise ``ImageConversionError`` either way.
"""

from __future__ import annotations

import array
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

# encoding -> (channels, bytes per channel, cv2 code to RGB or None for a plain reshuffle)
_ENCODINGS: Dict[str, Tuple[int, int, Optional[int]]] = {
    "rgb8": (3, 1, None),
    "bgr8": (3, 1, cv2.COLOR_BGR2RGB),
    "rgba8": (4, 1, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, 1, cv2.COLOR_BGRA2RGB),
    "mono8": (1, 1, cv2.COLOR_GRAY2RGB),
    "mono16": (1, 2, None),
    "yuv422": (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    "uyvy": (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": (2, 1, cv2.COLOR_YUV2RGB_YUYV),
    "yuyv": (2, 1, cv2.COLOR_YUV2RGB_YUYV),
    # OpenCV names Bayer patterns by the second row's first two pixels (as cv_bridge maps them).
    "bayer_rggb8": (1, 1, cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": (1, 1, cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": (1, 1, cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": (1, 1, cv2.COLOR_BayerGB2RGB),
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)

_UNSET: Any = object()
_bridge: Any = _UNSET


class ImageConversionError(ValueError):
    """The message cannot be turned into an RGB image; the text says why."""


def _cv_bridge() -> Any:
    """A shared CvBridge, or None when cv_bridge is not importable."""
    global _bridge
    if _bridge is _UNSET:
        try:
            from cv_bridge import CvBridge
            _bridge = CvBridge()
        except Exception:  # ImportError, or a cv_bridge built against another numpy/OpenCV
            _bridge = None
    return _bridge


def cv_bridge_available() -> bool:
    return _cv_bridge() is not None


def _buffer(data: Any) -> np.ndarray:
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _check_image(msg: Any) -> Tuple[int, int, int, int, Optional[int], np.ndarray]:
    encoding = msg.encoding.strip().lower()
    if encoding not in _ENCODINGS:
        raise ImageConversionError(f"unsupported image encoding {msg.encoding!r}; supported: "
                                   f"{', '.join(SUPPORTED_ENCODINGS)}")
    channels, depth, code = _ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = _buffer(msg.data)
    if height == 0 or width == 0 or data.size == 0:
        raise ImageConversionError(f"empty image ({width}x{height}, {data.size} bytes of data)")
    if encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv") and width % 2:
        raise ImageConversionError(f"{encoding} needs an even width, got {width}")
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is smaller than width x bytes per pixel "
                                   f"({width} x {channels * depth} = {row_bytes}) for {encoding}")
    if data.size != step * height:
        raise ImageConversionError(f"data size {data.size} does not match step x height "
                                   f"({step} x {height} = {step * height})")
    return height, width, step, row_bytes, code, data


def image_to_rgb(msg: Any, use_cv_bridge: bool = True) -> np.ndarray:
    """Convert a sensor_msgs/Image to RGB uint8 HxWx3 (see ``SUPPORTED_ENCODINGS``)."""
    height, width, step, row_bytes, code, data = _check_image(msg)
    bridge = _cv_bridge() if use_cv_bridge else None
    if bridge is not None:
        try:
            rgb = bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
        except Exception as exc:
            raise ImageConversionError(f"cv_bridge cannot convert {msg.encoding}: {exc}") from exc
        return np.asarray(rgb, dtype=np.uint8)
    rows = data.reshape(height, step)[:, :row_bytes]
    encoding = msg.encoding.strip().lower()
    if encoding == "mono16":
        mono = rows.view(">u2" if msg.is_bigendian else "<u2").reshape(height, width)
        return cv2.cvtColor((mono >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    pixels = rows.reshape(height, width, -1)
    if code is None:
        return np.ascontiguousarray(pixels)
    if pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(pixels), code)


def compressed_to_rgb(msg: Any, use_cv_bridge: bool = True) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG, PNG, ...) to RGB uint8 HxWx3."""
    data = _buffer(msg.data)
    if data.size == 0:
        raise ImageConversionError("empty compressed image")
    if "compresseddepth" in msg.format.lower():
        raise ImageConversionError(f"unsupported compressed format {msg.format!r} (a depth image)")
    bridge = _cv_bridge() if use_cv_bridge else None
    if bridge is not None:
        try:
            return np.asarray(bridge.compressed_imgmsg_to_cv2(msg, desired_encoding="rgb8"), np.uint8)
        except Exception as exc:
            raise ImageConversionError(f"cv_bridge cannot decode {msg.format!r}: {exc}") from exc
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageConversionError(f"cannot decode compressed image (format {msg.format!r}, "
                                   f"{data.size} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def make_image(pixels: np.ndarray, encoding: str, header: Any = None, is_bigendian: bool = False) -> Any:
    """Pack an already encoded HxW or HxWxC array into a sensor_msgs/Image (no conversion)."""
    from sensor_msgs.msg import Image

    pixels = np.ascontiguousarray(pixels)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(bool(is_bigendian))
    msg.step = int(pixels.strides[0])
    msg.data = array.array("B", pixels.tobytes())
    return msg
