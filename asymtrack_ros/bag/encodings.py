"""Image payloads of bag messages <-> RGB uint8, without ROS.

Decoding is ``asymtrack_ros.images`` (duck-typed, so it takes ``rosbags`` message objects), always
on its numpy + OpenCV path; this module tells an unsupported encoding (``UnsupportedEncoding``)
from a damaged payload (``ValueError``), and encodes frames for bags.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from asymtrack_ros.images import SUPPORTED_ENCODINGS, ImageConversionError
from asymtrack_ros.images import compressed_to_rgb as _compressed_to_rgb
from asymtrack_ros.images import image_to_rgb as _image_to_rgb


class UnsupportedEncoding(ValueError):
    """The image's encoding is not one the tracker can use."""


def image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> RGB uint8; UnsupportedEncoding or ValueError (damaged data)."""
    if msg.encoding.strip().lower() not in SUPPORTED_ENCODINGS:
        raise UnsupportedEncoding(f"image encoding {msg.encoding!r} is not supported "
                                  f"(supported: {', '.join(SUPPORTED_ENCODINGS)})")
    try:
        return _image_to_rgb(msg, use_cv_bridge=False)
    except ImageConversionError as exc:
        raise ValueError(str(exc)) from None


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG, PNG, ...) -> RGB uint8."""
    if "compresseddepth" in msg.format.lower().replace(" ", ""):
        raise UnsupportedEncoding(f"compressed depth images ({msg.format!r}) are not supported")
    try:
        return _compressed_to_rgb(msg, use_cv_bridge=False)
    except ImageConversionError as exc:
        raise ValueError(str(exc)) from None


def rgb_to_raw(image: np.ndarray, encoding: str = "rgb8") -> bytes:
    """RGB uint8 -> an rgb8 / bgr8 / mono8 payload (step = width * channels)."""
    enc = encoding.lower()
    if enc == "rgb8":
        out = image
    elif enc == "bgr8":
        out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif enc == "mono8":
        out = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    else:
        raise UnsupportedEncoding(f"cannot write encoding {encoding!r} (rgb8, bgr8 or mono8)")
    return np.ascontiguousarray(out, np.uint8).tobytes()


def rgb_to_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
