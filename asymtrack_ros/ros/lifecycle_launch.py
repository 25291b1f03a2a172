"""The launch side of the tracker node's lifecycle, shared by the package's launch files.

The node is a managed (lifecycle) node that starts unconfigured. The launch files start it as a
launch_ros ``LifecycleNode`` and, unless an external lifecycle manager drives it (launch argument
``lifecycle_manager:=true``), ask it to configure as soon as it runs and to activate once that
configure has left it inactive. ``WhenActive`` runs actions (the demo's bag player) once the node is
ACTIVE. Needs launch and launch_ros (a ROS 2 installation): only launch files import this module.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Dict, List, Optional

import launch.logging
from launch.action import Action
from launch.actions import EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event import Event
from launch.event_handler import EventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown, matches_action
from launch.launch_context import LaunchContext
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState, StateTransition
from launch_ros.ros_adapters import get_ros_node
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import GetState

# The launch file or the manager drives the transitions: a node configuring itself as well would
# make one of the two configure requests fail.
PARAMETERS: Dict[str, Any] = {"autostart": False}


def change_state(node: LifecycleNode, transition_id: int) -> EmitEvent:
    """Ask ``node`` (through its change_state service) for one lifecycle transition."""
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                       transition_id=transition_id))


def drive_transitions(node: LifecycleNode) -> List[Action]:
    """Configure ``node`` once it runs and activate it once configured; log a failed transition.

    The launch ends when the node's process exits: a transition request still waiting for the
    node's service would otherwise keep the launch from ever finishing.
    """
    configured = OnStateTransition(
        target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
        entities=[change_state(node, Transition.TRANSITION_ACTIVATE)], handle_once=True)
    failed = OnStateTransition(
        matcher=lambda event: (isinstance(event, StateTransition) and event.action is node
                               and event.goal_state == "unconfigured"
                               and event.start_state in ("configuring", "errorprocessing")),
        entities=[OpaqueFunction(function=_log_failed_transition)])
    exited = OnProcessExit(target_action=node, on_exit=_shut_down)
    return [RegisterEventHandler(configured), RegisterEventHandler(failed), RegisterEventHandler(exited),
            change_state(node, Transition.TRANSITION_CONFIGURE)]


def _shut_down(event: Any, context: LaunchContext) -> Optional[List[Action]]:
    if context.is_shutdown:  # the node exits because the launch stops: a second Shutdown would fail
        return None
    return [EmitEvent(event=Shutdown(reason=f"{event.action.node_name} exited"))]


def _log_failed_transition(context: LaunchContext) -> None:
    event = context.locals.event
    launch.logging.get_logger("asymtrack_ros.launch").error(
        f"{event.action.node_name} is unconfigured after a failed transition ({event.start_state} -> "
        "unconfigured; the node's log says why, e.g. a missing model file): it does not track. Fix its "
        "parameters and relaunch.")


class NodeActive(Event):
    """Emitted by ``WhenActive`` when its node is ACTIVE."""

    name = "asymtrack_ros.events.NodeActive"


class WhenActive(Action):
    """Run ``actions`` the first time a lifecycle node is ACTIVE, whoever drove it there.

    It asks the node's get_state service every ``poll_s`` s rather than waiting for a transition
    event: those are published on a volatile topic, and a manager that drives the node as soon as
    its services appear makes the node publish them before it has discovered this launch's
    subscription (then they are lost, and the actions would never run).
    """

    def __init__(self, node: LifecycleNode, actions: List[Action], poll_s: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)
        self.node = node
        self.actions = actions
        self.poll_s = poll_s

    def execute(self, context: LaunchContext) -> None:
        active = NodeActive()
        context.register_event_handler(EventHandler(matcher=lambda event: event is active,
                                                    entities=self.actions, handle_once=True))
        context.add_completion_future(
            context.asyncio_loop.run_in_executor(None, self._wait_for_active, context, active))

    def _wait_for_active(self, context: LaunchContext, active: NodeActive) -> None:
        """Poll (in a worker thread) until the node is ACTIVE or the launch shuts down."""
        ros_node = get_ros_node(context)
        client = ros_node.create_client(GetState, f"{self.node.node_name}/get_state")
        try:
            while not context.is_shutdown:
                if self._state(client, context) == "active":
                    context.asyncio_loop.call_soon_threadsafe(context.emit_event_sync, active)
                    return
                time.sleep(self.poll_s)
        except Exception as exc:  # the launch's ROS node goes away on shutdown, under a waiting call
            if not context.is_shutdown:
                launch.logging.get_logger("asymtrack_ros.launch").error(
                    f"waiting for {self.node.node_name} to be active: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):  # already destroyed with the node at shutdown
                ros_node.destroy_client(client)

    def _state(self, client: Any, context: LaunchContext) -> str:
        """The node's state label; empty while its service is not there (yet)."""
        if not client.wait_for_service(timeout_sec=self.poll_s):
            return ""
        answered = threading.Event()
        future = client.call_async(GetState.Request())
        future.add_done_callback(lambda _: answered.set())
        while not answered.wait(self.poll_s):
            if context.is_shutdown:
                future.cancel()
                return ""
        return future.result().current_state.label
