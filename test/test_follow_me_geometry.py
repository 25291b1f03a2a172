"""The follow-me math without ROS: camera model, bearing, depth, overlays, MAVLink tracking semantics.

Truth comes from the forward model: 3D points projected with OpenCV's own projection
(cv2.projectPoints, cv2.fisheye.projectPoints) must come back as the angles and points they were
made from.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from asymtrack_ros.follow_me import camera_tracking as ct
from asymtrack_ros.follow_me import overlay
from asymtrack_ros.follow_me.bearing import bearing, normalised_offset
from asymtrack_ros.follow_me.camera import CameraModelError, camera_model
from asymtrack_ros.follow_me.depth import (
    DepthImageError,
    back_project,
    central_region,
    depth_from_buffer,
    target_depth,
)

W, H = 640, 480
K = [500.0, 0.0, 322.0, 0.0, 505.0, 236.0, 0.0, 0.0, 1.0]
DISTORTIONS = {
    "": [],
    "plumb_bob": [-0.28, 0.09, 0.001, -0.0005, -0.01],
    "rational_polynomial": [0.3, -0.1, 0.001, 0.0005, 0.02, 0.65, -0.05, 0.04],
    "equidistant": [-0.02, 0.01, -0.004, 0.001],
}


def project(points: np.ndarray, model: str) -> np.ndarray:
    """3D points (N, 3) in the optical frame -> pixels (N, 2) with the distortion of ``model``."""
    k = np.array(K).reshape(3, 3)
    d = np.array(DISTORTIONS[model], np.float64)
    zero = np.zeros((3, 1))
    if model == "equidistant":
        out, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), zero, zero, k, d)
    else:
        out, _ = cv2.projectPoints(points, zero, zero, k, d if d.size else None)
    return out.reshape(-1, 2)


def direction(azimuth: float, elevation: float) -> np.ndarray:
    """The unit ray with these angles under the documented convention."""
    return np.array([math.sin(azimuth) * math.cos(elevation), -math.sin(elevation),
                     math.cos(azimuth) * math.cos(elevation)])


@pytest.mark.parametrize("model", sorted(DISTORTIONS))
@pytest.mark.parametrize("azimuth,elevation", [(0.0, 0.0), (0.35, 0.0), (-0.2, 0.25), (0.3, -0.3)])
def test_bearing_recovers_the_angles_of_a_projected_point(model, azimuth, elevation):
    camera = camera_model(W, H, K, DISTORTIONS[model], model)
    u, v = project(direction(azimuth, elevation).reshape(1, 3) * 4.0, model)[0]
    result = bearing((u - 10, v - 8, 20, 16), W, H, camera)
    assert result.valid_angles
    assert result.azimuth == pytest.approx(azimuth, abs=1e-4)
    assert result.elevation == pytest.approx(elevation, abs=1e-4)


def test_signs_right_is_positive_azimuth_up_is_positive_elevation():
    camera = camera_model(W, H, K, [], "plumb_bob")
    right_and_up = bearing((500, 50, 20, 20), W, H, camera)
    assert right_and_up.azimuth > 0 and right_and_up.elevation > 0
    assert right_and_up.offset_x > 0 and right_and_up.offset_y < 0  # offsets follow the image axes
    left_and_down = bearing((50, 400, 20, 20), W, H, camera)
    assert left_and_down.azimuth < 0 and left_and_down.elevation < 0


@pytest.mark.parametrize("model", sorted(DISTORTIONS))
def test_angular_size_of_a_target_of_known_width(model):
    camera = camera_model(W, H, K, DISTORTIONS[model], model)
    half = 0.15  # rad: edges at +-0.15 rad around an off-axis centre line
    centre = 0.1
    left, right = project(np.stack([direction(centre - half, 0.0), direction(centre + half, 0.0)]), model)
    # the edge midpoints lie on the image row of the target (elevation 0 -> v of the centre ray)
    v = project(direction(centre, 0.0).reshape(1, 3), model)[0][1]
    box = (left[0], v - 10, right[0] - left[0], 20)
    result = bearing(box, W, H, camera)
    assert result.angular_width == pytest.approx(2 * half, abs=2e-3)


def test_offset_needs_no_intrinsics():
    assert normalised_offset((310, 230, 20, 20), W, H) == (0.0, 0.0)
    assert normalised_offset((620, 460, 20, 20), W, H) == pytest.approx((0.96875, 0.958333), abs=1e-6)
    result = bearing((0, 0, 20, 20), W, H, None)
    assert not result.valid_angles and math.isnan(result.azimuth)
    assert result.offset_x == pytest.approx(-0.96875)


@pytest.mark.parametrize("k,d,model,match", [
    ([0.0] * 9, [], "plumb_bob", "no focal length"),
    ([500, 0, 320, 0, float("nan"), 240, 0, 0, 1], [], "plumb_bob", "non-finite"),
    (K, [0.1, float("nan"), 0, 0, 0], "plumb_bob", "non-finite"),
    (K[:6], [], "plumb_bob", "expected 9"),
    ([500, 0, 900, 0, 500, 240, 0, 0, 1], [], "plumb_bob", "outside"),
    (K, [0.1, 0.0], "fov", "not supported"),
    (K, [0.1, 0.2], "equidistant", "4 coefficients"),
])
def test_unusable_camera_info_is_rejected_with_a_reason(k, d, model, match):
    with pytest.raises(CameraModelError, match=match):
        camera_model(W, H, k, d, model)


def test_unusable_camera_info_size_and_binning():
    with pytest.raises(CameraModelError, match="size"):
        camera_model(0, 0, K, [], "plumb_bob")
    with pytest.raises(CameraModelError, match="binning"):
        camera_model(W, H, K, [], "plumb_bob", binning=(2, 2))
    camera_model(W, H, K, [], "plumb_bob", roi=(0, 0, W, H))  # a full-image roi is fine
    camera_model(W, H, K, [0.0] * 5, "unknown_model")  # no distortion: the model's name does not matter


# ---------------------------------------------------------------------- depth
def depth_bytes(depth_m: np.ndarray, encoding: str, pad: int = 0, big: bool = False) -> tuple:
    if encoding == "32FC1":
        values = depth_m.astype(">f4" if big else "<f4")
    else:
        values = np.nan_to_num(depth_m * 1000.0).round().astype(">u2" if big else "<u2")
    rows = values.view(np.uint8).reshape(depth_m.shape[0], -1)
    rows = np.concatenate([rows, np.zeros((rows.shape[0], pad), np.uint8)], axis=1)
    return rows.tobytes(), rows.shape[1]


def scene(rng: np.random.Generator, target: float = 3.2) -> np.ndarray:
    """Background at 8 m, a target box at ``target`` m with noise and holes, edges of background."""
    depth = np.full((H, W), 8.0, np.float32)
    depth[200:300, 300:380] = target + rng.normal(0, 0.01, (100, 80))
    holes = rng.random((H, W)) < 0.2
    depth[holes] = 0.0
    depth[210:220, 310:320] = np.nan
    return depth


@pytest.mark.parametrize("encoding,big", [("16UC1", False), ("32FC1", False), ("32FC1", True),
                                          ("16UC1", True)])
def test_target_depth_is_the_median_over_the_box_centre(encoding, big):
    rng = np.random.default_rng(3)
    data, step = depth_bytes(scene(rng), encoding, pad=8, big=big)
    depth = depth_from_buffer(data, W, H, step, encoding, big)
    # the box reaches past the target onto the 8 m background: the central half does not
    estimate = target_depth(depth, (290, 190, 100, 120), central_fraction=0.5)
    assert estimate.valid
    assert estimate.depth == pytest.approx(3.2, abs=0.01)
    assert 0.0 < estimate.spread < 0.02
    assert 0.7 < estimate.valid_fraction < 0.9


def test_depth_invalid_everywhere_or_too_sparse():
    empty = np.zeros((H, W), np.float32)
    data, step = depth_bytes(empty, "32FC1")
    estimate = target_depth(depth_from_buffer(data, W, H, step, "32FC1"), (300, 200, 80, 100))
    assert not estimate.valid and "0%" in estimate.reason and math.isnan(estimate.depth)
    nan = np.full((H, W), np.inf, np.float32)
    data, step = depth_bytes(nan, "32FC1")
    assert not target_depth(depth_from_buffer(data, W, H, step, "32FC1"), (300, 200, 80, 100)).valid
    sparse = np.zeros((H, W), np.float32)
    sparse[::4, ::4] = 2.0  # 1 pixel in 16 valid
    estimate = target_depth(sparse.copy(), (300, 200, 80, 100), min_valid_fraction=0.2)
    assert not estimate.valid and estimate.valid_fraction == pytest.approx(1 / 16, abs=0.02)
    assert not target_depth(sparse, (-500, -500, 50, 50)).valid  # outside the image


def test_depth_image_errors():
    with pytest.raises(DepthImageError, match="encoding"):
        depth_from_buffer(b"\0" * 12, 2, 2, 3, "rgb8")
    with pytest.raises(DepthImageError, match="do not match"):
        depth_from_buffer(b"\0" * 7, 2, 2, 4, "16UC1")
    assert central_region((10, 10, 0.5, 0.5), 0.5, W, H) is not None  # one pixel at least


@pytest.mark.parametrize("model", sorted(DISTORTIONS))
def test_back_projection_recovers_the_3d_point(model):
    camera = camera_model(W, H, K, DISTORTIONS[model], model)
    truth = np.array([0.9, -0.45, 3.5])
    u, v = project(truth.reshape(1, 3), model)[0]
    depth = np.full((H, W), 9.0, np.float32)
    depth[int(v) - 20:int(v) + 20, int(u) - 15:int(u) + 15] = truth[2]
    box = (u - 15, v - 20, 30, 40)
    result = bearing(box, W, H, camera)
    estimate = target_depth(depth, box)
    assert estimate.valid and estimate.depth == pytest.approx(3.5)
    assert back_project(result.centre_ray, estimate.depth) == pytest.approx(tuple(truth), abs=1e-4)


# ---------------------------------------------------------------------- overlays
def test_markers_box_and_label():
    box_marker, label = overlay.markers((100, 50, 40, 30), "7", "LOST", 0.25)
    assert box_marker.kind == overlay.LINE_STRIP and box_marker.points[0] == box_marker.points[-1]
    assert set(box_marker.points) == {(100, 50), (140, 50), (140, 80), (100, 80)}
    assert label.kind == overlay.LINE_LIST and len(label.points) % 2 == 0 and label.points
    assert box_marker.colour == overlay.STATE_COLOURS["LOST"]
    ys = [p[1] for p in label.points]
    assert max(ys) <= 50 and min(ys) >= 0  # above the box
    top_label = overlay.markers((100, 2, 40, 30), "7", "TRACKING", 0.9)[1]
    assert min(p[1] for p in top_label.points) >= 2  # inside the image when the box touches its top


def test_stroke_text_covers_the_label_alphabet():
    for text in ("0123456789", "TRACKING", "LOST", "IDLE", "-.:"):
        segments = overlay.stroke_text(text, (0, 0), 8.0)
        xs = [p[0] for p in segments]
        assert len(segments) >= 2 * len(text.replace(" ", ""))
        ys = [p[1] for p in segments]
        assert max(xs) <= len(text) * 6.0 and min(ys) >= 0 and max(ys) <= 8.0
    assert overlay.stroke_text("?", (0, 0), 8.0) == []


def test_jpeg_debug_image_is_small_and_decodes():
    rng = np.random.default_rng(0)
    rgb = (rng.random((H, W, 3)) * 40 + 100).astype(np.uint8)
    drawn = overlay.draw(rgb, (100, 100, 50, 60), "1", "TRACKING", 0.8)
    assert (drawn[100, 120] == (0, 255, 0)).all() and (rgb[100, 120] != (0, 255, 0)).any()
    high, low = overlay.encode_jpeg(drawn, 95), overlay.encode_jpeg(drawn, 30)
    assert len(low) < len(high) < rgb.nbytes / 4
    decoded = cv2.imdecode(np.frombuffer(high, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == rgb.shape
    assert decoded[100, 120, 1] > 200 and decoded[100, 120, 0] < 60  # green stays green (BGR order)


# ---------------------------------------------------------------------- MAVLink tracking semantics
def test_enums_match_the_mavlink_common_dialect():
    common = pytest.importorskip("pymavlink.dialects.v20.common", reason="pymavlink is not installed")
    for member in ct.MavResult:
        assert getattr(common, f"MAV_RESULT_{member.name}") == member.value
    for member in ct.TrackingStatus:
        assert getattr(common, f"CAMERA_TRACKING_STATUS_FLAGS_{member.name}") == member.value
    for member in ct.TrackingMode:
        assert getattr(common, f"CAMERA_TRACKING_MODE_{member.name}") == member.value
    assert common.CAMERA_TRACKING_TARGET_DATA_IN_STATUS == ct.TargetData.IN_STATUS
    assert common.CAMERA_CAP_FLAGS_HAS_TRACKING_POINT == ct.CAP_HAS_TRACKING_POINT
    assert common.CAMERA_CAP_FLAGS_HAS_TRACKING_RECTANGLE == ct.CAP_HAS_TRACKING_RECTANGLE


def test_rectangle_to_box_and_its_errors():
    assert ct.rectangle_to_box(0.25, 0.5, 0.5, 0.75, (W, H)) == (160.0, 240.0, 160.0, 120.0)
    cases = [((0.2, 0.2, 0.4, 0.4), None, ct.MavResult.TEMPORARILY_REJECTED),
             ((0.5, 0.5, 1.3, 0.9), (W, H), ct.MavResult.DENIED),
             ((-0.1, 0.5, 0.3, 0.9), (W, H), ct.MavResult.DENIED),
             ((0.5, 0.5, 0.4, 0.9), (W, H), ct.MavResult.DENIED),  # corners swapped
             ((float("nan"), 0.5, 0.6, 0.9), (W, H), ct.MavResult.DENIED)]
    for params, size, result in cases:
        with pytest.raises(ct.CommandRejected) as info:
            ct.rectangle_to_box(*params, size)
        assert info.value.result == result, params


def test_point_to_box_uses_the_radius_or_the_default_size():
    assert ct.point_to_box(0.5, 0.5, 0.05, (W, H), 0.1) == pytest.approx((288.0, 208.0, 64.0, 64.0))
    assert ct.point_to_box(0.5, 0.5, 0.0, (W, H), 0.1) == pytest.approx((296.0, 216.0, 48.0, 48.0))
    x, y, w, h = ct.point_to_box(0.0, 0.0, 0.0, (W, H), 0.1)  # clipped at the corner
    assert (x, y, w, h) == pytest.approx((0.0, 0.0, 24.0, 24.0))
    with pytest.raises(ct.CommandRejected) as info:
        ct.point_to_box(1.5, 0.5, 0.0, (W, H), 0.1)
    assert info.value.result == ct.MavResult.DENIED


def test_image_status_per_state():
    idle = ct.image_status("IDLE", None, ct.TrackingMode.RECTANGLE, (W, H))
    assert (idle.tracking_status, idle.tracking_mode, idle.target_data) == (0, 0, 0)
    assert math.isnan(idle.point_x)
    tracking = ct.image_status("TRACKING", (160, 240, 160, 120), ct.TrackingMode.RECTANGLE, (W, H))
    assert tracking.tracking_status == ct.TrackingStatus.ACTIVE
    assert tracking.target_data == ct.TargetData.IN_STATUS
    assert (tracking.rec_top_x, tracking.rec_top_y, tracking.rec_bottom_x, tracking.rec_bottom_y) == \
        (0.25, 0.5, 0.5, 0.75)
    lost = ct.image_status("LOST", (160, 240, 160, 120), ct.TrackingMode.POINT, (W, H))
    assert lost.tracking_status == ct.TrackingStatus.ACTIVE | ct.TrackingStatus.COASTING
    assert (lost.point_x, lost.point_y, lost.radius) == (0.375, 0.625, 0.125) and math.isnan(lost.rec_top_x)
