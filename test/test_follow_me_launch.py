"""launch/follow_me.launch.py: always checked statically (names, arguments, and that every parameter
it sets is one the tracker's follow-me module or the MAVLink bridge declares); built with the real
launch / launch_ros where they are installed (a ROS 2 system: they are not on PyPI)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any, Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "follow_me.launch.py"
EXPECTED_ARGS = {"variant", "backend", "model", "image_topic", "camera_info_topic", "depth_topic",
                 "publish_markers", "debug_image_compressed", "jpeg_quality", "namespace", "params_file",
                 "mavlink", "mavlink_url", "serial_baud", "system_id", "component_id"}


def tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text())


def assigned() -> Dict[str, Any]:
    return {t.id: ast.literal_eval(node.value) for node in tree().body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def dict_keys_with(key: str) -> Set[str]:
    """The string keys of the dict literal in the launch file that has ``key``."""
    for node in ast.walk(tree()):
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
            if key in keys:
                return keys
    raise AssertionError(f"no dict with {key!r} in {LAUNCH_FILE.name}")


def test_names_and_arguments():
    values = assigned()
    assert (values["PACKAGE"], values["EXECUTABLE"], values["BRIDGE"]) == \
        ("asymtrack_ros", "asymtrack_node", "asymtrack_mavlink_bridge")
    arguments = {name for name, _, description in values["ARGUMENTS"] if description}
    assert arguments >= EXPECTED_ARGS, EXPECTED_ARGS - arguments
    calls = [n for n in ast.walk(tree()) if isinstance(n, ast.Call)
             and getattr(n.func, "id", "") in ("Node", "LifecycleNode")]
    # the tracker is a lifecycle node, the bridge is not
    assert sorted(call.func.id for call in calls) == ["LifecycleNode", "Node"]
    for call in calls:
        keywords = {kw.arg for kw in call.keywords}
        assert {"package", "executable", "name", "namespace", "parameters"} <= keywords


def test_parameters_set_are_declared():
    pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
    pytest.importorskip("visualization_msgs.msg", reason="visualization_msgs is not installed")
    pytest.importorskip("asymtrack_msgs.msg", reason="asymtrack_msgs is not built (scripts/setup.sh)")
    from asymtrack_ros.ros.follow_me import SPECS
    from asymtrack_ros.ros.mavlink_bridge import PARAMETERS

    node_keys = dict_keys_with("publish_bearing")
    assert node_keys <= {spec.name for spec in SPECS}, node_keys
    bridge_keys = dict_keys_with("mavlink_url")
    assert bridge_keys <= {name for name, _, _ in PARAMETERS}, bridge_keys


def test_cmake_installs_the_bridge():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert "scripts/asymtrack_mavlink_bridge" in cmake
    assert '"msg/TargetBearing.msg"' in (ROOT / "asymtrack_msgs" / "CMakeLists.txt").read_text()
    assert (ROOT / "scripts" / "asymtrack_mavlink_bridge").stat().st_mode & 0o111


# ---------------------------------------------------------------------- real launch / launch_ros
def evaluate(**arguments: str) -> List[Any]:
    try:
        launch = importlib.import_module("launch")
        importlib.import_module("launch_ros.actions")
    except ImportError as exc:
        pytest.skip(f"launch/launch_ros not installed (not on PyPI); run on a ROS 2 system ({exc})")
    if not hasattr(launch, "LaunchService"):  # this checkout's launch/ folder as a namespace package
        pytest.skip("launch/launch_ros not installed (not on PyPI); run on a ROS 2 system")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("asymtrack_ros")
    except PackageNotFoundError:
        pytest.skip("asymtrack_ros is not installed: colcon build, then source install/setup.bash")
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    description = get_launch_description_from_python_launch_file(str(LAUNCH_FILE))
    context = launch.LaunchContext()
    context.launch_configurations.update(arguments)
    actions: List[Any] = []
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(context)
        elif isinstance(entity, OpaqueFunction):
            actions += entity.visit(context) or []
    return actions


def nodes(actions: List[Any]) -> List[Any]:
    from launch_ros.actions import Node

    return [a for a in actions if isinstance(a, Node)]


def test_real_description_with_and_without_the_bridge():
    (node,) = nodes(evaluate())  # skips without launch / launch_ros
    from launch_ros.actions import LifecycleNode

    assert (node.node_package, node.node_executable) == ("asymtrack_ros", "asymtrack_node")
    assert isinstance(node, LifecycleNode)
    tracker, bridge = nodes(evaluate(mavlink="true", namespace="uav1", depth_topic="/depth"))
    assert tracker.node_executable == "asymtrack_node"
    assert bridge.node_executable == "asymtrack_mavlink_bridge"
    with pytest.raises(RuntimeError, match="variant"):
        evaluate(variant="xl")
