"""The message types a replay reads and writes, registered with a ``rosbags`` typestore.

The base store is ROS 2 Jazzy's (``std_msgs``, ``sensor_msgs``, ``geometry_msgs``); vision_msgs
and ``asymtrack_msgs/msg/TrackStatus`` are added from their ``.msg`` texts, looked up in this order:
the source tree (``asymtrack_msgs/msg/``, ``ros_interfaces/vision_msgs/msg/``), the ament prefixes
of a sourced ROS install (``share/<pkg>/msg``), then the copies embedded below. Definitions in
``.msg`` form give the same RIHS01 type hashes as rosidl, so ``ros2 bag`` reads the bags we write.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, Optional

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
DETECTION_2D = "vision_msgs/msg/Detection2D"
DETECTION_2D_ARRAY = "vision_msgs/msg/Detection2DArray"
TRACK_STATUS = "asymtrack_msgs/msg/TrackStatus"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
BOX_TYPES = (DETECTION_2D, DETECTION_2D_ARRAY)

_REPO = Path(__file__).resolve().parents[2]
_VISION = ("Point2D", "Pose2D", "BoundingBox2D", "ObjectHypothesis", "ObjectHypothesisWithPose",
           "Detection2D", "Detection2DArray")

EMBEDDED: Dict[str, str] = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose":
        "ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n",
    "vision_msgs/msg/Detection2D":
        "std_msgs/Header header\nObjectHypothesisWithPose[] results\nBoundingBox2D bbox\nstring id\n",
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nDetection2D[] detections\n",
    TRACK_STATUS: (
        "uint8 IDLE=0\nuint8 TRACKING=1\nuint8 LOST=2\n"
        "std_msgs/Header header\nuint8 state\nstring track_id\nvision_msgs/BoundingBox2D bbox\n"
        "float32 confidence\nfloat32 latency_ms\nfloat32 inference_ms\nuint32 frames_since_init\n"),
}


def _candidates(msgtype: str) -> Iterator[Path]:
    package, _, name = msgtype.split("/")
    if package == "asymtrack_msgs":
        yield _REPO / package / "msg" / f"{name}.msg"
    else:
        yield _REPO / "ros_interfaces" / package / "msg" / f"{name}.msg"
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            yield Path(prefix) / "share" / package / "msg" / f"{name}.msg"


def msg_text(msgtype: str) -> str:
    """The ``.msg`` definition of ``msgtype`` (``pkg/msg/Name``) from the first place that has it."""
    for path in _candidates(msgtype):
        if path.is_file():
            return path.read_text()
    try:
        return EMBEDDED[msgtype]
    except KeyError:
        raise KeyError(f"no message definition for {msgtype}") from None


def own_types() -> Dict[str, object]:
    types: Dict[str, object] = {}
    for name in _VISION:
        types.update(get_types_from_msg(msg_text(f"vision_msgs/msg/{name}"), f"vision_msgs/msg/{name}"))
    types.update(get_types_from_msg(msg_text(TRACK_STATUS), TRACK_STATUS))
    return types


@lru_cache(maxsize=None)
def typestore(distro: Optional[str] = None) -> Typestore:
    """Jazzy's (or ``humble``'s) base typestore plus vision_msgs and TrackStatus."""
    store = get_typestore(Stores.ROS2_HUMBLE if distro == "humble" else Stores.ROS2_JAZZY)
    store.register(own_types())
    return store
