"""Launch files and parameter presets.

Always: the launch files are parsed with ``ast``, the presets are checked against the node's declared
parameters and loaded by real rclpy through ``--params-file``. Where the real launch / launch_ros are
importable (a ROS 2 system; they are not on PyPI) and asymtrack_ros is installed (colcon): the launch
files are built and run as ``ros2 launch`` does, and the running node is asked over ROS for its
lifecycle state, parameters and topics, and driven through its lifecycle where a manager would.
"""

from __future__ import annotations

import ast
import importlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
PRESETS = {variant: ROOT / "config" / f"asymtrack_{variant}.yaml" for variant in ("t", "s", "b")}
TRACKER_ARGS = {"variant", "backend", "model", "image_topic", "namespace", "params_file"}
DEMO_ARGS = {"bag", "viewer", "variant", "backend", "model", "namespace", "play_delay"}


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
             and getattr(node.func, "id", "") == "LifecycleNode"]  # the tracker is a lifecycle node
    node_kwargs = {kw.arg for kw in calls[0].keywords}
    assert {"package", "executable", "name", "namespace", "parameters", "remappings"} <= node_kwargs


def test_demo_player_waits_for_discovery_and_the_viewer_is_optional():
    """Static checks of what the real-launch tests below check where launch is installed."""
    tree = ast.parse((LAUNCH / "demo.launch.py").read_text())
    (play,) = [node for node in ast.walk(tree) if isinstance(node, ast.List)
               and [getattr(e, "value", None) for e in node.elts[:3]] == ["ros2", "bag", "play"]]
    assert "--delay" in [getattr(e, "value", None) for e in play.elts]  # ros2bag >= 0.15 (Humble)
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}

    def mentions(function: ast.AST, text: str) -> bool:
        return any(getattr(node, "value", None) == text or getattr(node, "id", None) == text
                   for node in ast.walk(function))

    launching_viewer = [f for f in functions.values() if mentions(f, "rqt_image_view")]
    assert launching_viewer and all(mentions(f, "_installed") and mentions(f, "LogInfo")
                                    for f in launching_viewer)
    assert mentions(functions["_installed"], "get_package_prefix")


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


# ---------------------------------------------------------------------- real launch / launch_ros
# launch and launch_ros are not on PyPI: these tests run where ROS 2 is installed (or they are
# installed from source) and the package is built and sourced (colcon build; source install/setup.bash).
# They run the checkout's launch files; the executable and the presets come from the installed package.
LAUNCH_MISSING = "launch/launch_ros not installed (not on PyPI); run on a ROS 2 system"
RUNNER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if the parent ignores it
import launch
from launch.launch_description_sources import AnyLaunchDescriptionSource
path, arguments = sys.argv[1], sys.argv[2:]
# what ros2launch.api.launch_a_launch_file does for `ros2 launch PACKAGE FILE NAME:=VALUE...`
service = launch.LaunchService(argv=arguments, noninteractive=True)
service.include_launch_description(launch.LaunchDescription([launch.actions.IncludeLaunchDescription(
    AnyLaunchDescriptionSource(path), launch_arguments=[tuple(a.split(":=", 1)) for a in arguments])]))
sys.exit(service.run())
"""


@pytest.fixture(scope="module")
def installed() -> Path:
    """The share folder of the installed asymtrack_ros, once launch and launch_ros import."""
    try:
        launch = importlib.import_module("launch")
        importlib.import_module("launch_ros.actions")
    except ImportError as exc:
        pytest.skip(f"{LAUNCH_MISSING} ({exc})")
    if not hasattr(launch, "LaunchService"):  # this checkout's launch/ folder, as a namespace package
        pytest.skip(f"{LAUNCH_MISSING} ('import launch' found {list(launch.__path__)})")
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        prefix = Path(get_package_prefix("asymtrack_ros"))
    except PackageNotFoundError:
        pytest.skip("asymtrack_ros is not installed: colcon build, then source install/setup.bash")
    share = prefix / "share" / "asymtrack_ros"
    if not os.access(prefix / "lib" / "asymtrack_ros" / "asymtrack_node", os.X_OK):
        pytest.skip(f"{prefix} has no lib/asymtrack_ros/asymtrack_node (only the msg build of "
                    "scripts/setup.sh?): colcon build, then source install/setup.bash")
    for path in PRESETS.values():
        assert (share / "config" / path.name).read_text() == path.read_text(), \
            f"{share} is older than the checkout: rebuild it"
    return share


def evaluate(name: str, **arguments: str):
    """Build the description with real launch and run its OpaqueFunction: (context, actions)."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    from launch import LaunchContext

    description = get_launch_description_from_python_launch_file(str(LAUNCH / name))
    declared = description.get_launch_arguments()
    assert all(a.description for a in declared)
    assert not set(arguments) - {a.name for a in declared}, f"{name} lacks some of {sorted(arguments)}"
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    actions: List[Any] = []
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(context)  # sets the default of an argument not given
        elif isinstance(entity, OpaqueFunction):
            actions += entity.visit(context) or []
    return context, actions


