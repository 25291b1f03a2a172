"""The ROS 2 node over real DDS: tracks, stamped init, bad inputs, reset, parameters, diagnostics.

Most tests run the node in this process beside a test node on one executor; two start the
``asymtrack-node`` console script as a separate process. The model is the reference random tiny
checkpoint exported to ONNX in a temporary folder and run with ONNX Runtime (the deploy path).
Each test session uses its own random ROS_DOMAIN_ID (test/conftest.py) so that parallel DDS tests do not meet.
"""

from __future__ import annotations

import array
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not built (scripts/setup.sh)")
pytest.importorskip("asymtrack_msgs.msg", reason="asymtrack_msgs is not built (scripts/setup.sh)")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray  # noqa: E402

from asymtrack_msgs.msg import TrackStatus  # noqa: E402
from asymtrack_ros.ros import parameters  # noqa: E402
from asymtrack_ros.ros.messages import bbox_to_box, box_to_bbox, make_image  # noqa: E402
from asymtrack_ros.ros.node import AsymTrackNode  # noqa: E402
from asymtrack_ros.ros.parameters import ParameterError  # noqa: E402
from asymtrack_ros.stamps import split_ns, stamp_to_ns  # noqa: E402
from asymtrack_ros.synthetic import make_sequence  # noqa: E402

pytestmark = pytest.mark.ros

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
T0 = 1000  # seconds: frame i is stamped T0 + i * 0.05 s
PERIOD_NS = 50_000_000
TIMEOUT = 15.0


def image_qos(namespace: str, reliability: str, depth: int) -> Dict[str, Any]:
    """The image subscription's QoS through rclpy's standard ``qos_overrides`` parameters."""
    ns = namespace.strip("/")
    prefix = f"qos_overrides./{ns + '/' if ns else ''}image.subscription"
    return {f"{prefix}.reliability": reliability, f"{prefix}.depth": depth}


def stamp_of(i: int) -> int:
    return T0 * 1_000_000_000 + i * PERIOD_NS


def set_stamp(header: Any, ns: int) -> None:
    header.stamp.sec, header.stamp.nanosec = split_ns(ns)
    header.frame_id = "camera"


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture(scope="session")
def onnx_model(reference_dir, tmp_path_factory) -> Path:
    pytest.importorskip("torch", reason="exporting the test model needs torch")
    from asymtrack_ros.export import export_onnx
    from asymtrack_ros.model import load_model

    prefix = tmp_path_factory.mktemp("model") / "tiny_random"
    export_onnx(load_model(reference_dir / "official_tiny_random.pth.tar"), prefix)
    return Path(f"{prefix}.search.onnx")


@pytest.fixture(scope="module")
def sequence():
    return make_sequence(5, 14, size=(240, 320), speed=4.0)


def offline_results(model: Path, frames: List[np.ndarray], init_index: int, box) -> List[Any]:
    """What the ROS-free Tracker gives on the same frames (same backend, same default thresholds)."""
    from asymtrack_ros.backends import create_backend
    from asymtrack_ros.tracking import Tracker

    values = {spec.name: spec.default for spec in parameters.SPECS}
    with create_backend("onnxruntime", str(model)) as backend:
        tracker = Tracker(backend, parameters.tracker_config(values))
        results = [tracker.init(frames[init_index], box)]
        results += [tracker.update(frame) for frame in frames[init_index + 1:]]
    return results


