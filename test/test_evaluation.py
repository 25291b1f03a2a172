"""Evaluation metrics on hand-made boxes."""

from __future__ import annotations

import numpy as np
import pytest

from asymtrack_ros.evaluation import (
    SUCCESS_THRESHOLDS,
    centre_error,
    iou,
    precision,
    score_sequence,
    success_auc,
    success_curve,
    summarise,
)


def test_iou_hand_made():
    gt = np.array([[0, 0, 10, 10]] * 5, float)
    pred = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 5, 10], [np.nan, 0, 1, 1]], float)
    np.testing.assert_allclose(iou(pred, gt), [1.0, 50 / 150, 0.0, 0.5, 0.0])
    assert iou([0, 0, 0, 0], [0, 0, 0, 0])[0] == 0.0
    with pytest.raises(ValueError):
        iou(np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError):
        iou(np.zeros((2, 3)), np.zeros((2, 3)))


def test_centre_error_and_precision():
    gt = np.array([[0, 0, 10, 10]] * 3, float)
    pred = np.array([[3, 4, 10, 10], [20, 0, 10, 10], [0, 0, 50, 50]], float)
    np.testing.assert_allclose(centre_error(pred, gt), [5.0, 20.0, np.hypot(20, 20)])
    assert precision(centre_error(pred, gt)) == pytest.approx(2 / 3)
    assert precision(np.array([np.inf])) == 0.0 and precision(np.zeros(0)) == 0.0


def test_success_curve_otb_convention():
    assert len(SUCCESS_THRESHOLDS) == 21 and SUCCESS_THRESHOLDS[1] == pytest.approx(0.05)
    curve = success_curve(np.array([1.0, 0.5, 0.0]))
    assert curve[0] == pytest.approx(2 / 3)  # IoU 0 never counts (strictly greater)
    assert curve[10] == pytest.approx(1 / 3)  # 0.5 is not > 0.5
    assert curve[-1] == 0.0
    assert success_auc(np.ones(4)) == pytest.approx(20 / 21)
    assert success_auc(np.zeros(4)) == 0.0
    assert success_auc(np.full(10, 0.52)) == pytest.approx(11 / 21)


def test_score_sequence_skips_init_and_absent_frames():
    gt = np.array([[0, 0, 10, 10]] * 4, float)
    pred = gt.copy()
    pred[2] = [100, 100, 10, 10]
    pred[3] = [50, 50, 10, 10]
    s = score_sequence(pred, gt, visible=np.array([True, True, True, False]))
    assert s.frames == 2
    np.testing.assert_allclose(s.ious, [1.0, 0.0])
    total = summarise([s, score_sequence(gt, gt)])
    assert total["frames"] == 5 and total["sequences"] == 2
    assert total["precision20"] == pytest.approx(4 / 5)
    assert total["auc"] == pytest.approx(4 / 5 * 20 / 21)
    with pytest.raises(ValueError):
        score_sequence(pred[:3], gt)
    assert summarise([])["frames"] == 0


def test_lost_statistics_against_the_box_and_absent_frames():
    from asymtrack_ros.evaluation import LostStats, lost_statistics

    gt = np.array([[0, 0, 10, 10]] * 6, float)
    gt[4] = np.nan  # target absent
    pred = np.array([[0, 0, 10, 10],  # init frame: never counted
                     [0, 0, 10, 10],  # on target, TRACKING
                     [1, 0, 10, 10],  # on target (IoU 0.82), reported LOST
                     [50, 50, 10, 10],  # off target, LOST
                     [0, 0, 10, 10],  # absent: off target whatever the box, TRACKING
                     [3, 0, 10, 10]], float)  # IoU 0.54: on target, TRACKING
    lost = np.array([True, False, True, True, False, False])
    visible = np.ones(6, bool)
    stats = lost_statistics(pred, gt, visible, lost)
    assert stats == LostStats(off_target=2, off_target_lost=1, on_target=3, on_target_tracking=2)
    assert stats.lost_share == pytest.approx(0.5) and stats.tracking_share == pytest.approx(2 / 3)
    visible[5] = False  # absent by flag too
    assert lost_statistics(pred, gt, visible, lost).off_target == 3
    assert (stats + stats).on_target == 6
    assert np.isnan(LostStats(0, 0, 0, 0).lost_share)
    with pytest.raises(ValueError):
        lost_statistics(pred, gt, visible, lost[:3])
