"""The node as a managed (lifecycle) node, driven through its real change_state/get_state services."""

# ruff: noqa: F811 (the fixtures of test_ros_node are imported, then named as test arguments)
from __future__ import annotations

from typing import Any, List

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
pytest.importorskip("asymtrack_msgs.msg", reason="asymtrack_msgs is not built (scripts/setup.sh)")

from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from test_ros_node import (  # noqa: F401 (fixtures)
    harness,
    onnx_model,
    ros,
    sequence,
    stamp_of,
    values_of,
)
from vision_msgs.msg import LabelInfo

from asymtrack_msgs.msg import TrackStatus

pytestmark = pytest.mark.ros
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


class Lifecycle:
    """The node's lifecycle services, called over DDS from the harness's test node."""

    def __init__(self, h: Any):
        self.h = h
        self.change = h.tester.create_client(ChangeState, "asymtrack_node/change_state")
        self.get = h.tester.create_client(GetState, "asymtrack_node/get_state")
        h.wait(lambda: self.change.service_is_ready() and self.get.service_is_ready(), "lifecycle services")

    def _call(self, client: Any, request: Any) -> Any:
        future = client.call_async(request)
        return self.h.wait(lambda: future.done() and future.result(), f"{client.srv_name}")

    def state(self) -> int:
        return self._call(self.get, GetState.Request()).current_state.id

    def transition(self, transition_id: int) -> bool:
        return self._call(self.change, ChangeState.Request(transition=Transition(id=transition_id))).success


def start_track(h: Any, sequence: Any, first: int) -> TrackStatus:
    h.step(sequence.frames[first], first)
    h.init(sequence.boxes[first], first)
    return h.wait(lambda: [s for s in h.status_at(first)() if s.state == TrackStatus.TRACKING],
                  "the init status")[-1]


def test_the_lifecycle_gates_the_subscriptions_and_keeps_the_model_until_cleanup(harness, sequence):
    h = harness(autostart=False)
    life = Lifecycle(h)
    assert life.state() == State.PRIMARY_STATE_UNCONFIGURED
    status = h.last_diagnostics(lambda s: values_of(s)["lifecycle_state"] == "unconfigured", "diagnostics")
    assert status.level == DiagnosticStatus.WARN and "not tracking" in status.message
    assert h.image_pub.get_subscription_count() == 0

    assert life.transition(Transition.TRANSITION_CONFIGURE)
    assert life.state() == State.PRIMARY_STATE_INACTIVE
    backend = h.node._backend
    assert backend is not None and h.image_pub.get_subscription_count() == 0
    labels: List[LabelInfo] = []
    h.tester.create_subscription(LabelInfo, "label_info", labels.append, LATCHED)  # joins late: latched
    label = h.wait(lambda: labels, "the latched LabelInfo")[-1]
    assert [(c.class_id, c.class_name) for c in label.class_map] == [(0, "target")]
    assert 0.0 < label.threshold < 1.0

    assert life.transition(Transition.TRANSITION_ACTIVATE)
    h.connect(h.image_pub, h.init_pub)
    first = start_track(h, sequence, 0)
    assert first.track_id == "1"

    assert life.transition(Transition.TRANSITION_DEACTIVATE)
    assert life.state() == State.PRIMARY_STATE_INACTIVE
    h.wait(lambda: h.image_pub.get_subscription_count() == 0, "the image subscription to go")
    assert h.node._backend is backend  # deactivate frees nothing that is slow to get back

    assert life.transition(Transition.TRANSITION_ACTIVATE)  # the QoS overrides resolve only once
    h.connect(h.image_pub, h.init_pub)
    h.status.clear()
    h.step(sequence.frames[1], 1)
    idle = h.wait(h.status_at(1), "a status after re-activation")[-1]
    assert idle.state == TrackStatus.IDLE  # the track ended with the deactivation
    second = start_track(h, sequence, 2)
    assert second.track_id == "2"

    assert life.transition(Transition.TRANSITION_DEACTIVATE)
    assert life.transition(Transition.TRANSITION_CLEANUP)
    assert life.state() == State.PRIMARY_STATE_UNCONFIGURED and h.node._backend is None
    assert life.transition(Transition.TRANSITION_CONFIGURE)  # and back again
    assert life.transition(Transition.TRANSITION_ACTIVATE)
    assert life.state() == State.PRIMARY_STATE_ACTIVE


def test_qos_overrides_are_the_standard_parameters(harness):
    h = harness(autostart=True)
    name = "qos_overrides./image.subscription.depth"
    assert h.node.get_parameter(name).value == 10  # the harness sets depth 10 through it
    assert h.node.get_parameter("qos_overrides./image.subscription.reliability").value == "reliable"
    assert h.node.describe_parameter(name).read_only


def test_shutdown_from_active_frees_everything(harness):
    h = harness(autostart=True)
    life = Lifecycle(h)
    assert life.state() == State.PRIMARY_STATE_ACTIVE
    assert life.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert life.state() == State.PRIMARY_STATE_FINALIZED
    assert h.node._backend is None and not h.node.ready.is_set()
    h.wait(lambda: h.image_pub.get_subscription_count() == 0, "the image subscription to go")
