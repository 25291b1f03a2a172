"""The node's parameters: declarations with descriptors and ranges, and their validation.

Ranges are checked by rclpy from the descriptors; choices and cross-parameter rules (lost <
recover threshold) by ``validate``, at startup and from the on-set-parameters callback.
Parameters marked read-only take effect at startup only (change them and restart the node).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from asymtrack_ros.backends import BACKEND_CHOICES, BackendOptions
from asymtrack_ros.backends.engine_cache import DEFAULT_PRECISION, PRECISIONS
from asymtrack_ros.model_info import canonical_variant
from asymtrack_ros.packaged import resolve_model
from asymtrack_ros.tracking import TrackerConfig
from asymtrack_ros.tracking.session import SessionConfig

MODEL_HINT = "set the node's 'model' parameter"


class ParameterError(ValueError):
    """A parameter value is invalid; the text names the parameter and says why."""


@dataclass(frozen=True)
class Spec:
    name: str
    default: Any
    description: str
    read_only: bool = False
    choices: Tuple[str, ...] = ()
    range: Optional[Tuple[float, float]] = None


SPECS: Tuple[Spec, ...] = (
    Spec("autostart", False, "Configure and activate at start (for ros2 run without a lifecycle manager; "
         "the launch files drive the transitions themselves).", read_only=True),
    Spec("model", "", "Model file: NAME.pt / NAME.template.onnx / NAME.search.onnx / prefix / published "
         ".pth.tar. Empty: the packaged demo model models/asymtrack_t_demo.pt. A relative path that does "
         "not exist is looked up in the package's models/ folder.", read_only=True),
    Spec("variant", "", "AsymTrack variant t|s|b (tiny|small|base); empty: from the model file. Needed only "
         "for published checkpoints without metadata; otherwise checked against the model.", read_only=True,
         choices=("", "t", "s", "b", "tiny", "small", "base")),
    Spec("backend", "auto", "Inference backend; auto: tensorrt with a GPU, else onnxruntime, else pytorch.",
         read_only=True, choices=BACKEND_CHOICES),
    Spec("precision", DEFAULT_PRECISION, "TensorRT precision (also the ONNX Runtime TensorRT provider's).",
         read_only=True, choices=PRECISIONS),
    Spec("device", "", "Empty: the backend's default. pytorch: torch device (cpu, cuda:0); tensorrt: GPU "
         "index (0, cuda:1); onnxruntime: execution providers (cpu, cuda, tensorrt, auto).", read_only=True),
    Spec("threads", 0, "ONNX Runtime and PyTorch intra-op threads; 0: the runtime's default (ONNX Runtime: "
         "one per physical core).", read_only=True, range=(0, 64)),
    Spec("spin_us", 0, "Microseconds ONNX Runtime worker threads spin waiting for work before they "
         "sleep; 0: never spin, -1: onnxruntime's own policy (spins between frames too).", read_only=True,
         range=(-1, 1000000)),
    Spec("engine_cache_dir", "", "Where TensorRT engines are built and cached; empty: beside the ONNX files "
         "if writable, else ~/.cache/asymtrack_ros/engines.", read_only=True),
    Spec("lost_threshold", 0.0, "TRACKING -> LOST after frames_to_lose frames with confidence below this; "
         "0: the model's calibrated value (docs/TRACKER.md).", range=(0.0, 1.0)),
    Spec("recover_threshold", 0.0, "LOST -> TRACKING after frames_to_recover frames at or above this "
         "(must exceed lost_threshold); 0: the model's calibrated value.", range=(0.0, 1.0)),
    Spec("frames_to_lose", 3, "Consecutive low-confidence frames before LOST.", range=(1, 1000)),
    Spec("frames_to_recover", 2, "Consecutive confident frames before TRACKING again.", range=(1, 1000)),
    Spec("lost_search_factor", 0.0, "Search crop factor while LOST; 0: the model's own.", range=(0.0, 20.0)),
    Spec("class_id", "target", "results[0].hypothesis.class_id of the published detections."),
    Spec("frame_buffer_length", 30, "Recent frames kept to apply a stamped init box to its own frame.",
         range=(1, 1000)),
    Spec("frame_buffer_max_mb", 256, "Megabytes (10^6 bytes) of image data the frame buffer may hold: "
         "large frames are kept for fewer than frame_buffer_length frames (always at least one).",
         range=(1, 100000)),
    Spec("init_stamp_tolerance", 0.02, "Seconds between an init box's stamp and the nearest buffered frame.",
         range=(0.0, 10.0)),
    Spec("init_wait_timeout", 1.0, "Seconds an init box stamped after the newest frame waits for its frame.",
         range=(0.0, 60.0)),
    Spec("image_transport", "raw", "raw: subscribe 'image' (sensor_msgs/Image); compressed: subscribe "
         "'image/compressed' (sensor_msgs/CompressedImage).", read_only=True, choices=("raw", "compressed")),
    Spec("image_qos.reliability", "best_effort", "Deprecated: use qos_overrides./<ns>/image.subscription."
         "reliability. Image subscription reliability.", read_only=True, choices=("best_effort", "reliable")),
    Spec("image_qos.depth", 1, "Deprecated: use qos_overrides./<ns>/image.subscription.depth. Image "
         "subscription queue depth (keep last).", read_only=True, range=(1, 100)),
    Spec("max_image_pixels", 16_777_216, "Frames with more pixels (width x height, read from the message "
         "or the JPEG/PNG header) are refused as bad images before any conversion. Default 4096 x 4096.",
         range=(1, 1_000_000_000)),
    Spec("publish_debug_image", False, "Publish 'debug_image' (rgb8) with the box drawn."),
    Spec("diagnostics.warn_latency_ms", 100.0, "WARN when the latency p95 exceeds this.", range=(0.0, 1e5)),
    Spec("diagnostics.warn_drop_ratio", 0.25, "WARN when dropped / received frames exceed this.",
         range=(0.0, 1.0)),
    Spec("diagnostics.stale_timeout", 2.0, "WARN when no image arrived for this many seconds.",
         range=(0.1, 3600.0)),
)
SPEC_BY_NAME: Dict[str, Spec] = {spec.name: spec for spec in SPECS}
DEPRECATED = ("image_qos.reliability", "image_qos.depth")
MB = 1_000_000


def descriptor(spec: Spec) -> ParameterDescriptor:
    desc = ParameterDescriptor(name=spec.name, description=spec.description, read_only=spec.read_only)
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(repr(c) for c in spec.choices)
    if spec.range is not None:
        low, high = spec.range
        if isinstance(spec.default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high),
                                                            step=0.0)]
        else:
            desc.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
    return desc


def declare(node: Node) -> Dict[str, Any]:
    """Declare every parameter and return the validated values; raises ParameterError."""
    for spec in SPECS:
        try:
            node.declare_parameter(spec.name, spec.default, descriptor(spec))
        except ParameterException as exc:
            raise ParameterError(f"parameter {spec.name!r}: {exc}") from None
    values = {spec.name: node.get_parameter(spec.name).value for spec in SPECS}
    validate(values)
    return values


def _check_one(name: str, value: Any) -> None:
    spec = SPEC_BY_NAME[name]
    if spec.choices and value not in spec.choices:
        raise ParameterError(f"parameter {name!r} must be one of {list(spec.choices)}, got {value!r}")
    if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
        low, high = spec.range
        raise ParameterError(f"parameter {name!r} must be in [{low}, {high}], got {value!r}")
    if name == "variant" and value:
        canonical_variant(value)


def backend_options(values: Dict[str, Any]) -> BackendOptions:
    """The backend parameters as ``BackendOptions`` (each backend reads the fields it knows)."""
    return BackendOptions(device=str(values["device"]), threads=int(values["threads"]),
                          precision=values["precision"], spin_us=int(values["spin_us"]),
                          engine_cache_dir=values["engine_cache_dir"] or None,
                          variant=values["variant"] or None)


def model_path(values: Dict[str, Any]) -> Path:
    """The ``model`` parameter resolved (empty: the packaged demo model; ``$ASYMTRACK_MODEL`` is not
    read); ModelNotFoundError names the missing file."""
    return resolve_model(values["model"] or None, use_env=False, hint=MODEL_HINT)


def tracker_config(values: Dict[str, Any]) -> TrackerConfig:
    """A threshold of 0 is left to the model's calibration (resolved by Tracker)."""
    try:
        return TrackerConfig(lost_threshold=float(values["lost_threshold"]) or None,
                             recover_threshold=float(values["recover_threshold"]) or None,
                             frames_to_lose=int(values["frames_to_lose"]),
                             frames_to_recover=int(values["frames_to_recover"]),
                             lost_search_factor=float(values["lost_search_factor"]) or None)
    except ValueError as exc:
        raise ParameterError(f"tracker thresholds: {exc}") from None


