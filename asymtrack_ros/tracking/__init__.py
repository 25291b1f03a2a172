"""ROS-free tracking: crops, normalisation, the Tracker, confidence and the LOST state machine.

Nothing here imports torch or rclpy: it runs unchanged over the ONNX Runtime and TensorRT
backends on a robot.
"""

from __future__ import annotations

from asymtrack_ros.tracking.calibration import DEFAULT_CALIBRATION, FEATURES, Calibration
from asymtrack_ros.tracking.confidence import corner_confidence, peak_confidence
from asymtrack_ros.tracking.crop import crop, crop_window, preprocess
from asymtrack_ros.tracking.inputs import as_rgb, check_box, clip_box
from asymtrack_ros.tracking.state import TrackerConfig, TrackState
from asymtrack_ros.tracking.tracker import Timings, Tracker, TrackResult

__all__ = ["crop", "crop_window", "preprocess", "corner_confidence", "peak_confidence", "as_rgb",
           "check_box", "clip_box", "Tracker", "TrackerConfig", "TrackResult", "TrackState", "Timings",
           "Calibration", "DEFAULT_CALIBRATION", "FEATURES"]
