"""The launch side of the tracker node's lifecycle, shared by the package's launch files.

The node is a managed (lifecycle) node that starts unconfigured. The launch files start it as a
launch_ros ``LifecycleNode`` and, unless an external lifecycle manager drives it (launch argument
``lifecycle_manager:=true``), ask it to configure as soon as it answers on its get_state service and
to activate once that configure has left it inactive. ``when_active`` runs actions (the demo's bag
player) once the node is ACTIVE. Needs launch and launch_ros (a ROS 2 installation): only launch
files import this module.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Dict, Iterable, List, Optional

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
    """Configure ``node`` once it answers and activate it once configured; log a failed transition.

    The launch ends when the node's process exits: a transition request (or ``WhenState``) still
    waiting for the node would otherwise keep the launch from ever finishing.
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
            WhenState(node, [change_state(node, Transition.TRANSITION_CONFIGURE)])]


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


class NodeInState(Event):
    """Emitted by ``WhenState`` when its node has answered with one of its states."""

    name = "asymtrack_ros.events.NodeInState"


class WhenState(Action):
    """Run ``actions`` the first time a lifecycle node's get_state service answers with one of
    ``states`` (any state when None), asking every ``poll_s`` s.

    Asking rather than waiting for transition events: those are published on a volatile topic, and
    a node driven as soon as its services appear published them before it had discovered this
    launch's subscription (so they were lost). Once the node has answered here it has discovered
    this launch's readers, the answers to change_state and the transition events included.
    """

    ANSWER_TIMEOUT_S = 5.0  # an answer lost the same way: ask again

    def __init__(self, node: LifecycleNode, actions: List[Action], states: Optional[Iterable[str]] = None,
                 poll_s: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)
        self.node = node
        self.actions = actions
        self.states = None if states is None else frozenset(states)
        self.poll_s = poll_s

    def execute(self, context: LaunchContext) -> None:
        reached = NodeInState()
        context.register_event_handler(EventHandler(matcher=lambda event: event is reached,
                                                    entities=self.actions, handle_once=True))
        context.add_completion_future(
            context.asyncio_loop.run_in_executor(None, self._wait, context, reached))

    def _wait(self, context: LaunchContext, reached: NodeInState) -> None:
        """Poll (in a worker thread) until the node answers with one of the states, or the launch
        shuts down."""
        ros_node = get_ros_node(context)
        client = ros_node.create_client(GetState, f"{self.node.node_name}/get_state")
        try:
            while not context.is_shutdown:
                state = self._state(client, context)
                if state and (self.states is None or state in self.states):
                    context.asyncio_loop.call_soon_threadsafe(context.emit_event_sync, reached)
                    return
                time.sleep(self.poll_s)
        except Exception as exc:  # the launch's ROS node goes away on shutdown, under a waiting call
            if not context.is_shutdown:
                launch.logging.get_logger("asymtrack_ros.launch").error(
                    f"asking {self.node.node_name} for its state: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):  # already destroyed with the node at shutdown
                ros_node.destroy_client(client)

    def _state(self, client: Any, context: LaunchContext) -> str:
        """The node's state label; empty while its service is not there or its answer is lost."""
        if not client.wait_for_service(timeout_sec=self.poll_s):
            return ""
        answered = threading.Event()
        future = client.call_async(GetState.Request())
        future.add_done_callback(lambda _: answered.set())
        deadline = time.monotonic() + self.ANSWER_TIMEOUT_S
        while not answered.wait(self.poll_s):
            if context.is_shutdown or time.monotonic() > deadline:
                client.remove_pending_request(future)
                return ""
        return future.result().current_state.label


def when_active(node: LifecycleNode, actions: List[Action]) -> WhenState:
    """Run ``actions`` the first time ``node`` is ACTIVE, whoever drove it there."""
    return WhenState(node, actions, states=["active"])
