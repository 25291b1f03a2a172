"""Build and read the messages of a replay (rosbags message objects, no ROS needed)."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from asymtrack_ros.bag.encodings import rgb_to_jpeg, rgb_to_raw
from asymtrack_ros.bag.types import typestore
from asymtrack_ros.stamps import split_ns

Box = Tuple[float, float, float, float]
TRACK_CLASS = "target"


def _t(name: str) -> Any:
    return typestore().types[name]


def header(stamp_ns: int, frame_id: str = "") -> Any:
    sec, nanosec = split_ns(stamp_ns)
    time = _t("builtin_interfaces/msg/Time")(sec=sec, nanosec=nanosec)
    return _t("std_msgs/msg/Header")(stamp=time, frame_id=frame_id)


def bbox(box: Sequence[float]) -> Any:
    x, y, w, h = (float(v) for v in box)
    point = _t("vision_msgs/msg/Point2D")(x=x + 0.5 * w, y=y + 0.5 * h)
    pose = _t("vision_msgs/msg/Pose2D")(position=point, theta=0.0)
    return _t("vision_msgs/msg/BoundingBox2D")(center=pose, size_x=w, size_y=h)


def box_of(bbox_msg: Any) -> Box:
    """BoundingBox2D (centre, size) -> (x, y, w, h)."""
    w, h = float(bbox_msg.size_x), float(bbox_msg.size_y)
    c = bbox_msg.center.position
    return (float(c.x) - 0.5 * w, float(c.y) - 0.5 * h, w, h)


def _hypothesis(score: float, class_id: str) -> Any:
    point = _t("geometry_msgs/msg/Point")(x=0.0, y=0.0, z=0.0)
    quat = _t("geometry_msgs/msg/Quaternion")(x=0.0, y=0.0, z=0.0, w=1.0)
    pose = _t("geometry_msgs/msg/PoseWithCovariance")(
        pose=_t("geometry_msgs/msg/Pose")(position=point, orientation=quat),
        covariance=np.zeros(36, np.float64))
    hyp = _t("vision_msgs/msg/ObjectHypothesis")(class_id=class_id, score=float(score))
    return _t("vision_msgs/msg/ObjectHypothesisWithPose")(hypothesis=hyp, pose=pose)


def detection(stamp: int, frame_id: str, box: Sequence[float], score: float = 1.0,
              class_id: str = TRACK_CLASS, track_id: str = "") -> Any:
    return _t("vision_msgs/msg/Detection2D")(header=header(stamp, frame_id),
                                              results=[_hypothesis(score, class_id)],
                                              bbox=bbox(box), id=track_id)


def detection_array(stamp: int, frame_id: str, detections: List[Any]) -> Any:
    return _t("vision_msgs/msg/Detection2DArray")(header=header(stamp, frame_id), detections=detections)


def track_status(stamp: int, frame_id: str, state: int, track_id: str, box: Optional[Sequence[float]],
                 confidence: float, latency_ms: float, inference_ms: float, frames_since_init: int) -> Any:
    return _t("asymtrack_msgs/msg/TrackStatus")(
        header=header(stamp, frame_id), state=int(state), track_id=track_id,
        bbox=bbox(box if box is not None else (0.0, 0.0, 0.0, 0.0)), confidence=float(confidence),
        latency_ms=float(latency_ms), inference_ms=float(inference_ms),
        frames_since_init=int(frames_since_init))


def compressed_image(stamp: int, frame_id: str, rgb: np.ndarray, quality: int = 90) -> Any:
    data = np.frombuffer(rgb_to_jpeg(rgb, quality), np.uint8)
    return _t("sensor_msgs/msg/CompressedImage")(header=header(stamp, frame_id),
                                                  format="rgb8; jpeg compressed bgr8", data=data)


def raw_image(stamp: int, frame_id: str, rgb: np.ndarray, encoding: str = "rgb8") -> Any:
    data = np.frombuffer(rgb_to_raw(rgb, encoding), np.uint8)
    h, w = rgb.shape[:2]
    return _t("sensor_msgs/msg/Image")(header=header(stamp, frame_id), height=h, width=w,
                                        encoding=encoding, is_bigendian=0, step=data.size // h, data=data)


def first_box(msg: Any) -> Optional[Box]:
    """The box of a Detection2D, or of a Detection2DArray's first detection (None if empty)."""
    if hasattr(msg, "detections"):
        return box_of(msg.detections[0].bbox) if msg.detections else None
    return box_of(msg.bbox)
