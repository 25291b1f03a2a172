"""Play the demo bag (ros2 bag play) into the AsymTrack node, optionally with a viewer.

ros2 launch asymtrack_ros demo.launch.py viewer:=true
The demo bag (asymtrack-demo, asymtrack_ros.demo_data) carries JPEG frames on
/camera/image_raw/compressed and, on /init_box, the first frame's box stamped with that frame:
the node applies it to that frame. Tracks go to <namespace>/tracks, the boxes drawn to debug_image.

The node is a lifecycle node: this launch configures it (loads the model) and activates it (it
subscribes), unless lifecycle_manager:=true, where an external manager does. The bag is played once
the node is ACTIVE (then start_delay later), whoever activated it.
The player publishes from the moment it starts: without `--delay` its first messages (the init box)
race the discovery of the node's subscriptions and are lost in about half the runs, leaving the node
IDLE for the whole bag. `ros2 bag play --delay` (Humble and later) creates the publishers, then waits.
"""

from __future__ import annotations

import os

from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, LogInfo, OpaqueFunction, TimerAction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from asymtrack_ros.ros import lifecycle_launch

PACKAGE = "asymtrack_ros"
EXECUTABLE = "asymtrack_node"
IMAGE_TOPIC = "/camera/image_raw/compressed"
INIT_TOPIC = "/init_box"
VARIANTS = {"t": "t", "tiny": "t", "s": "s", "small": "s", "b": "b", "base": "b"}
ARGUMENTS = (
    ("bag", "", "rosbag2 folder to play; empty: the demo bag written by asymtrack-demo"),
    ("rate", "1.0", "playback rate"),
    ("loop", "false", "replay the bag in a loop"),
    ("start_delay", "0.0", "seconds between the node becoming active (its model loaded) and the start "
     "of playback"),
    ("play_delay", "2.0", "seconds the player waits after creating its publishers (ros2 bag play --delay), "
     "so that the node's subscriptions are discovered before the first message (the init box)"),
    ("viewer", "false", "open rqt_image_view on the node's debug_image (when it is installed)"),
    ("variant", "t", "AsymTrack variant t|s|b: picks config/asymtrack_<variant>.yaml"),
    ("backend", "", "tensorrt|onnxruntime|pytorch|auto; empty: the preset's (auto)"),
    ("model", "", "model file; empty: the preset's (the packaged demo model for t)"),
    ("namespace", "", "namespace of the node and its topics"),
    ("lifecycle_manager", "false", "true: an external lifecycle manager (such as nav2_lifecycle_manager) "
     "configures and activates the node, which starts unconfigured; false: this launch does"),
)


def _true(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _default_bag() -> str:
    try:
        from asymtrack_ros.demo_data import default_bag_path
    except ImportError:
        return os.path.join("data", "demo", "asymtrack_demo")
    return str(default_bag_path())


def _installed(package: str) -> bool:
    try:
        get_package_prefix(package)
    except PackageNotFoundError:
        return False
    return True


def _viewer(namespace: str) -> list:
    """rqt_image_view on debug_image, or a message when it is not installed (Qt is no dependency)."""
    debug_topic = f"/{namespace}/debug_image" if namespace else "/debug_image"
    if not _installed("rqt_image_view"):
        return [LogInfo(msg=f"viewer:=true but rqt_image_view is not installed (apt install "
                            f"ros-$ROS_DISTRO-rqt-image-view): no viewer; {debug_topic} is still published")]
    return [Node(package="rqt_image_view", executable="rqt_image_view", name="asymtrack_viewer",
                 arguments=[debug_topic], output="screen")]


def _launch(context, *args, **kwargs):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    variant = VARIANTS.get(value["variant"].strip().lower())
    if variant is None:
        raise RuntimeError(f"variant must be one of {sorted(VARIANTS)}, got {value['variant']!r}")
    preset = os.path.join(get_package_share_directory(PACKAGE), "config", f"asymtrack_{variant}.yaml")
    viewer = _true(value["viewer"])
    overrides = {"image_transport": "compressed", "publish_debug_image": viewer}
    if not value["bag"]:  # the demo bag has no recorded QoS: the player offers reliable, so ask for it
        overrides[f"qos_overrides.{IMAGE_TOPIC}.subscription.reliability"] = "reliable"
    overrides.update({name: value[name] for name in ("backend", "model") if value[name]})
    namespace = value["namespace"].strip("/")
    node = LifecycleNode(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=EXECUTABLE,
        namespace=namespace,
        parameters=[preset, overrides, lifecycle_launch.PARAMETERS],
        remappings=[("image/compressed", IMAGE_TOPIC), ("init_box", INIT_TOPIC)],
        output="screen",
        emulate_tty=True,
    )
    bag = value["bag"] or _default_bag()
    cmd = ["ros2", "bag", "play", bag, "--rate", value["rate"], "--delay", value["play_delay"]]
    if _true(value["loop"]):
        cmd.append("--loop")
    start_delay = float(value["start_delay"])
    play = [LogInfo(msg=f"{EXECUTABLE} is active: playing {bag} in {start_delay:g} s"),
            TimerAction(period=start_delay, actions=[ExecuteProcess(cmd=cmd, output="screen")])]
    # the node subscribes when it activates: a bag played earlier would lose the init box
    actions = [node, lifecycle_launch.when_active(node, play)]
    if not _true(value["lifecycle_manager"]):
        actions += lifecycle_launch.drive_transitions(node)
    if viewer:
        actions += _viewer(namespace)
    return actions


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default, description=description)
                for name, default, description in ARGUMENTS]
    return LaunchDescription(declared + [OpaqueFunction(function=_launch)])
