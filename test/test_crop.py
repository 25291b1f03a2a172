"""Crops and normalisation against the published tracking loop (crops.npz)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from asymtrack_ros.tracking import crop, crop_window, preprocess


def published_sample_target(image, box, factor, size):
    """The published sample_target, for comparison on boxes where its slicing is well defined."""
    x, y, w, h = box
    side = math.ceil(math.sqrt(w * h) * factor)
    x1 = round(x + 0.5 * w - side * 0.5)
    y1 = round(y + 0.5 * h - side * 0.5)
    x2, y2 = x1 + side, y1 + side
    x1_pad, y1_pad = max(0, -x1), max(0, -y1)
    x2_pad = max(x2 - image.shape[1] + 1, 0)
    y2_pad = max(y2 - image.shape[0] + 1, 0)
    patch = image[y1 + y1_pad:y2 - y2_pad, x1 + x1_pad:x2 - x2_pad, :]
    patch = cv2.copyMakeBorder(patch, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_CONSTANT)
    return cv2.resize(patch, (size, size)), size / side


def test_crops_match_published(reference_dir):
    ref = np.load(reference_dir / "crops.npz")
    for i in range(5):
        factor, size = float(ref[f"factor_{i}"]), int(ref[f"size_{i}"])
        out, resize_factor = crop(ref["image"], ref[f"box_{i}"], factor, size)
        expected = ref[f"crop_{i}"]
        assert out.shape == expected.shape and out.dtype == np.uint8
        diff = np.abs(out.astype(int) - expected.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.001, f"crop {i}"
        assert resize_factor == pytest.approx(float(ref[f"resize_factor_{i}"]), abs=1e-12)


def test_matches_published_code_on_random_boxes():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for _ in range(200):
        w, h = rng.uniform(3, 80, 2)
        x, y = rng.uniform(-w / 2, 160 - w / 2), rng.uniform(-h / 2, 120 - h / 2)
        factor = float(rng.choice([2.0, 4.0, 5.5]))
        size = int(rng.choice([64, 128]))
        ours, rf = crop(image, (x, y, w, h), factor, size)
        theirs, rf_ref = published_sample_target(image, (x, y, w, h), factor, size)
        np.testing.assert_array_equal(ours, theirs)
        assert rf == rf_ref


def test_window_uses_python_round_half_to_even():
    # side = ceil(sqrt(25) * 1) = 5; centre 5 - 2.5 = 2.5 -> round() gives 2 (floor(x + .5) would give 3)
    assert crop_window((2.5, 2.5, 5.0, 5.0), 1.0) == (2, 2, 5)
    assert crop_window((3.5, 3.5, 5.0, 5.0), 1.0) == (4, 4, 5)


def test_last_column_and_row_never_reach_a_crop():
    image = np.full((20, 20, 3), 100, np.uint8)
    image[:, -1] = 255
    image[-1, :] = 255
    out, rf = crop(image, (10, 10, 10, 10), 1.0, 10)
    assert rf == 1.0
    assert out[:, -1].max() == 0 and out[-1, :].max() == 0
    assert (out[:-1, :-1] == 100).all()


def test_box_far_outside_gives_black_crop():
    image = np.full((50, 60, 3), 200, np.uint8)
    for box in [(-500, -500, 20, 20), (1000, 10, 20, 20), (10, 900, 5, 5)]:
        out, _ = crop(image, box, 4.0, 32)
        assert out.shape == (32, 32, 3) and out.max() == 0


def test_interior_crop_without_resize_is_a_copy():
    image = np.arange(40 * 40 * 3, dtype=np.uint8).reshape(40, 40, 3)
    out, rf = crop(image, (10, 10, 8, 8), 2.0, 16)
    assert rf == 1.0 and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, image[6:22, 6:22])


def test_empty_crop_is_an_error():
    with pytest.raises(ValueError):
        crop(np.zeros((10, 10, 3), np.uint8), (0, 0, 0, 0), 2.0, 8)


def test_preprocess_normalises_to_nchw_float32():
    rng = np.random.default_rng(1)
    patch = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = preprocess(patch, mean, std)
    assert x.shape == (1, 3, 16, 16) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    expected = (patch / 255.0 - np.array(mean)) / np.array(std)
    expected = expected.transpose(2, 0, 1)
    np.testing.assert_allclose(x[0], expected, atol=1e-6)
    as_published = (patch.astype(np.float32) / np.float32(255.0) - np.float32(mean)) / np.float32(std)
    np.testing.assert_array_equal(x[0], as_published.transpose(2, 0, 1))


@pytest.mark.parametrize("variant", ["tiny", "small", "base"])
def test_network_inputs_match_reference(reference_dir, variant):
    """Pair 2 of network_*.npz holds the published loop's first template and search inputs."""
    from asymtrack_ros.model_info import ModelInfo

    net = np.load(reference_dir / f"network_{variant}.npz")
    seq = np.load(reference_dir / f"tracker_{variant}.npz")
    info = ModelInfo.for_variant(variant)
    box = seq["init_box"]
    z_patch, _ = crop(seq["frames"][0], box, info.template_factor, info.template_size)
    x_patch, _ = crop(seq["frames"][1], box, info.search_factor, info.search_size)
    z, x = preprocess(z_patch, info.mean, info.std), preprocess(x_patch, info.mean, info.std)
    np.testing.assert_allclose(z, net["template_2"], atol=1e-6)
    np.testing.assert_allclose(x, net["search_2"], atol=1e-6)