def session_config(values: Dict[str, Any]) -> SessionConfig:
    return SessionConfig(buffer_length=int(values["frame_buffer_length"]),
                         buffer_max_bytes=int(values["frame_buffer_max_mb"]) * MB,
                         init_stamp_tolerance_s=float(values["init_stamp_tolerance"]),
                         init_wait_timeout_s=float(values["init_wait_timeout"]))


def image_qos(values: Dict[str, Any]) -> QoSProfile:
    """The image subscription's base profile (``qos_overrides`` parameters then override it)."""
    reliable = values["image_qos.reliability"] == "reliable"
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=values["image_qos.depth"],
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def warn_deprecated(values: Dict[str, Any], logger: Any) -> None:
    """The old QoS parameter names still work for this release, with a warning."""
    for name in DEPRECATED:
        if values[name] != SPEC_BY_NAME[name].default:
            policy = name.split(".")[-1]
            logger.warn(f"parameter {name!r} is deprecated: set 'qos_overrides./<namespace>/image."
                        f"subscription.{policy}' (rclpy's standard QoS override) instead")


def validate(values: Dict[str, Any]) -> None:
    """Check a complete set of values (choices, ranges, thresholds); raises ParameterError."""
    for name, value in values.items():
        if name in SPEC_BY_NAME:
            _check_one(name, value)
    tracker_config(values)


def merged(current: Dict[str, Any], changes: Iterable[Parameter]) -> Dict[str, Any]:
    """``current`` updated with the changes to known parameters (others are ignored)."""
    values = dict(current)
    for param in changes:
        if param.name in SPEC_BY_NAME:
            values[param.name] = param.value
    return values
