"""The interfaces built by scripts/setup.sh: field lists equal upstream vision_msgs 4.x, and the
generated Python classes (real rosidl output) carry them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VISION_MSGS = REPO / "ros_interfaces" / "vision_msgs" / "msg"

# Upstream ros-perception/vision_msgs 4.1.1 (ROS 2 Humble/Jazzy), field for field.
UPSTREAM_VISION_MSGS = {
    "BoundingBox2D": ["vision_msgs/Pose2D center", "float64 size_x", "float64 size_y"],
    "BoundingBox2DArray": ["std_msgs/Header header", "vision_msgs/BoundingBox2D[] boxes"],
    "BoundingBox3D": ["geometry_msgs/Pose center", "geometry_msgs/Vector3 size"],
    "BoundingBox3DArray": ["std_msgs/Header header", "vision_msgs/BoundingBox3D[] boxes"],
    "Classification": ["std_msgs/Header header", "ObjectHypothesis[] results"],
    "Detection2D": ["std_msgs/Header header", "ObjectHypothesisWithPose[] results",
                    "BoundingBox2D bbox", "string id"],
    "Detection2DArray": ["std_msgs/Header header", "Detection2D[] detections"],
    "Detection3D": ["std_msgs/Header header", "ObjectHypothesisWithPose[] results",
                    "BoundingBox3D bbox", "string id"],
    "Detection3DArray": ["std_msgs/Header header", "Detection3D[] detections"],
    "LabelInfo": ["std_msgs/Header header", "vision_msgs/VisionClass[] class_map", "float32 threshold"],
    "ObjectHypothesis": ["string class_id", "float64 score"],
    "ObjectHypothesisWithPose": ["ObjectHypothesis hypothesis", "geometry_msgs/PoseWithCovariance pose"],
    "Point2D": ["float64 x", "float64 y"],
    "Pose2D": ["vision_msgs/Point2D position", "float64 theta"],
    "VisionClass": ["uint16 class_id", "string class_name"],
    "VisionInfo": ["std_msgs/Header header", "string method", "string database_location",
                   "int32 database_version"],
}


def msg_fields(path: Path) -> list:
    lines = (re.sub(r"#.*", "", line).strip() for line in path.read_text().splitlines())
    return [" ".join(line.split()) for line in lines if line]


def test_vision_msgs_definitions_match_upstream():
    found = {p.stem: msg_fields(p) for p in sorted(VISION_MSGS.glob("*.msg"))}
    assert found == UPSTREAM_VISION_MSGS


def test_track_status_definition():
    fields = msg_fields(REPO / "msg" / "TrackStatus.msg")
    assert fields[:3] == ["uint8 IDLE=0", "uint8 TRACKING=1", "uint8 LOST=2"]
    assert "std_msgs/Header header" in fields
    assert "vision_msgs/BoundingBox2D bbox" in fields


def test_generated_classes_carry_the_fields():
    vision_msgs = pytest.importorskip("vision_msgs.msg", reason="interfaces not built: run scripts/setup.sh")
    status_mod = pytest.importorskip("asymtrack_ros.msg", reason="interfaces not built: run scripts/setup.sh")
    assert vision_msgs.Detection2D.get_fields_and_field_types() == {
        "header": "std_msgs/Header", "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
        "bbox": "vision_msgs/BoundingBox2D", "id": "string"}
    status = status_mod.TrackStatus
    assert (status.IDLE, status.TRACKING, status.LOST) == (0, 1, 2)
    assert set(status.get_fields_and_field_types()) == {
        "header", "state", "track_id", "bbox", "confidence", "latency_ms", "inference_ms",
        "frames_since_init"}
