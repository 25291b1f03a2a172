"""Start the AsymTrack node with a variant preset from config/ and optional overrides.

ros2 launch asymtrack_ros tracker.launch.py variant:=t backend:=tensorrt \
    image_topic:=/camera/image_raw namespace:=uav1
The node is a lifecycle node: this launch configures it (loads the model), then activates it, unless
lifecycle_manager:=true, where an external manager (nav2_lifecycle_manager, ...) does.

Build or check the TensorRT engines before flight with the same folder:
ros2 run asymtrack_ros asymtrack_build_engine MODEL --cache-dir DIR --verify
then engine_cache_dir:=DIR here.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from asymtrack_ros.ros import lifecycle_launch

PACKAGE = "asymtrack_ros"
EXECUTABLE = "asymtrack_node"
VARIANTS = {"t": "t", "tiny": "t", "s": "s", "small": "s", "b": "b", "base": "b"}
ARGUMENTS = (
    ("variant", "t", "AsymTrack variant t|s|b: picks config/asymtrack_<variant>.yaml"),
    ("backend", "", "tensorrt|onnxruntime|pytorch|auto; empty: the preset's (auto)"),
    ("model", "", "model file (.pt, .onnx, .engine prefix); empty: the preset's"),
    ("image_topic", "/camera/image_raw", "sensor_msgs/Image input, remapped onto the node's 'image'"),
    ("namespace", "", "namespace of the node and its topics"),
    ("params_file", "", "ROS parameters file; empty: the variant's preset"),
    ("precision", "", "TensorRT precision fp16|fp32; empty: the preset's"),
    ("engine_cache_dir", "", "TensorRT engine folder, as built or checked by asymtrack_build_engine "
     "--cache-dir; empty: the preset's (beside the ONNX files)"),
    ("lifecycle_manager", "false", "true: an external lifecycle manager (such as nav2_lifecycle_manager) "
     "configures and activates the node, which starts unconfigured; false: this launch does"),
)


def _true(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _launch_node(context, *args, **kwargs):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    variant = VARIANTS.get(value["variant"].strip().lower())
    if variant is None:
        raise RuntimeError(f"variant must be one of {sorted(VARIANTS)}, got {value['variant']!r}")
    params_file = value["params_file"] or os.path.join(
        get_package_share_directory(PACKAGE), "config", f"asymtrack_{variant}.yaml")
    overrides = {name: value[name] for name in ("backend", "model", "precision", "engine_cache_dir")
                 if value[name]}
    image_topic = value["image_topic"]
    node = LifecycleNode(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=EXECUTABLE,
        namespace=value["namespace"],
        parameters=[params_file, overrides, lifecycle_launch.PARAMETERS],
        remappings=[("image", image_topic), ("image/compressed", f"{image_topic}/compressed")],
        output="screen",
        emulate_tty=True,
    )
    if _true(value["lifecycle_manager"]):
        return [node]
    return [node] + lifecycle_launch.drive_transitions(node)


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default, description=description)
                for name, default, description in ARGUMENTS]
    return LaunchDescription(declared + [OpaqueFunction(function=_launch_node)])