class Harness:
    """The node under test and a test node on one executor spinning in a background thread."""

    def __init__(self, overrides: Dict[str, Any], namespace: str = ""):
        values = {"autostart": True, **image_qos(namespace, "reliable", 10)}
        values.update(overrides)
        params = [Parameter(name, value=value) for name, value in values.items()]
        self.node = AsymTrackNode(namespace=namespace, parameter_overrides=params)
        self.tester = Node("asymtrack_tester", namespace=namespace)
        self.lock = threading.Lock()
        self.tracks: List[Detection2DArray] = []
        self.status: List[TrackStatus] = []
        self.diagnostics: List[DiagnosticStatus] = []
        self.debug: List[Image] = []
        t = self.tester
        t.create_subscription(Detection2DArray, "tracks", self._keep(self.tracks), RELIABLE)
        t.create_subscription(TrackStatus, "track_status", self._keep(self.status), RELIABLE)
        t.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, RELIABLE)
        t.create_subscription(Image, "debug_image", self._keep(self.debug), QoSProfile(depth=10))
        self.image_pub = t.create_publisher(Image, "image", RELIABLE)
        self.compressed_pub = t.create_publisher(CompressedImage, "image/compressed", RELIABLE)
        self.init_pub = t.create_publisher(Detection2D, "init_box", RELIABLE)
        self.latest_pub = t.create_publisher(BoundingBox2D, "init_box_latest", RELIABLE)
        self.reset_client = t.create_client(Trigger, "asymtrack_node/reset")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.executor.add_node(t)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _keep(self, store: List[Any]) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            with self.lock:
                store.append(msg)
        return callback

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.diagnostics += [s for s in msg.status if s.name == "asymtrack_node: tracker"]

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                value = predicate()
            if value:
                return value
            time.sleep(0.01)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def connect(self, *publishers: Any) -> None:
        self.wait(lambda: all(p.get_subscription_count() > 0 for p in publishers), "discovery")
        self.wait(lambda: self.node.ready.is_set(), "the model to load")
        # the node's publishers exist from configure on: outputs sent before they have matched our
        # subscriptions would be lost
        outputs = (self.node._tracks_pub, self.node._status_pub)
        self.wait(lambda: all(p.get_subscription_count() > 0 for p in outputs), "the outputs to connect")

    def publish_frame(self, frame: np.ndarray, i: int, encoding: str = "rgb8") -> Image:
        msg = make_image(frame, encoding)
        set_stamp(msg.header, stamp_of(i))
        self.image_pub.publish(msg)
        return msg

    def tracks_at(self, ns: int, with_detection: Optional[bool] = None) -> Callable[[], List[Any]]:
        def find() -> List[Detection2DArray]:
            return [m for m in self.tracks if stamp_to_ns(m.header.stamp) == ns
                    and (with_detection is None or bool(m.detections) == with_detection)]
        return find

    def status_at(self, i: int) -> Callable[[], List[TrackStatus]]:
        return lambda: [s for s in self.status if stamp_to_ns(s.header.stamp) == stamp_of(i)]

    def step(self, frame: np.ndarray, i: int) -> Detection2DArray:
        """Publish frame i and wait for its tracks (lock-step, so no frame is dropped)."""
        self.publish_frame(frame, i)
        return self.wait(self.tracks_at(stamp_of(i)), f"tracks of frame {i}")[-1]

    def init(self, box, i: Optional[int]) -> None:
        msg = Detection2D(bbox=box_to_bbox(box))
        if i is not None:
            set_stamp(msg.header, stamp_of(i))
        self.init_pub.publish(msg)

    def last_diagnostics(self, predicate: Callable[[DiagnosticStatus], bool], what: str) -> DiagnosticStatus:
        return self.wait(lambda: next((s for s in reversed(self.diagnostics) if predicate(s)), None), what)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.tester.destroy_node()
        self.thread.join(timeout=5.0)


def values_of(status: DiagnosticStatus) -> Dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def assert_box(detection: Detection2D, box, tol: float = 0.05) -> None:
    np.testing.assert_allclose(bbox_to_box(detection.bbox), box, atol=tol)


@pytest.fixture
def harness(ros, onnx_model):
    created: List[Harness] = []

    def make(**overrides: Any) -> Harness:
        overrides.setdefault("model", str(onnx_model))
        overrides.setdefault("backend", "onnxruntime")
        h = Harness(overrides)
        created.append(h)
        return h

    yield make
    for h in created:
        h.close()


def test_tracks_match_the_tracker_on_the_same_frames(harness, onnx_model, sequence):
    h = harness()
    h.connect(h.image_pub, h.init_pub)
    k = 3
    frames = sequence.frames
    before = [h.step(frames[i], i) for i in range(k + 1)]
    assert all(not m.detections for m in before), "nothing is tracked before the init box"
    h.init(sequence.boxes[k], k)
    init_msg = h.wait(h.tracks_at(stamp_of(k), with_detection=True), "the init frame's track")[-1]
    published = [init_msg] + [h.step(frames[i], i) for i in range(k + 1, len(frames))]
    expected = offline_results(onnx_model, frames, k, sequence.boxes[k])
    track_id = published[0].detections[0].id
    assert track_id
    for i, (msg, result) in enumerate(zip(published, expected), start=k):
        assert stamp_to_ns(msg.header.stamp) == stamp_of(i) and msg.header.frame_id == "camera"
        if result.state.name == "TRACKING":
            assert len(msg.detections) == 1, f"frame {i}"
            det = msg.detections[0]
            assert det.id == track_id and stamp_to_ns(det.header.stamp) == stamp_of(i)
            assert det.results[0].hypothesis.class_id == "target"
            assert det.results[0].hypothesis.score == pytest.approx(result.confidence, abs=1e-4)
            assert_box(det, result.box)
        else:
            assert not msg.detections, f"frame {i} is {result.state.name}: no detection"
    statuses = h.wait(h.status_at(len(frames) - 1), "the last track status")
    assert statuses[-1].frames_since_init == len(frames) - 1 - k
    assert statuses[-1].track_id == track_id and statuses[-1].state == int(expected[-1].state)
    assert statuses[-1].latency_ms > 0 and statuses[-1].inference_ms > 0


