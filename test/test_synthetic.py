"""Synthetic sequences: determinism, ground truth, occlusion/exit flags, GOT-10k round trip."""

from __future__ import annotations

import numpy as np
import pytest

from asymtrack_ros.synthetic import make_sequence, read_boxes, read_got10k, write_got10k


def test_same_seed_same_sequence_and_types():
    a, b = make_sequence(7, 12), make_sequence(7, 12)
    c = make_sequence(8, 12)
    assert len(a) == 12 and a.boxes.shape == (12, 4) and a.visible.shape == (12,)
    assert a.visible.dtype == bool and a.boxes.dtype == np.float64
    for fa, fb in zip(a.frames, b.frames):
        assert fa.shape == (240, 320, 3) and fa.dtype == np.uint8
        np.testing.assert_array_equal(fa, fb)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.frames[0], c.frames[0])


def test_target_is_rendered_inside_its_box():
    seq = make_sequence(3, 30, noise=0.0, speed=4.0)
    assert seq.visible.all()
    # the target's dark outline lies just inside the ground-truth box's left and right edges
    for frame, (x, y, w, h) in zip(seq.frames[::5], seq.boxes[::5]):
        rows = slice(int(y + h / 4), int(y + 3 * h / 4))
        column = frame[rows].astype(int).sum(axis=2).mean(axis=0)
        left, right = int(x), int(x + w)
        for edge, outside in ((column[left:left + 3].min(), column[left - 4]),
                              (column[right - 2:right + 1].min(), column[right + 3])):
            assert edge < 150 and edge < outside
    moved = np.linalg.norm(seq.boxes[-1, :2] - seq.boxes[0, :2])
    assert moved > 10
    assert seq.boxes[:, 2].max() / seq.boxes[:, 2].min() > 1.05


def test_occlusion_and_exit_flags():
    seq = make_sequence(5, 60, occlusions=[(10, 20)], exits=[(30, 54)])
    assert not seq.visible[10:20].any()
    assert seq.visible[:10].all() and seq.visible[20:30].all() and seq.visible[55:].all()
    assert not seq.visible[38:46].any()
    x, y, w, h = seq.boxes[42]
    assert x + w <= 0 or y + h <= 0 or x >= 320 or y >= 240
    # the occluder hides the target's pixels
    clean = make_sequence(5, 60, exits=[(30, 54)])
    assert np.array_equal(clean.boxes, seq.boxes)
    xi, yi = int(seq.boxes[15, 0] + seq.boxes[15, 2] / 2), int(seq.boxes[15, 1] + seq.boxes[15, 3] / 2)
    assert np.abs(seq.frames[15][yi, xi].astype(int) - clean.frames[15][yi, xi].astype(int)).max() > 0


def test_size_and_target_size_options():
    seq = make_sequence(1, 3, size=(120, 160), target_size=(20.0, 30.0), scale_range=(1.0, 1.0))
    assert seq.frames[0].shape == (120, 160, 3)
    np.testing.assert_allclose(seq.boxes[:, 2:], [[20.0, 30.0]] * 3)


@pytest.mark.parametrize("kwargs", [dict(length=0), dict(size=(10, 10)), dict(target_size=(0, 5)),
                                    dict(target_size=(300, 300))])
def test_bad_options(kwargs):
    args = dict(seed=0, length=5)
    args.update(kwargs)
    with pytest.raises(ValueError):
        make_sequence(**args)


def test_got10k_round_trip(tmp_path):
    seq = make_sequence(2, 8, occlusions=[(3, 5)])
    folder = write_got10k(seq, tmp_path / "seq")
    assert sorted(p.name for p in folder.iterdir())[:2] == ["00000001.jpg", "00000002.jpg"]
    assert (folder / "absence.label").read_text().split() == ["0", "0", "0", "1", "1", "0", "0", "0"]
    back = read_got10k(folder)
    np.testing.assert_allclose(back.boxes, seq.boxes, atol=1e-4)
    np.testing.assert_array_equal(back.visible, seq.visible)
    assert back.name == "seq" and len(back) == 8
    assert np.abs(back.frames[4].astype(int) - seq.frames[4].astype(int)).mean() < 4
    lazy = read_got10k(folder, lazy=True)
    np.testing.assert_array_equal(lazy.frames[4], back.frames[4])
    assert sum(1 for _ in lazy.frames) == 8


def test_reading_errors_and_formats(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_got10k(tmp_path)
    (tmp_path / "groundtruth.txt").write_text("1\t2\t3\t4\n\n5 6 7 8\n")
    np.testing.assert_array_equal(read_boxes(tmp_path / "groundtruth.txt"), [[1, 2, 3, 4], [5, 6, 7, 8]])
    with pytest.raises(ValueError, match="no images"):
        read_got10k(tmp_path)
    (tmp_path / "groundtruth.txt").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="groundtruth.txt:1"):
        read_boxes(tmp_path / "groundtruth.txt")