def performed(context, substitutions) -> str:
    from launch.utilities import perform_substitutions

    return perform_substitutions(context, substitutions)


def nodes_in(actions: List[Any], package: str = "asymtrack_ros") -> List[Any]:
    from launch_ros.actions import Node

    return [a for a in actions if isinstance(a, Node) and a.node_package == package]


@contextmanager
def launched(tmp_path: Path, name: str, *arguments: str) -> Iterator[Path]:
    """Run a launch file as `ros2 launch` does; on leaving, SIGINT it and expect a clean exit."""
    with running(tmp_path, name, *arguments) as (process, log):
        yield log
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, log.read_text()
        assert "process has finished cleanly" in log.read_text(), log.read_text()


@contextmanager
def running(tmp_path: Path, name: str, *arguments: str) -> Iterator[Tuple[subprocess.Popen, Path]]:
    """The launch process (in a session of its own, as a terminal's foreground group) and its log."""
    log = tmp_path / f"{name}.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-c", RUNNER, str(LAUNCH / name), *arguments],
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def ros_domain(monkeypatch) -> None:
    pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
    domain = os.environ.get("_ASYMTRACK_TEST_DOMAIN") or str(random.SystemRandom().randint(1, 200))
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)  # the launched node inherits it


def wait_for_line(log: Path, text: str, timeout: float = 120.0) -> None:
    """Wait until the launch log has ``text`` (fail after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"no {text!r} in the launch log:\n{log.read_text()}"
        time.sleep(0.1)


class Probe:
    """A ROS node of the test's own that looks at, and drives, the launched tracker node."""

    def __init__(self, log: Path, namespace: str, timeout: float = 120.0) -> None:
        self.log = log
        self.namespace = namespace
        self.fqn = f"{namespace.rstrip('/')}/asymtrack_node"
        self.timeout = timeout

    def __enter__(self) -> Probe:
        import rclpy
        from lifecycle_msgs.srv import ChangeState, GetState
        from rcl_interfaces.srv import GetParameters
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("launch_test_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        # Made once, before the node runs: a client made just before its request can lose the answer
        # (the server has not discovered the client's reader yet: "failed to send response").
        self.clients = {service: self.node.create_client(service_type, f"{self.fqn}/{service}")
                        for service, service_type in (("get_state", GetState), ("change_state", ChangeState),
                                                      ("get_parameters", GetParameters))}
        return self

    def __exit__(self, *exc_info: Any) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def check(self, condition: bool, what: str) -> None:
        assert condition, f"{what}\n--- launch log:\n{self.log.read_text()}"

    def call(self, service: str, request: Any, idempotent: bool = True) -> Any:
        """The answer of the node's ``service``; a request that may have lost its answer is sent again
        (when ``idempotent``) until ``timeout``."""
        client = self.clients[service]
        deadline = time.monotonic() + self.timeout
        self.check(client.wait_for_service(timeout_sec=self.timeout), f"no service {self.fqn}/{service}")
        while True:
            future = client.call_async(request)
            attempt = max(0.0, deadline - time.monotonic()) if not idempotent else 5.0
            self.executor.spin_until_future_complete(future, timeout_sec=attempt)
            if future.done():
                return future.result()
            client.remove_pending_request(future)
            self.check(idempotent and time.monotonic() < deadline, f"no answer from {self.fqn}/{service}")

    def state(self) -> str:
        """The node's lifecycle state (its get_state service): unconfigured, inactive, active, ..."""
        from lifecycle_msgs.srv import GetState

        return self.call("get_state", GetState.Request()).current_state.label

    def wait_for_state(self, label: str) -> None:
        deadline = time.monotonic() + self.timeout
        state = self.state()
        while state != label:  # configure loads the model: seconds on a busy CPU
            self.check(time.monotonic() < deadline, f"{self.fqn} stayed {state}, not {label}")
            self.executor.spin_once(timeout_sec=0.2)
            state = self.state()

    def change_state(self, transition_id: int) -> bool:
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition.id = transition_id
        return self.call("change_state", request, idempotent=False).success

    def parameters(self, names: List[str]) -> Dict[str, Any]:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        values = self.call("get_parameters", GetParameters.Request(names=names)).values
        return dict(zip(names, [parameter_value_to_python(v) for v in values]))

    def subscriptions(self) -> Dict[str, List[str]]:
        """The node's subscriptions as this probe has discovered them so far."""
        if ("asymtrack_node", self.namespace) not in self.node.get_node_names_and_namespaces():
            return {}  # its services can be discovered before its name
        return dict(self.node.get_subscriber_names_and_types_by_node("asymtrack_node", self.namespace))

    def wait_for_subscriptions(self, *topics: str) -> Dict[str, List[str]]:
        """The node's subscriptions once all ``topics`` are among them (discovery takes a moment, and
        activation subscribes one topic after the other)."""
        deadline = time.monotonic() + self.timeout
        subscriptions = self.subscriptions()
        while not set(topics) <= set(subscriptions):
            self.check(time.monotonic() < deadline, f"not all of {topics} subscribed: {subscriptions}")
            self.executor.spin_once(timeout_sec=0.2)
            subscriptions = self.subscriptions()
        return subscriptions


def transitions_emitted(actions: List[Any]) -> List[int]:
    """The lifecycle transitions a description asks for at once, or as soon as the node answers."""
    from launch.actions import EmitEvent
    from launch_ros.events.lifecycle import ChangeState

    from asymtrack_ros.ros.lifecycle_launch import WhenState

    found: List[int] = []
    for action in actions:
        if isinstance(action, EmitEvent) and isinstance(action.event, ChangeState):
            found.append(action.event.transition_id)
        elif isinstance(action, WhenState) and action.states is None:
            found += transitions_emitted(action.actions)
    return found


def handlers_in(actions: List[Any]) -> List[Any]:
    from launch.actions import RegisterEventHandler

    return [a.event_handler for a in actions if isinstance(a, RegisterEventHandler)]


def reacting_to(actions: List[Any], node: Any, start: str, goal: str) -> List[Any]:
    """The event handlers among ``actions`` that react to ``node`` going from ``start`` to ``goal``."""
    return [h for h in handlers_in(actions) if h.matches(transition_event(node, start, goal))]


def transition_event(node: Any, start: str, goal: str) -> Any:
    """The launch event a LifecycleNode action emits when its node reports a transition."""
    from launch_ros.events.lifecycle import StateTransition
    from lifecycle_msgs.msg import TransitionEvent

    msg = TransitionEvent()
    msg.start_state.label, msg.goal_state.label = start, goal
    return StateTransition(action=node, msg=msg)


@pytest.mark.parametrize("name", ["tracker.launch.py", "demo.launch.py", "follow_me.launch.py"])
def test_real_description_drives_the_lifecycle(installed, name):
    from launch_ros.actions import LifecycleNode
    from lifecycle_msgs.msg import Transition

    _, actions = evaluate(name)
    (node,) = [n for n in nodes_in(actions) if n.node_executable == "asymtrack_node"]
    assert isinstance(node, LifecycleNode)
    assert transitions_emitted(actions) == [Transition.TRANSITION_CONFIGURE]
    matching = reacting_to(actions, node, "configuring", "inactive")
    assert [transitions_emitted(h.entities) for h in matching] == [[Transition.TRANSITION_ACTIVATE]]
    assert all(h.handle_once for h in matching)  # a later deactivate / configure by hand stays so
    assert not reacting_to(actions, node, "deactivating", "inactive")

    _, actions = evaluate(name, lifecycle_manager="true")  # a manager drives it: no requests, no reactions
    assert transitions_emitted(actions) == []
    (node,) = [n for n in nodes_in(actions) if n.node_executable == "asymtrack_node"]
    assert not reacting_to(actions, node, "configuring", "inactive")


def test_real_tracker_description(installed):
    _, actions = evaluate("tracker.launch.py")
    (node,) = nodes_in(actions)
    assert (node.node_package, node.node_executable) == ("asymtrack_ros", "asymtrack_node")
    with pytest.raises(RuntimeError, match="variant"):
        evaluate("tracker.launch.py", variant="xl")


def test_real_demo_description(installed):
    from launch.actions import ExecuteProcess, LogInfo, TimerAction
    from launch.utilities.type_utils import perform_typed_substitution

    from asymtrack_ros.demo_data import default_bag_path
    from asymtrack_ros.ros.lifecycle_launch import WhenState

    def playback(context, actions) -> Tuple[Any, Any]:
        """The action that starts the player once the node is ACTIVE, and its timer."""
        (node,) = nodes_in(actions)
        (when,) = [a for a in actions if isinstance(a, WhenState) and a.states is not None]
        assert when.node is node and when.states == {"active"}
        (timer,) = [e for e in when.actions if isinstance(e, TimerAction)]
        return when, timer

    for manager in ("false", "true"):  # whoever activates the node
        context, actions = evaluate("demo.launch.py", bag="/bags/demo", rate="2.0", loop="true",
                                    viewer="true", namespace="demo", lifecycle_manager=manager)
        assert len(nodes_in(actions)) == 1
        assert not [a for a in actions if isinstance(a, TimerAction)]
        _, timer = playback(context, actions)
        assert perform_typed_substitution(context, timer.period, float) == 0.0
        (play,) = timer.actions
        assert isinstance(play, ExecuteProcess)
        cmd = [performed(context, part) for part in play.cmd]
        # ros2bag (Humble 0.15, Jazzy 0.26) play: positional bag_path, -r/--rate (> 0), -l/--loop
        assert cmd == ["ros2", "bag", "play", "/bags/demo", "--rate", "2.0", "--delay", "2.0", "--loop"]
    if viewer_installed():
        (viewer,) = nodes_in(actions, "rqt_image_view")
        assert viewer.node_executable == "rqt_image_view"
        assert [performed(context, part) for part in viewer.cmd[1:2]] == ["/demo/debug_image"]
    else:  # a clear message instead of a launch that fails and leaves the node running
        assert not nodes_in(actions, "rqt_image_view")
        (message,) = [a for a in actions if isinstance(a, LogInfo)]
        assert "rqt_image_view is not installed" in performed(context, message.msg)

    context, actions = evaluate("demo.launch.py", start_delay="1.5")
    assert not nodes_in(actions, "rqt_image_view")
    _, timer = playback(context, actions)
    assert perform_typed_substitution(context, timer.period, float) == 1.5
    assert [performed(context, part) for part in timer.actions[0].cmd] == \
        ["ros2", "bag", "play", str(default_bag_path()), "--rate", "1.0", "--delay", "2.0"]
    ros2 = shutil.which("ros2")
    if ros2 is not None:  # a ROS 2 system: ask the real CLI whether it knows these options
        play_help = subprocess.run([ros2, "bag", "play", "--help"], capture_output=True, text=True,
                                   timeout=60)
        if play_help.returncode == 0:
            assert all(option in play_help.stdout for option in ("--rate", "--loop", "--delay"))


def viewer_installed() -> bool:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix("rqt_image_view")
    except PackageNotFoundError:
        return False
    return True


def expected(variant: str, **overrides: Any) -> Dict[str, Any]:
    return {**preset_values(PRESETS[variant]), "autostart": False, **overrides}


@pytest.mark.ros
@pytest.mark.slow
def test_real_tracker_launch_defaults(installed, ros_domain, tmp_path):
    values = expected("t")
    with launched(tmp_path, "tracker.launch.py") as log, Probe(log, "/") as node:
        node.wait_for_state("active")
        subscriptions = node.wait_for_subscriptions("/camera/image_raw", "/init_box")
        got = node.parameters(sorted(values))
    assert got == values
    assert subscriptions["/camera/image_raw"] == ["sensor_msgs/msg/Image"]
    assert subscriptions["/init_box"] == ["vision_msgs/msg/Detection2D"]
    assert "Failed to make transition" not in log.read_text()


@pytest.mark.ros
@pytest.mark.slow
def test_real_tracker_launch_arguments(installed, ros_domain, tmp_path):
    values = expected("t", backend="onnxruntime")
    with launched(tmp_path, "tracker.launch.py", "variant:=tiny", "backend:=onnxruntime",
                  "image_topic:=/uav1/cam", "namespace:=uav1") as log, Probe(log, "/uav1") as node:
        node.wait_for_state("active")
        subscriptions = node.wait_for_subscriptions("/uav1/cam", "/uav1/init_box")
        got = node.parameters(sorted(values))
    assert got == values
    assert subscriptions["/uav1/cam"] == ["sensor_msgs/msg/Image"]
    assert subscriptions["/uav1/init_box"] == ["vision_msgs/msg/Detection2D"]
    assert "with the onnxruntime backend" in log.read_text()


@pytest.mark.ros
@pytest.mark.slow
def test_real_tracker_launch_failed_configure_is_logged(installed, ros_domain, tmp_path):
    """A missing model: configure fails, the launch says so and keeps running; Ctrl-C still ends it."""
    values = expected("b", backend="onnxruntime", model="/nonexistent/asymtrack_b.pt")
    arguments = ("variant:=base", "backend:=onnxruntime", "model:=/nonexistent/asymtrack_b.pt",
                 "namespace:=uav1")
    with launched(tmp_path, "tracker.launch.py", *arguments) as log, Probe(log, "/uav1") as node:
        wait_for_line(log, "/uav1/asymtrack_node is unconfigured after a failed transition")
        wait_for_line(log, "Failed to make transition '")  # launch_ros's: 'TRANSITION_CONFIGURE' on Jazzy
        assert node.state() == "unconfigured"
        got = node.parameters(sorted(values))
        assert "/uav1/camera/image_raw" not in node.subscriptions()
    assert got == values
    assert "/nonexistent/asymtrack_b.pt" in log.read_text()


@pytest.mark.ros
@pytest.mark.slow
def test_real_tracker_launch_params_file(installed, ros_domain, tmp_path):
    data = yaml.safe_load(PRESETS["t"].read_text())
    data["/**"]["ros__parameters"].update(image_transport="compressed", frame_buffer_length=7)
    params_file = tmp_path / "mine.yaml"
    params_file.write_text(yaml.safe_dump(data))
    values = expected("t", image_transport="compressed", frame_buffer_length=7)
    with launched(tmp_path, "tracker.launch.py", f"params_file:={params_file}", "variant:=b",
                  "image_topic:=/cam2") as log, Probe(log, "/") as node:
        node.wait_for_state("active")
        subscriptions = node.wait_for_subscriptions("/cam2/compressed")
        got = node.parameters(sorted(values))
    assert got == values  # the file replaces the preset: variant:=b picks nothing
    assert subscriptions["/cam2/compressed"] == ["sensor_msgs/msg/CompressedImage"]


@pytest.mark.ros
@pytest.mark.slow
def test_real_tracker_launch_under_a_lifecycle_manager(installed, ros_domain, tmp_path):
    """lifecycle_manager:=true: the node waits unconfigured; the test, as the manager, drives it."""
    from lifecycle_msgs.msg import Transition

    with launched(tmp_path, "tracker.launch.py", "lifecycle_manager:=true", "backend:=onnxruntime") as log, \
            Probe(log, "/") as node:
        assert node.state() == "unconfigured"
        assert node.parameters(["autostart"]) == {"autostart": False}
        assert node.change_state(Transition.TRANSITION_CONFIGURE)  # the launch did not configure it first
        assert node.state() == "inactive"
        assert node.change_state(Transition.TRANSITION_ACTIVATE)
        assert node.state() == "active"
        subscriptions = node.wait_for_subscriptions("/camera/image_raw")
    assert subscriptions["/camera/image_raw"] == ["sensor_msgs/msg/Image"]
    assert "Failed to make transition" not in log.read_text()


@pytest.mark.ros
@pytest.mark.slow
def test_real_demo_launch_starts_the_node(installed, ros_domain, tmp_path):
    from rclpy.qos import ReliabilityPolicy

    values = expected("t", backend="onnxruntime", image_transport="compressed", publish_debug_image=False,
                      **{"qos_overrides./camera/image_raw/compressed.subscription.reliability": "reliable"})
    # the demo bag's player offers reliable; the deprecated image_qos.* stay the preset's
    # start_delay: the bag is not played while the test looks (`ros2 bag play` needs a ROS 2 system)
    with launched(tmp_path, "demo.launch.py", "namespace:=demo", "backend:=onnxruntime",
                  "start_delay:=600.0") as log, Probe(log, "/demo") as node:
        wait_for_line(log, "asymtrack_node is active: playing ")
        assert node.state() == "active"
        subscriptions = node.wait_for_subscriptions("/camera/image_raw/compressed", "/init_box",
                                                   "/demo/init_box_latest")
        got = node.parameters(sorted(values))
        (endpoint,) = [e for e in node.node.get_subscriptions_info_by_topic("/camera/image_raw/compressed")
                       if e.node_name == "asymtrack_node"]
        reliability = endpoint.qos_profile.reliability
    assert got == values
    assert subscriptions["/camera/image_raw/compressed"] == ["sensor_msgs/msg/CompressedImage"]
    assert subscriptions["/init_box"] == ["vision_msgs/msg/Detection2D"]
    assert "/demo/init_box_latest" in subscriptions
    assert reliability == ReliabilityPolicy.RELIABLE
    assert "deprecated" not in log.read_text()


@pytest.mark.ros
@pytest.mark.slow
def test_real_demo_launch_plays_once_the_manager_activates(installed, ros_domain, tmp_path):
    from lifecycle_msgs.msg import Transition

    with launched(tmp_path, "demo.launch.py", "lifecycle_manager:=true", "backend:=onnxruntime",
                  "start_delay:=600.0") as log, Probe(log, "/") as node:
        assert node.state() == "unconfigured"
        assert node.change_state(Transition.TRANSITION_CONFIGURE)
        assert "is active: playing" not in log.read_text()
        assert node.change_state(Transition.TRANSITION_ACTIVATE)
        wait_for_line(log, "asymtrack_node is active: playing ")


@pytest.mark.ros
@pytest.mark.slow
def test_real_launch_ctrl_c_twice_exits_cleanly(installed, ros_domain, tmp_path):
    """Ctrl-C in a terminal: SIGINT to the whole group (launch and node), and launch forwards another."""
    with running(tmp_path, "tracker.launch.py", "backend:=onnxruntime") as (process, log):
        with Probe(log, "/") as node:
            node.wait_for_state("active")
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.05)  # the second lands in the node's cleanup
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
        text = log.read_text()
        assert "process has finished cleanly" in text and "Traceback" not in text, text
        assert "exit code -2" not in text, text


@pytest.mark.ros
@pytest.mark.slow
def test_real_launch_ends_when_the_node_dies(installed, ros_domain, tmp_path):
    """The launch ends with its node (as before the node was a lifecycle node)."""
    with running(tmp_path, "tracker.launch.py", "backend:=onnxruntime") as (process, log):
        with Probe(log, "/") as node:
            node.wait_for_state("active")
        (child,) = children(process.pid)
        os.kill(child, signal.SIGKILL)
        process.wait(timeout=60)
        assert "process has died" in log.read_text(), log.read_text()


@pytest.mark.ros
@pytest.mark.slow
def test_real_launch_ends_when_the_node_dies_at_start(installed, ros_domain, tmp_path):
    """An invalid parameter: the node exits before it answers the launch's configure request."""
    with running(tmp_path, "tracker.launch.py", "backend:=bogus") as (process, log):
        process.wait(timeout=60)
        text = log.read_text()
        assert "invalid parameter: parameter 'backend' must be one of" in text, text
        assert "process has died" in text, text


def children(pid: int) -> List[int]:
    """The processes ``pid`` started (Linux)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


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