def test_init_by_an_old_stamp_uses_that_frame_then_catches_up(harness, onnx_model, sequence):
    h = harness()
    h.connect(h.image_pub, h.init_pub, h.latest_pub)
    frames, last = sequence.frames, len(sequence.frames) - 1
    for i in range(len(frames)):
        h.step(frames[i], i)
    k = 4
    h.init(sequence.boxes[k], k)
    status = h.wait(lambda: [s for s in h.status if s.track_id and s.frames_since_init == last - k],
                    "catch-up status")[-1]
    assert stamp_to_ns(status.header.stamp) == stamp_of(last)
    expected = offline_results(onnx_model, frames, k, sequence.boxes[k])[-1]
    assert status.state == int(expected.state)  # the random test model may lose the target: same state
    assert status.confidence == pytest.approx(expected.confidence, abs=1e-4)
    msg = h.wait(h.tracks_at(stamp_of(last)), "the caught-up track")[-1]
    if expected.state.name == "TRACKING":
        assert_box(msg.detections[0], expected.box)
    else:
        assert not msg.detections
    first_id = status.track_id

    h.tracks.clear()
    h.init(sequence.boxes[k + 1], None)  # no stamp: the newest frame
    msg = h.wait(h.tracks_at(stamp_of(last), with_detection=True), "the re-init on the newest frame")[-1]
    assert_box(msg.detections[0], sequence.boxes[k + 1], tol=1e-6)
    assert msg.detections[0].id != first_id, "a new init gets a new track id"

    h.tracks.clear()
    h.latest_pub.publish(box_to_bbox(sequence.boxes[2]))
    msg = h.wait(h.tracks_at(stamp_of(last), with_detection=True), "the init_box_latest track")[-1]
    assert_box(msg.detections[0], sequence.boxes[2], tol=1e-6)
    assert msg.detections[0].id not in (first_id, "")


def test_bad_inputs_are_reported_and_never_stop_the_node(harness, sequence):
    h = harness(frame_buffer_length=4, init_wait_timeout=0.2)
    h.connect(h.image_pub, h.init_pub)
    frames = sequence.frames
    for i in range(6):
        h.step(frames[i], i)
    bad = [make_image(np.zeros((8, 8), np.uint16), "16UC1"), make_image(frames[0], "rgb8"),
           Image(encoding="rgb8")]
    bad[1].step += 1
    for j, msg in enumerate(bad, start=1):  # one at a time, else the newest frame wins
        set_stamp(msg.header, stamp_of(6) + j)
        h.image_pub.publish(msg)
        h.wait(lambda j=j: h.node.counters()["bad_images"] == j, f"bad image {j} to be counted")
    bad_boxes = (((10.0, 10.0, 0.0, 20.0), 5),  # zero width
                 ((float("nan"), 10.0, 20.0, 20.0), 5),
                 (sequence.boxes[0], 0),  # older than the 4 buffered frames
                 (sequence.boxes[5], 500),  # far newer than the newest frame: times out
                 ((5000.0, 5000.0, 20.0, 20.0), 5))  # outside the image
    for n, (box, i) in enumerate(bad_boxes, start=1):  # one at a time: a new init replaces a pending one
        h.init(box, i)
        h.wait(lambda n=n: h.node.counters()["rejected_inits"] == n, f"init box {n} to be rejected")
    status = h.last_diagnostics(lambda s: values_of(s)["bad_images"] == "3"
                                and values_of(s)["rejected_init_boxes"] == "5", "bad inputs in diagnostics")
    assert status.level == DiagnosticStatus.WARN
    assert "bad images" in status.message and "rejected init boxes" in status.message
    # Still alive: a good init and frame give a track.
    h.init(sequence.boxes[5], 5)
    h.wait(h.tracks_at(stamp_of(5), with_detection=True), "a track after the bad inputs")
    assert h.step(frames[6], 10).detections


