"""Tracker results <-> ROS messages (vision_msgs Detection2D/BoundingBox2D, TrackStatus), and
packing pixels into a sensor_msgs/Image. Converting images to RGB is ROS-free: asymtrack_ros.images."""

from __future__ import annotations

import array
import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np
from sensor_msgs.msg import Image
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

from asymtrack_msgs.msg import TrackStatus

Box = Tuple[float, float, float, float]


def make_image(pixels: np.ndarray, encoding: str, header: Any = None, is_bigendian: bool = False) -> Image:
    """Pack an already encoded HxW or HxWxC array into a sensor_msgs/Image (no conversion)."""
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


def box_to_bbox(box: Sequence[float]) -> BoundingBox2D:
    """(x, y, w, h) pixels -> BoundingBox2D (centre and size)."""
    x, y, w, h = (float(v) for v in box)
    bbox = BoundingBox2D()
    bbox.center.position.x = x + 0.5 * w
    bbox.center.position.y = y + 0.5 * h
    bbox.size_x, bbox.size_y = w, h
    return bbox


def bbox_to_box(bbox: BoundingBox2D) -> Box:
    """BoundingBox2D -> (x, y, w, h); raises ValueError for non-finite or empty boxes."""
    cx, cy = float(bbox.center.position.x), float(bbox.center.position.y)
    w, h = float(bbox.size_x), float(bbox.size_y)
    if not all(math.isfinite(v) for v in (cx, cy, w, h)):
        raise ValueError(f"box has non-finite values (centre {cx}, {cy}, size {w} x {h})")
    if w <= 0 or h <= 0:
        raise ValueError(f"box must have a positive size, got {w} x {h}")
    return cx - 0.5 * w, cy - 0.5 * h, w, h


def detections(header: Any, box: Optional[Sequence[float]], confidence: float, track_id: str,
               class_id: str) -> Detection2DArray:
    """One Detection2D for ``box``, or an empty array when ``box`` is None (IDLE, LOST)."""
    msg = Detection2DArray(header=header)
    if box is None:
        return msg
    det = Detection2D(header=header, bbox=box_to_bbox(box), id=track_id)
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = class_id
    hypothesis.hypothesis.score = float(confidence)
    det.results.append(hypothesis)
    msg.detections.append(det)
    return msg


def track_status(header: Any, state: int, track_id: str, box: Optional[Sequence[float]], confidence: float,
                 latency_ms: float, inference_ms: float, frames_since_init: int) -> TrackStatus:
    msg = TrackStatus(header=header, state=int(state), track_id=track_id)
    if box is not None:
        msg.bbox = box_to_bbox(box)
    msg.confidence = float(confidence)
    msg.latency_ms = float(latency_ms)
    msg.inference_ms = float(inference_ms)
    msg.frames_since_init = int(frames_since_init)
    return msg
