"""Launch files and parameter presets, checked without the launch packages (not installed here).

The launch files are parsed with ``ast`` and run against small stand-ins for launch / launch_ros
that record what they are given; the presets are checked against the node's declared parameters
and loaded by real rclpy through ``--params-file``.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import random
import sys
import types
from pathlib import Path
from typing import Any, Dict, List

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
PRESETS = {variant: ROOT / "config" / f"asymtrack_{variant}.yaml" for variant in ("t", "s", "b")}
TRACKER_ARGS = {"variant", "backend", "model", "image_topic", "namespace", "params_file"}
DEMO_ARGS = {"bag", "viewer", "variant", "backend", "model", "namespace"}


def spec_defaults() -> Dict[str, Any]:
    pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
    from asymtrack_ros.ros.parameters import SPECS

    return {spec.name: spec.default for spec in SPECS}


def flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def preset_values(path: Path) -> Dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert list(data) == ["/**"] and list(data["/**"]) == ["ros__parameters"], path
    return flatten(data["/**"]["ros__parameters"])


# ---------------------------------------------------------------------- static checks
@pytest.mark.parametrize("name", ["tracker.launch.py", "demo.launch.py"])
def test_launch_file_names_package_and_executable(name):
    tree = ast.parse((LAUNCH / name).read_text())
    assigned = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert ast.literal_eval(assigned["PACKAGE"]) == "asymtrack_ros"
    assert ast.literal_eval(assigned["EXECUTABLE"]) == "asymtrack_node"
    arguments = {arg[0] for arg in ast.literal_eval(assigned["ARGUMENTS"])}
    assert arguments >= (TRACKER_ARGS if name.startswith("tracker") else DEMO_ARGS)
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and getattr(node.func, "id", "") == "Node"]
    node_kwargs = {kw.arg for kw in calls[0].keywords}
    assert {"package", "executable", "name", "namespace", "parameters", "remappings"} <= node_kwargs


def test_cmake_installs_launch_config_and_the_executable():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert "install(DIRECTORY launch config DESTINATION share/${PROJECT_NAME})" in cmake
    assert "scripts/asymtrack_node DESTINATION lib/${PROJECT_NAME}" in cmake
    assert (ROOT / "scripts" / "asymtrack_node").is_file()


@pytest.mark.parametrize("variant", sorted(PRESETS))
def test_presets_use_declared_parameters_with_valid_values(variant):
    from asymtrack_ros.ros import parameters

    defaults = spec_defaults()
    values = preset_values(PRESETS[variant])
    assert set(values) <= set(defaults), set(values) - set(defaults)
    for name, value in values.items():  # rclpy does not turn 1 into 1.0: types must match exactly
        assert type(value) is type(defaults[name]), f"{PRESETS[variant].name}: {name}={value!r}"
    parameters.validate({**defaults, **values})
    assert values["variant"] == variant


# ---------------------------------------------------------------------- run with stand-ins
class Recorded:
    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration:
    def __init__(self, name: str):
        self.name = name

    def perform(self, context: Dict[str, str]) -> str:
        return context[self.name]


def stand_ins(share: Path) -> Dict[str, types.ModuleType]:
    modules = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions",
        "ament_index_python", "ament_index_python.packages")}
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "ExecuteProcess", "TimerAction"):
        setattr(modules["launch.actions"], name, type(name, (Recorded,), {}))
    modules["launch"].LaunchDescription = type("LaunchDescription", (Recorded,), {})
    modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    modules["launch_ros.actions"].Node = type("Node", (Recorded,), {})
    modules["ament_index_python.packages"].get_package_share_directory = lambda package: str(share)
    return modules


def run_launch(name: str, monkeypatch, **arguments: str) -> List[Recorded]:
    for module_name, module in stand_ins(ROOT).items():
        monkeypatch.setitem(sys.modules, module_name, module)
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), LAUNCH / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    entities = description.args[0]
    declared = {e.args[0]: e.kwargs["default_value"] for e in entities
                if type(e).__name__ == "DeclareLaunchArgument"}
    assert all(e.kwargs.get("description") for e in entities if type(e).__name__ == "DeclareLaunchArgument")
    unknown = set(arguments) - set(declared)
    assert not unknown, f"{name} has no arguments {unknown}"
    context = {**declared, **arguments}
    opaque = [e for e in entities if type(e).__name__ == "OpaqueFunction"]
    return [action for e in opaque for action in e.kwargs["function"](context)]


def node_of(actions: List[Recorded], executable: str = "asymtrack_node") -> Recorded:
    return next(a for a in actions if type(a).__name__ == "Node" and a.kwargs["executable"] == executable)


def check_parameters(node: Recorded) -> Dict[str, Any]:
    preset, overrides = node.kwargs["parameters"]
    assert Path(preset).is_file(), preset
    defaults = spec_defaults()
    assert set(overrides) <= set(defaults)
    for key, value in overrides.items():
        assert type(value) is type(defaults[key]), key
    return overrides


def test_tracker_launch_defaults(monkeypatch):
    node = node_of(run_launch("tracker.launch.py", monkeypatch))
    assert node.kwargs["package"] == "asymtrack_ros" and node.kwargs["namespace"] == ""
    assert check_parameters(node) == {}
    assert Path(node.kwargs["parameters"][0]).name == "asymtrack_t.yaml"
    assert ("image", "/camera/image_raw") in node.kwargs["remappings"]


def test_tracker_launch_arguments(monkeypatch):
    node = node_of(run_launch("tracker.launch.py", monkeypatch, variant="base", backend="onnxruntime",
                              model="/models/b.pt", image_topic="/uav1/cam", namespace="uav1"))
    assert check_parameters(node) == {"backend": "onnxruntime", "model": "/models/b.pt"}
    assert Path(node.kwargs["parameters"][0]).name == "asymtrack_b.yaml"
    assert node.kwargs["namespace"] == "uav1"
    remappings = dict(node.kwargs["remappings"])
    assert remappings == {"image": "/uav1/cam", "image/compressed": "/uav1/cam/compressed"}
    custom = node_of(run_launch("tracker.launch.py", monkeypatch, params_file="/tmp/mine.yaml"))
    assert custom.kwargs["parameters"][0] == "/tmp/mine.yaml"
    with pytest.raises(RuntimeError, match="variant"):
        run_launch("tracker.launch.py", monkeypatch, variant="xl")


def test_demo_launch_plays_the_bag_into_the_node(monkeypatch):
    actions = run_launch("demo.launch.py", monkeypatch, bag="/bags/demo", rate="2.0", loop="true",
                         viewer="true", namespace="demo")
    node = node_of(actions)
    overrides = check_parameters(node)
    assert overrides == {"image_transport": "compressed", "publish_debug_image": True}
    assert dict(node.kwargs["remappings"]) == {"image/compressed": "/camera/image_raw/compressed",
                                               "init_box": "/init_box"}
    timer = next(a for a in actions if type(a).__name__ == "TimerAction")
    assert timer.kwargs["period"] == 3.0
    play = timer.kwargs["actions"][0]
    assert play.kwargs["cmd"] == ["ros2", "bag", "play", "/bags/demo", "--rate", "2.0", "--loop"]
    viewer = node_of(actions, "rqt_image_view")
    assert viewer.kwargs["arguments"] == ["/demo/debug_image"]
    quiet = run_launch("demo.launch.py", monkeypatch)
    assert not any(type(a).__name__ == "Node" and a.kwargs["executable"] == "rqt_image_view" for a in quiet)
    assert check_parameters(node_of(quiet))["publish_debug_image"] is False


# ---------------------------------------------------------------------- presets through real rclpy
@pytest.mark.ros
@pytest.mark.parametrize("variant", sorted(PRESETS))
def test_presets_load_through_ros_params_file(variant, monkeypatch):
    rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
    pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not built (scripts/setup.sh)")
    from asymtrack_ros.ros.node import AsymTrackNode

    domain = os.environ.get("_ASYMTRACK_TEST_DOMAIN") or str(random.SystemRandom().randint(1, 200))
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    context = rclpy.Context()
    rclpy.init(args=["--ros-args", "--params-file", str(PRESETS[variant])], context=context)
    try:
        node = AsymTrackNode(context=context)
        try:
            for name, value in preset_values(PRESETS[variant]).items():
                assert node.get_parameter(name).value == value, name
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