def test_reset_service_stops_tracking(harness, sequence):
    h = harness()
    h.connect(h.image_pub, h.init_pub)
    h.step(sequence.frames[0], 0)
    h.init(sequence.boxes[0], 0)
    h.wait(h.tracks_at(stamp_of(0), with_detection=True), "the init track")
    assert h.reset_client.wait_for_service(timeout_sec=TIMEOUT)
    future = h.reset_client.call_async(Trigger.Request())
    response = h.wait(lambda: future.result() if future.done() else None, "the reset response")
    assert response.success and "TRACKING" in response.message
    msg = h.step(sequence.frames[1], 1)
    assert not msg.detections
    status = h.wait(h.status_at(1), "IDLE status")
    assert status[-1].state == TrackStatus.IDLE and status[-1].track_id == ""


def test_newest_frame_wins_and_drops_are_counted(harness, sequence):
    h = harness(**image_qos("", "reliable", 100))  # DDS keeps every frame: the node alone drops
    h.connect(h.image_pub, h.init_pub)
    h.step(sequence.frames[0], 0)
    h.init(sequence.boxes[0], 0)
    h.wait(h.tracks_at(stamp_of(0), with_detection=True), "the init track")
    h.tracks.clear()
    count = 40
    for i in range(1, count + 1):  # as fast as possible: faster than the tracker
        h.publish_frame(sequence.frames[i % len(sequence.frames)], i)
    h.wait(h.tracks_at(stamp_of(count)), "the newest frame's tracks")
    stamps = [stamp_to_ns(m.header.stamp) for m in h.tracks]
    assert stamps == sorted(set(stamps)), "outputs in stamp order, one per processed frame"
    status = h.last_diagnostics(lambda s: int(values_of(s)["received_frames"]) == count + 1, "the counts")
    dropped = int(values_of(status)["dropped_frames"])
    assert dropped > 0 and len(stamps) + dropped == count


def test_diagnostics_ok_while_tracking(harness, sequence):
    h = harness()
    h.connect(h.image_pub, h.init_pub)
    h.step(sequence.frames[0], 0)
    h.init(sequence.boxes[0], 0)
    for i in range(1, 12):
        h.step(sequence.frames[i], i)
        time.sleep(0.05)
    status = h.last_diagnostics(lambda s: float(values_of(s)["output_rate_hz"]) > 0, "output in diagnostics")
    values = values_of(status)
    assert status.hardware_id.startswith("onnxruntime")
    for key in ("input_rate_hz", "output_rate_hz", "latency_p50_ms", "latency_p95_ms", "dropped_frames",
                "state", "backend", "model", "variant", "track_id"):
        assert key in values, key
    assert values["backend"] == "onnxruntime" and values["variant"] == "tiny"
    assert float(values["latency_p95_ms"]) >= float(values["latency_p50_ms"]) > 0
    if status.level != DiagnosticStatus.OK:  # a loaded CI machine may trip the latency threshold
        assert "latency" in status.message, status.message


def test_compressed_input_and_debug_image(harness, sequence):
    import cv2

    h = harness(image_transport="compressed", publish_debug_image=True)
    h.connect(h.compressed_pub, h.init_pub)
    for i in range(2):
        ok, data = cv2.imencode(".png", cv2.cvtColor(sequence.frames[i], cv2.COLOR_RGB2BGR))
        msg = CompressedImage(format="png", data=array.array("B", data.tobytes()))
        set_stamp(msg.header, stamp_of(i))
        h.compressed_pub.publish(msg)
        h.wait(h.tracks_at(stamp_of(i)), f"tracks of compressed frame {i}")
        if i == 0:
            h.init(sequence.boxes[0], 0)
            h.wait(h.tracks_at(stamp_of(0), with_detection=True), "the init track")
    assert h.tracks[-1].detections
    debug = h.wait(lambda: [m for m in h.debug if stamp_to_ns(m.header.stamp) == stamp_of(1)], "debug")[-1]
    assert debug.encoding == "rgb8" and (debug.height, debug.width) == sequence.frames[1].shape[:2]


