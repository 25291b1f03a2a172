"""Image / CompressedImage payloads -> RGB uint8 HxWx3, with clear errors for bad input (ROS-free).

Messages are duck-typed: a raw image is anything with ``encoding``, ``height``, ``width``,
``step``, ``data`` and ``is_bigendian`` (sensor_msgs/Image, a ``rosbags`` message, a test
double), a compressed one anything with ``format`` and ``data``. Nothing here imports ROS.

cv_bridge does the colour conversion when it is importable (as on a ROS install) and the caller
allows it; otherwise an equivalent numpy + OpenCV path does (pip installs, CI, bags). Both run
after the same validation, so an unsupported encoding, a step/size mismatch or empty data raise
``ImageConversionError`` either way. cv_bridge gets only the encodings it knows, spelled as it
expects (it is case-sensitive and knows neither ``uyvy`` nor ``yuyv``); the YUV 4:2:2 encodings
are converted here, exactly as it would.

Sizes: with ``max_pixels``, an image whose width x height exceeds it is refused before any
conversion; for JPEG and PNG the size is read from the header, so a small file claiming a huge
image is refused before the decoder allocates for it.
"""

from __future__ import annotations

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
# ROS names (sensor_msgs/image_encodings.hpp): yuv422 is UYVY, yuv422_yuy2 is YUYV.
_ALIASES = {"uyvy": "yuv422", "yuyv": "yuv422_yuy2"}
_CONVERTED_HERE = ("yuv422", "yuv422_yuy2")
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

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


def _buffer(data: Any) -> np.ndarray:
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def check_pixels(width: int, height: int, max_pixels: Optional[int], what: str = "image") -> None:
    """Raise ImageConversionError when ``width`` x ``height`` exceeds ``max_pixels`` (None: no limit)."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageConversionError(f"{what} {width}x{height} ({width * height} pixels) exceeds "
                                   f"max_image_pixels ({max_pixels}): refused")


def compressed_size(data: Any) -> Optional[Tuple[int, int]]:
    """(width, height) from a JPEG or PNG header; None for other formats or a header cut short."""
    raw = _buffer(data)
    if raw.size >= 24 and bytes(raw[:8]) == _PNG_SIGNATURE and bytes(raw[12:16]) == b"IHDR":
        return int.from_bytes(bytes(raw[16:20]), "big"), int.from_bytes(bytes(raw[20:24]), "big")
    if raw.size < 4 or raw[0] != 0xFF or raw[1] != 0xD8:
        return None
    i = 2
    while i + 4 <= raw.size:
        if raw[i] != 0xFF:
            return None  # not a marker: corrupt, let the decoder say so
        marker = int(raw[i + 1])
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        if marker == 0xDA:  # start of scan before any frame header
            return None
        if marker in _JPEG_SOF:
            if i + 9 > raw.size:
                return None
            height = int(raw[i + 5]) << 8 | int(raw[i + 6])
            width = int(raw[i + 7]) << 8 | int(raw[i + 8])
            return width, height
        i += 2 + (int(raw[i + 2]) << 8 | int(raw[i + 3]))
    return None


def check_size(msg: Any, max_pixels: Optional[int]) -> None:
    """Refuse an Image or CompressedImage larger than ``max_pixels``, before any conversion."""
    if max_pixels is None:
        return
    if hasattr(msg, "format"):
        size = compressed_size(msg.data)
        if size is not None:
            check_pixels(size[0], size[1], max_pixels, f"compressed image ({msg.format or 'no format'})")
        return
    check_pixels(int(msg.width), int(msg.height), max_pixels)


def canonical_encoding(encoding: str) -> str:
    """The ROS spelling of an encoding: lower case, ``uyvy`` -> ``yuv422``, ``yuyv`` -> ``yuv422_yuy2``."""
    name = encoding.strip().lower()
    return _ALIASES.get(name, name)


def _check_image(msg: Any) -> Tuple[int, int, int, int, Optional[int], np.ndarray]:
    encoding = canonical_encoding(msg.encoding)
    if encoding not in _ENCODINGS:
        raise ImageConversionError(f"unsupported image encoding {msg.encoding!r}; supported: "
                                   f"{', '.join(SUPPORTED_ENCODINGS)}")
    channels, depth, code = _ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = _buffer(msg.data)
    if height == 0 or width == 0 or data.size == 0:
        raise ImageConversionError(f"empty image ({width}x{height}, {data.size} bytes of data)")
    if encoding in _CONVERTED_HERE and width % 2:
        raise ImageConversionError(f"{encoding} needs an even width, got {width}")
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is smaller than width x bytes per pixel "
                                   f"({width} x {channels * depth} = {row_bytes}) for {encoding}")
    if data.size != step * height:
        raise ImageConversionError(f"data size {data.size} does not match step x height "
                                   f"({step} x {height} = {step * height})")
    return height, width, step, row_bytes, code, data


def image_to_rgb(msg: Any, use_cv_bridge: bool = True, max_pixels: Optional[int] = None) -> np.ndarray:
    """A raw image message (sensor_msgs/Image fields) -> RGB uint8 HxWx3 (see ``SUPPORTED_ENCODINGS``)."""
    check_size(msg, max_pixels)
    height, width, step, row_bytes, code, data = _check_image(msg)
    encoding = canonical_encoding(msg.encoding)
    bridge = _cv_bridge() if use_cv_bridge else None
    if bridge is not None and msg.encoding == encoding and encoding not in _CONVERTED_HERE:
        try:
            rgb = bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
        except Exception as exc:
            raise ImageConversionError(f"cv_bridge cannot convert {msg.encoding}: {exc}") from exc
        return np.asarray(rgb, dtype=np.uint8)
    rows = data.reshape(height, step)[:, :row_bytes]
    if encoding == "mono16":
        mono = rows.view(">u2" if msg.is_bigendian else "<u2").reshape(height, width)
        return cv2.cvtColor((mono >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    pixels = rows.reshape(height, width, -1)
    if code is None:
        return np.ascontiguousarray(pixels)
    if pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(pixels), code)


def compressed_to_rgb(msg: Any, use_cv_bridge: bool = True, max_pixels: Optional[int] = None) -> np.ndarray:
    """Decode a compressed image message (CompressedImage fields: JPEG, PNG, ...) to RGB uint8 HxWx3."""
    data = _buffer(msg.data)
    if data.size == 0:
        raise ImageConversionError("empty compressed image")
    if "compresseddepth" in msg.format.lower():
        raise ImageConversionError(f"unsupported compressed format {msg.format!r} (a depth image)")
    check_size(msg, max_pixels)
    bridge = _cv_bridge() if use_cv_bridge else None
    if bridge is not None:
        try:
            rgb = np.asarray(bridge.compressed_imgmsg_to_cv2(msg, desired_encoding="rgb8"), np.uint8)
        except Exception as exc:
            raise ImageConversionError(f"cv_bridge cannot decode {msg.format!r}: {exc}") from exc
    else:
        rgb = _decode(data, msg.format)
    # formats without a header read above (BMP, WebP, TIFF...) are checked once decoded
    check_pixels(rgb.shape[1], rgb.shape[0], max_pixels, "decoded image")
    return rgb


def _decode(data: np.ndarray, fmt: str) -> np.ndarray:
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV allows
        raise ImageConversionError(f"cannot decode compressed image (format {fmt!r}, {data.size} bytes): "
                                   f"{str(exc).strip().splitlines()[-1]}") from None
    if bgr is None:
        raise ImageConversionError(f"cannot decode compressed image (format {fmt!r}, {data.size} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

