"""The interfaces built by scripts/setup.sh: field lists equal upstream vision_msgs 4.x, the
package asymtrack_msgs holds this project's messages, and the generated Python classes (real
rosidl output) carry them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VISION_MSGS = REPO / "ros_interfaces" / "vision_msgs" / "msg"
OWN_MSGS = REPO / "asymtrack_msgs"

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


def manifest(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def test_messages_are_their_own_package():
    msgs = manifest(OWN_MSGS / "package.xml")
    assert msgs.get("format") == "3" and msgs.findtext("name") == "asymtrack_msgs"
    assert msgs.findtext("export/build_type") == "ament_cmake"
    assert msgs.findtext("member_of_group") == "rosidl_interface_packages"
    assert {"std_msgs", "geometry_msgs", "vision_msgs"} <= {d.text for d in msgs.iter("depend")}
    cmake = (OWN_MSGS / "CMakeLists.txt").read_text()
    assert "project(asymtrack_msgs)" in cmake
    assert sorted(re.findall(r'"(msg/\w+\.msg)"', cmake)) == sorted(
        f"msg/{p.name}" for p in (OWN_MSGS / "msg").glob("*.msg"))
    ros = manifest(REPO / "package.xml")
    assert ros.findtext("name") == "asymtrack_ros"
    assert "asymtrack_msgs" in {d.text for d in ros.iter("depend")}
    assert ros.find("member_of_group") is None and not (REPO / "msg").exists()
    assert "rosidl_generate_interfaces" not in (REPO / "CMakeLists.txt").read_text()


def test_track_status_definition():
    fields = msg_fields(OWN_MSGS / "msg" / "TrackStatus.msg")
    assert fields[:3] == ["uint8 IDLE=0", "uint8 TRACKING=1", "uint8 LOST=2"]
    assert "std_msgs/Header header" in fields
    assert "vision_msgs/BoundingBox2D bbox" in fields


def field_names(path: Path) -> set:
    """Names of the non-constant fields of a .msg file."""
    return {f.split()[1] for f in msg_fields(path) if "=" not in f}


def test_generated_classes_carry_the_fields():
    vision_msgs = pytest.importorskip("vision_msgs.msg", reason="interfaces not built: run scripts/setup.sh")
    own = pytest.importorskip("asymtrack_msgs.msg", reason="interfaces not built: run scripts/setup.sh")
    assert vision_msgs.Detection2D.get_fields_and_field_types() == {
        "header": "std_msgs/Header", "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
        "bbox": "vision_msgs/BoundingBox2D", "id": "string"}
    assert vision_msgs.LabelInfo.get_fields_and_field_types() == {
        "header": "std_msgs/Header", "class_map": "sequence<vision_msgs/VisionClass>",
        "threshold": "float"}
    status = own.TrackStatus
    assert (status.IDLE, status.TRACKING, status.LOST) == (0, 1, 2)
    assert set(status.get_fields_and_field_types()) == {
        "header", "state", "track_id", "bbox", "confidence", "latency_ms", "inference_ms",
        "frames_since_init"}
    for cls in (own.TrackStatus, own.TargetBearing):
        assert set(cls.get_fields_and_field_types()) == field_names(OWN_MSGS / "msg" / f"{cls.__name__}.msg")
        assert cls.__module__.startswith("asymtrack_msgs.msg."), cls.__module__
