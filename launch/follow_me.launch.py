"""The tracker with what a follow-me controller steers by, and optionally the MAVLink bridge.

ros2 launch asymtrack_ros follow_me.launch.py image_topic:=/camera/color/image_raw \
    camera_info_topic:=/camera/color/camera_info \
    depth_topic:=/camera/aligned_depth_to_color/image_raw mavlink:=true \
    mavlink_url:=udpin:0.0.0.0:14580 namespace:=uav1
The node publishes target_bearing (asymtrack_msgs/TargetBearing), target_point (with a depth topic),
image_markers and, by argument, debug_image/compressed; the bridge answers a ground station's
camera tracking commands. docs/FOLLOW_ME.md describes the topics, frames and messages.
The tracker is a lifecycle node: this launch configures it (loads the model), then activates it, unless
lifecycle_manager:=true, where an external manager (nav2_lifecycle_manager, ...) does.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from asymtrack_ros.ros import lifecycle_launch

PACKAGE = "asymtrack_ros"
EXECUTABLE = "asymtrack_node"
BRIDGE = "asymtrack_mavlink_bridge"
VARIANTS = {"t": "t", "tiny": "t", "s": "s", "small": "s", "b": "b", "base": "b"}
ARGUMENTS = (
    ("variant", "t", "AsymTrack variant t|s|b: picks config/asymtrack_<variant>.yaml"),
    ("backend", "", "tensorrt|onnxruntime|pytorch|auto; empty: the preset's (auto)"),
    ("model", "", "model file (.pt, .onnx, .engine prefix); empty: the preset's"),
    ("image_topic", "/camera/image_raw", "sensor_msgs/Image input, remapped onto the node's 'image'"),
    ("camera_info_topic", "/camera/camera_info", "sensor_msgs/CameraInfo of the image (angles)"),
    ("depth_topic", "", "aligned depth image (16UC1 mm or 32FC1 m); empty: no 3D target"),
    ("publish_markers", "true", "publish image_markers (visualization_msgs/ImageMarker)"),
    ("debug_image_compressed", "false", "publish debug_image/compressed (JPEG)"),
    ("jpeg_quality", "80", "JPEG quality of debug_image/compressed"),
    ("namespace", "", "namespace of the nodes and their topics"),
    ("params_file", "", "ROS parameters file for the tracker; empty: the variant's preset"),
    ("mavlink", "false", "start the MAVLink camera-tracking bridge (needs pymavlink)"),
    ("mavlink_url", "udpin:0.0.0.0:14580", "bridge endpoint: udpin:HOST:PORT, udpout:HOST:PORT or a "
     "serial device"),
    ("serial_baud", "57600", "baud rate of a serial mavlink_url"),
    ("system_id", "1", "MAVLink system id of the camera (the vehicle's)"),
    ("component_id", "100", "MAVLink component id of the camera (MAV_COMP_ID_CAMERA = 100)"),
    ("lifecycle_manager", "false", "true: an external lifecycle manager (such as nav2_lifecycle_manager) "
     "configures and activates the tracker, which starts unconfigured; false: this launch does"),
)


def _true(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _launch(context, *args, **kwargs):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    variant = VARIANTS.get(value["variant"].strip().lower())
    if variant is None:
        raise RuntimeError(f"variant must be one of {sorted(VARIANTS)}, got {value['variant']!r}")
    params_file = value["params_file"] or os.path.join(
        get_package_share_directory(PACKAGE), "config", f"asymtrack_{variant}.yaml")
    overrides = {name: value[name] for name in ("backend", "model") if value[name]}
    overrides.update({
        "publish_bearing": True,
        "camera_info_topic": value["camera_info_topic"],
        "depth_topic": value["depth_topic"],
        "publish_markers": _true(value["publish_markers"]),
        "debug_image_compressed": _true(value["debug_image_compressed"]),
        "jpeg_quality": int(value["jpeg_quality"]),
    })
    image_topic = value["image_topic"]
    tracker = LifecycleNode(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=EXECUTABLE,
        namespace=value["namespace"],
        parameters=[params_file, overrides, lifecycle_launch.PARAMETERS],
        remappings=[("image", image_topic), ("image/compressed", f"{image_topic}/compressed")],
        output="screen",
        emulate_tty=True,
    )
    actions = [tracker]
    if not _true(value["lifecycle_manager"]):
        actions += lifecycle_launch.drive_transitions(tracker)
    if _true(value["mavlink"]):
        actions.append(Node(
            package=PACKAGE,
            executable=BRIDGE,
            name=BRIDGE,
            namespace=value["namespace"],
            parameters=[{
                "mavlink_url": value["mavlink_url"],
                "serial_baud": int(value["serial_baud"]),
                "system_id": int(value["system_id"]),
                "component_id": int(value["component_id"]),
                "tracker_node": EXECUTABLE,
                "camera_info_topic": value["camera_info_topic"],
            }],
            output="screen",
            emulate_tty=True,
        ))
    return actions


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default, description=description)
                for name, default, description in ARGUMENTS]
    return LaunchDescription(declared + [OpaqueFunction(function=_launch)])