def test_parameters_are_validated_at_startup_and_on_set(ros, onnx_model):
    base = [Parameter("model", value=str(onnx_model)), Parameter("backend", value="onnxruntime")]
    for bad, reason in ((Parameter("backend", value="cuda"), "one of"),
                        (Parameter("frames_to_lose", value=0), "frames_to_lose"),
                        (Parameter("lost_threshold", value=1.0), "lost_threshold"),
                        (Parameter("autostart", value="yes"), "autostart"),
                        (Parameter("spin_us", value=-2), "spin_us"),
                        (Parameter("frame_buffer_length", value="long"), "frame_buffer_length")):
        with pytest.raises(ParameterError, match=reason):
            AsymTrackNode(parameter_overrides=base + [bad])
    node = AsymTrackNode(parameter_overrides=base)
    try:
        results = node.set_parameters([Parameter("backend", value="pytorch")])
        assert not results[0].successful and "read-only" in results[0].reason
        results = node.set_parameters_atomically([Parameter("lost_threshold", value=0.7),
                                                  Parameter("recover_threshold", value=0.6)])
        assert not results.successful and "recover_threshold" in results.reason
        results = node.set_parameters([Parameter("init_stamp_tolerance", value=-1.0)])
        assert not results[0].successful
        results = node.set_parameters([Parameter("frame_buffer_length", value=5),
                                       Parameter("lost_threshold", value=0.2)])
        assert all(r.successful for r in results)
        assert node.get_parameter("frame_buffer_length").value == 5
        descriptor = node.describe_parameter("frames_to_lose")
        assert descriptor.integer_range[0].from_value == 1 and descriptor.description
    finally:
        node.destroy_node()


def test_missing_model_fails_configure_and_reports_error(harness, sequence):
    h = harness(model="/nonexistent/asymtrack.pt")
    status = h.last_diagnostics(lambda s: s.level == DiagnosticStatus.ERROR, "ERROR diagnostics")
    assert "model not loaded" in status.message and "/nonexistent/asymtrack.pt" in status.message
    assert values_of(status)["lifecycle_state"] == "unconfigured"
    assert not h.node.ready.is_set() and h.image_pub.get_subscription_count() == 0  # not subscribed


# ---------------------------------------------------------------------- a separate process
def node_command() -> List[str]:
    script = shutil.which("asymtrack-node")
    if script:
        return [script]
    return [sys.executable, "-c", "import sys; from asymtrack_ros.ros.node import main; sys.exit(main())"]


def test_console_script_tracks_and_exits_cleanly_on_sigint(ros, onnx_model, sequence):
    cmd = node_command() + ["--ros-args", "-r", "__ns:=/proc_test", "-p", f"model:={onnx_model}",
                            "-p", "backend:=onnxruntime", "-p", "image_qos.reliability:=reliable",
                            "-p", "image_qos.depth:=10", "-r", "image:=camera/image_raw",
                            "-p", "autostart:=true"]  # the old QoS names: deprecated, still honoured
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tester = Node("proc_tester", namespace="/proc_test")
    tracks: List[Detection2DArray] = []
    tester.create_subscription(Detection2DArray, "tracks", tracks.append, RELIABLE)
    image_pub = tester.create_publisher(Image, "camera/image_raw", RELIABLE)
    init_pub = tester.create_publisher(Detection2D, "init_box", RELIABLE)

    def spin_until(predicate: Callable[[], Any], what: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert proc.poll() is None, f"the node exited: {proc.communicate()[1]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            rclpy.spin_once(tester, timeout_sec=0.02)

    def answered(i: int, with_detection: bool = False) -> bool:
        return any(stamp_to_ns(m.header.stamp) == stamp_of(i) and (m.detections or not with_detection)
                   for m in tracks)

    def publish(i: int) -> None:
        msg = make_image(sequence.frames[i], "rgb8")
        set_stamp(msg.header, stamp_of(i))
        image_pub.publish(msg)

    def first_answered() -> int:
        """The node's publishers are created (configure) just before its subscriptions (activate):
        our subscriptions may still be matching its publishers when its first outputs go out, and
        those are lost. Frames with new stamps until one is answered: the connection is made."""
        for i in range(len(sequence.frames) - 2):
            publish(i)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and not answered(i):
                assert proc.poll() is None, f"the node exited: {proc.communicate()[1]}"
                rclpy.spin_once(tester, timeout_sec=0.02)
            if answered(i):
                return i
        raise AssertionError("no frame answered")

    try:
        spin_until(lambda: image_pub.get_subscription_count() and init_pub.get_subscription_count()
                   and tester.count_publishers("/proc_test/tracks"), "discovery")
        first = first_answered()
        init = Detection2D(bbox=box_to_bbox(sequence.boxes[first]))
        set_stamp(init.header, stamp_of(first))
        init_pub.publish(init)
        spin_until(lambda: answered(first, with_detection=True), "the init track")
        for i in (first + 1, first + 2):
            publish(i)
            spin_until(lambda i=i: answered(i), f"tracks of frame {i}")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        tester.destroy_node()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Traceback" not in out, err
    assert "'image_qos.reliability' is deprecated" in err + out


def test_console_script_rejects_invalid_parameters(ros):
    cmd = node_command() + ["--ros-args", "-p", "backend:=cuda", "-p", "frame_buffer_length:=0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "invalid parameter" in proc.stderr and "Traceback" not in proc.stderr
