"""Training pipeline: losses, pair sampling, optimisation, checkpoint/resume, the CLI (fast, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from asymtrack_ros.datasets.types import StillImage
from asymtrack_ros.model import build_model, load_deploy, load_model
from asymtrack_ros.model.asymtrack import dummy_inputs
from asymtrack_ros.model_info import ModelInfo
from asymtrack_ros.synthetic import make_sequence, write_got10k
from asymtrack_ros.tools import train as train_tool
from asymtrack_ros.training.box_stills import BoxStillsRenderer
from asymtrack_ros.training.data import (
    Jitter,
    PairDataset,
    StillsSource,
    SyntheticSource,
    box_in_crop,
    jitter_box,
    parse_source,
    parse_weighted,
)
from asymtrack_ros.training.losses import corner_targets, giou, tracking_loss
from asymtrack_ros.training.trainer import TrainConfig, Trainer, lr_at, param_groups, rank_indices
from asymtrack_ros.training.warm_start import initial_model

INFO = ModelInfo.for_variant("tiny")


def tiny_dataset(seed: int = 0, **kwargs) -> PairDataset:
    source = SyntheticSource(count=2, length=6, pool=1, refresh=10 ** 6, seed_base=7)
    return PairDataset([source], INFO, seed=seed, **kwargs)


@pytest.fixture(scope="module")
def stills_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("stills")
    rng = np.random.default_rng(0)
    for i in range(2):
        image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        cv2.imwrite(str(root / f"photo{i}.png"), cv2.GaussianBlur(image, (9, 9), 3))
    return root


def test_giou_known_values():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[0.0, 0.0, 2.0, 2.0], [2.0, 0.0, 3.0, 1.0], [1.0, 1.0, 3.0, 3.0]])
    g, iou = giou(a, b)
    assert torch.allclose(iou, torch.tensor([1.0, 0.0, 1 / 7]), atol=1e-6)
    assert torch.allclose(g, torch.tensor([1.0, -1 / 3, 1 / 7 - 2 / 9]), atol=1e-6)


def test_tracking_loss_weights_and_zero_at_truth():
    target = torch.tensor([[0.5, 0.5, 0.2, 0.3]])
    loss, stats = tracking_loss({"boxes": target.clone()}, target)
    assert float(loss) == pytest.approx(0.0, abs=1e-4) and stats["iou"] == pytest.approx(1.0, abs=1e-4)
    pred = torch.tensor([[0.6, 0.5, 0.2, 0.3]])  # shifted by 0.1: x1, x2 off by 0.1 -> L1 mean 0.05
    loss, stats = tracking_loss({"boxes": pred}, target, l1_weight=5.0, giou_weight=2.0)
    assert stats["l1"] == pytest.approx(0.05, abs=1e-6)
    assert float(loss) == pytest.approx(5 * 0.05 + 2 * stats["giou"], abs=1e-5)


def test_corner_targets_expectation_is_the_corner():
    points = torch.tensor([[0.3, 0.61], [0.0, 0.0], [0.8, 0.875]])
    target = corner_targets(points, 8)
    coords = torch.arange(8, dtype=torch.float32) / 8
    ex = target @ coords.repeat(8)
    ey = target @ coords.repeat_interleave(8)
    assert torch.allclose(target.sum(1), torch.ones(3))
    assert torch.allclose(torch.stack([ex, ey], 1), points, atol=1e-6)


def test_jitter_is_seeded_and_zero_jitter_centres_the_target():
    box = [100.0, 80.0, 40.0, 30.0]
    a = jitter_box(box, Jitter(), np.random.default_rng(3))
    b = jitter_box(box, Jitter(), np.random.default_rng(3))
    assert np.array_equal(a, b) and not np.allclose(a, box)
    same = jitter_box(box, Jitter(0.0, 0.0), np.random.default_rng(3))
    assert np.allclose(same, box)
    cx, cy, w, h = box_in_crop(box, same, 4.0)
    side = np.ceil(np.sqrt(40 * 30) * 4)
    assert (cx, cy) == pytest.approx((0.5, 0.5)) and (w, h) == pytest.approx((40 / side, 30 / side))


def test_pairs_are_deterministic_per_seed_and_index(stills_dir):
    sources = [SyntheticSource(count=2, length=6, pool=1, refresh=10 ** 6, seed_base=7),
               StillsSource(str(stills_dir))]
    ds1 = PairDataset(sources, INFO, seed=5)
    ds2 = PairDataset([SyntheticSource(count=2, length=6, pool=1, refresh=10 ** 6, seed_base=7),
                       StillsSource(str(stills_dir))], INFO, seed=5)
    for k in range(4):
        for u, v in zip(ds1.crops(k), ds2.crops(k)):
            assert np.array_equal(u, v)
    z, x, box = ds1[0]
    assert z.shape == (3, 128, 128) and x.shape == (3, 256, 256) and box.shape == (4,)
    assert not np.array_equal(ds1.crops(0)[1], PairDataset(sources, INFO, seed=6).crops(0)[1])


def test_got10k_source_samples_visible_frames(tmp_path):
    seq = make_sequence(3, 6, (96, 128), occlusions=[(2, 4)])
    write_got10k(seq, tmp_path / "seqs" / "a")
    source = parse_source(f"got10k:{tmp_path / 'seqs'}", max_gap=1)
    rng = np.random.default_rng(0)
    for _ in range(10):
        frame_z, box_z, frame_x, box_x = source.sample(rng, 0)
        assert frame_z.shape == (96, 128, 3)
        z = next(i for i in range(6) if np.allclose(seq.boxes[i], box_z, atol=1e-3))
        x = next(i for i in range(6) if np.allclose(seq.boxes[i], box_x, atol=1e-3))
        assert seq.visible[z] and seq.visible[x] and abs(z - x) <= 1


def test_parse_specs(tmp_path):
    assert parse_weighted("stills:/a/b@0.4") == ("stills:/a/b", 0.4)
    assert parse_weighted("synthetic:10") == ("synthetic:10", 1.0)
    assert parse_source("synthetic:3").count == 3
    with pytest.raises(ValueError):
        parse_source("coco:/x")
    with pytest.raises(ValueError):
        parse_source(f"got10k:{tmp_path}")


def test_param_groups_and_schedule():
    model = build_model("tiny", deploy=False)
    groups = param_groups(model, 4e-4, 0.1, 1e-4)
    assert [g["lr"] for g in groups] == pytest.approx([4e-5, 4e-4])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    cfg = TrainConfig(steps=100, lr=1.0, warmup=10, lr_drop=0.8)
    assert lr_at(cfg, 0) == pytest.approx(0.1) and lr_at(cfg, 50) == 1.0
    assert lr_at(cfg, 80) == pytest.approx(0.1)


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    ds = tiny_dataset()
    z, x, box = (torch.stack(t) for t in zip(ds[0], ds[1]))
    trainer = Trainer(build_model("tiny", deploy=False), ds,
                      TrainConfig(steps=100, batch=2, lr=1e-3, backbone_lr_mult=1.0, lr_drop=1.0))
    losses = [trainer.train_step(z, x, box)["loss"] for _ in range(4)]
    assert losses[-1] < 0.8 * losses[0], losses


def run_steps(trainer: Trainer, count: int):
    out = []
    for z, x, box in trainer.batches(trainer.step):
        out.append(trainer.train_step(z, x, box)["loss"])
        if len(out) == count:
            return out
    return out


def test_checkpoint_resume_gives_the_same_next_loss(tmp_path):
    cfg = TrainConfig(steps=3, batch=1, lr=1e-3, warmup=2)
    torch.manual_seed(0)
    first = Trainer(build_model("tiny", deploy=False), tiny_dataset(), cfg, str(tmp_path))
    run_steps(first, 2)
    path = first.save_checkpoint()
    expected = run_steps(first, 1)[0]
    torch.manual_seed(123)  # a different initialisation, overwritten by the checkpoint
    second = Trainer(build_model("tiny", deploy=False), tiny_dataset(), cfg, str(tmp_path))
    second.load_checkpoint(str(path))
    assert second.step == 2
    assert run_steps(second, 1)[0] == pytest.approx(expected, rel=1e-5)


def test_cli_trains_resumes_and_exports(tmp_path):
    out, model_path = tmp_path / "run", tmp_path / "demo.pt"
    args = ["--data", "synthetic:2", "--batch", "1", "--out", str(out), "--no-progress", "--threads", "1"]
    assert train_tool.main(args + ["--steps", "1"]) == 0
    assert (out / "checkpoint_last.pt").is_file() and (out / "train.log").read_text().strip()
    assert train_tool.main(args + ["--steps", "2", "--resume", "--export", str(model_path)]) == 0
    state = torch.load(out / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 2
    model = load_deploy(model_path)
    assert model.deploy and model.variant == "tiny"


# --- real data: video sources, COCO boxes, warm start, validation ------------------------------

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
DEMO_MODEL = Path(__file__).resolve().parents[1] / "models" / "asymtrack_t_demo.pt"


def write_otb(folder: Path, boxes, size=(96, 128)) -> None:
    """An OTB-layout sequence: a bright square on a dark textured background at each box."""
    (folder / "img").mkdir(parents=True)
    rng = np.random.default_rng(len(boxes))
    base = rng.integers(0, 60, (size[0], size[1], 3), dtype=np.uint8)
    lines = []
    for i, box in enumerate(boxes):
        frame = base.copy()
        if box is not None:
            x, y, w, h = box
            frame[y:y + h, x:x + w] = (250, 200, 50)
        cv2.imwrite(str(folder / "img" / f"{i + 1:04d}.jpg"), frame)
        lines.append("NaN,NaN,NaN,NaN" if box is None else ",".join(str(v) for v in box))
    (folder / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    moving = [(10 + 4 * i, 20 + 2 * i, 16, 12) for i in range(6)]
    write_otb(root / "train_a", moving[:2] + [None] + moving[3:])
    write_otb(root / "train_b", moving)
    write_otb(root / "test_c", moving)
    manifest = root / "sequences.json"
    manifest.write_text(json.dumps({"sequences": [
        {"name": n, "repository": "o/r", "image_folder": "i", "ground_truth": "g", "first": 1, "last": None,
         "split": "heldout" if n == "test_c" else "train"} for n in ("train_a", "train_b", "test_c")]}))
    return root


def test_real_source_leaves_out_heldout_and_needs_the_split(real_dir):
    source = parse_source(f"real:{real_dir}", max_gap=1, exclude=["test_c"])
    assert sorted(s.name for s in source.sequences) == ["train_a", "train_b"]
    with pytest.raises(ValueError, match="held-out"):
        parse_source(f"real:{real_dir}")
    assert len(parse_source(f"otb:{real_dir}").sequences) == 3  # otb: trusts the caller


def test_video_source_pairs_are_visible_and_at_most_max_gap_apart(real_dir):
    source = parse_source(f"real:{real_dir}", max_gap=1, exclude=["test_c", "train_b"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        frame_z, box_z, frame_x, box_x = source.sample(rng, 0)
        assert frame_z.shape == (96, 128, 3) and np.isfinite(box_z).all() and np.isfinite(box_x).all()
        tz, tx = (int(round((b[0] - 10) / 4)) for b in (box_z, box_x))
        assert abs(tz - tx) <= 1 and 2 not in (tz, tx)
        x, y, w, h = (int(v) for v in box_x)
        assert frame_x[y + 2:y + h - 2, x + 2:x + w - 2].mean() > 120  # the square is where the box says


def test_coco_pairs_move_the_box_with_the_photo(tmp_path):
    image = np.zeros((120, 160, 3), np.uint8)
    image[40:70, 50:90] = 255
    still = StillImage(tmp_path / "a.png", np.array([[50.0, 40.0, 40.0, 30.0]]))
    cv2.imwrite(str(still.path), image)
    renderer = BoxStillsRenderer([still], shift=0.3, scale=0.2)
    rng = np.random.default_rng(3)
    for _ in range(5):
        frame_z, box_z, frame_x, box_x = renderer.render(rng)
        np.testing.assert_allclose(box_z, [50, 40, 40, 30])
        ys, xs = np.nonzero(frame_x.mean(axis=2) > 128)
        found = [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        np.testing.assert_allclose(found, box_x, atol=2.0)


def test_coco_source_reads_yolo_labels(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "train" / "a.jpg"), np.full((100, 100, 3), 90, np.uint8))
    (tmp_path / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.3 0.2\n")
    _, box_z, _, _ = parse_source(f"coco:{tmp_path}").sample(np.random.default_rng(0), 0)
    np.testing.assert_allclose(box_z, [35, 40, 30, 20], atol=1e-6)


def test_unfused_demo_model_computes_the_same_function():
    if not DEMO_MODEL.is_file():
        pytest.skip(f"{DEMO_MODEL} is not in this checkout")
    deployed = load_deploy(DEMO_MODEL)
    model = initial_model(str(DEMO_MODEL), "tiny").eval()
    assert not model.deploy
    z, x = dummy_inputs(deployed, batch=1)
    with torch.no_grad():
        torch.testing.assert_close(model(z, x)["boxes"], deployed(z, x)["boxes"], atol=1e-5, rtol=0)
        model.reparameterize()
    for key, value in deployed.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, atol=1e-5, rtol=0)


def test_init_from_a_published_checkpoint(tmp_path):
    path = REFERENCE / "official_tiny_random.pth.tar"
    if not path.is_file():
        pytest.skip(f"{path} not present (../shared/reference)")
    published = load_model(str(path), "tiny")
    model = initial_model(str(path), "tiny").eval()
    z, x = dummy_inputs(published, batch=1)
    with torch.no_grad():
        torch.testing.assert_close(model(z, x)["boxes"], published(z, x)["boxes"], atol=1e-5, rtol=0)
    out = tmp_path / "run"
    args = ["--init", str(path), "--data", "synthetic:2", "--batch", "1", "--steps", "1", "--out", str(out),
            "--no-progress", "--threads", "1"]
    assert train_tool.main(args) == 0
    state = torch.load(out / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    moved = [k for k, v in published.state_dict().items() if ".ope." not in k
             and not torch.equal(v, state["model"][k])]
    assert moved  # one step from the published weights, not from a random init


def test_cli_real_data_validates_keeps_best_and_logs_jsonl(real_dir, tmp_path):
    out = tmp_path / "run"
    args = ["--data", f"real:{real_dir}@0.7", "--data", "synthetic:2@0.3", "--manifest",
            str(real_dir / "sequences.json"), "--val", str(real_dir), "--val-names", "train_b",
            "--validate-every", "1", "--batch", "2", "--steps", "2", "--out", str(out), "--no-progress",
            "--threads", "1"]
    assert train_tool.main(args) == 0
    records = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    val = [r for r in records if "val_auc" in r]
    assert [r["step"] for r in val] == [1, 2] and all(0.0 <= r["val_auc"] <= 1.0 for r in val)
    assert val[0]["val_frames"] == 5  # train_b: 6 frames, the first is the init frame
    best = torch.load(out / "checkpoint_best.pt", map_location="cpu", weights_only=False)
    assert best["best"]["val_auc"] == max(r["val_auc"] for r in val)
    exported = tmp_path / "best.pt"
    assert train_tool.main(args + ["--resume", "--export-best", "--export", str(exported)]) == 0
    best_model = build_model("tiny", deploy=False)
    best_model.load_state_dict(best["model"])
    best_model.reparameterize()
    for key, value in load_deploy(exported).state_dict().items():
        torch.testing.assert_close(value, best_model.state_dict()[key])
    bad = args[:args.index("--val-names") + 1] + ["test_c"] + args[args.index("--val-names") + 2:]
    assert train_tool.main(bad) == 2  # a held-out sequence cannot be the validation set


def test_rank_indices_split_each_global_step():
    assert rank_indices(0, 2, 2, 0, 2) == [0, 1, 4, 5]
    assert rank_indices(0, 2, 2, 1, 2) == [2, 3, 6, 7]
    assert rank_indices(1, 2, 3, 0, 1) == [3, 4, 5]


# --- weight averaging (SWA) ----------------------------------------------------------------------

def test_average_weights_is_the_mean_and_keeps_the_last_counters():
    from asymtrack_ros.training.averaging import average_weights

    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(5)}
    mean = average_weights([a, b])
    torch.testing.assert_close(mean["w"], torch.tensor([2.0, 4.0]))
    assert mean["n"].item() == 5
    with pytest.raises(ValueError):
        average_weights([a, {"v": torch.zeros(2)}])
    with pytest.raises(ValueError):
        average_weights([])


def test_update_batchnorm_gives_the_statistics_of_the_batches():
    from asymtrack_ros.training.averaging import update_batchnorm

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm1d(2)

        def forward(self, z, x):
            return self.bn(z + x)

    net = Net().eval()
    data = [torch.tensor([[0.0, 10.0], [2.0, 14.0]]), torch.tensor([[4.0, 18.0], [6.0, 22.0]])]
    assert update_batchnorm(net, [(d, torch.zeros_like(d)) for d in data]) == 2
    torch.testing.assert_close(net.bn.running_mean, torch.tensor([3.0, 16.0]))
    assert net.bn.momentum == 0.1 and not net.training


def test_cli_exports_the_average_of_kept_checkpoints(tmp_path):
    from asymtrack_ros.training.averaging import average_weights

    out, exported = tmp_path / "run", tmp_path / "swa.pt"
    args = ["--data", "synthetic:2", "--batch", "1", "--steps", "3", "--checkpoint-every", "1",
            "--keep-every", "1", "--out", str(out), "--no-progress", "--threads", "1", "--lr", "1e-2"]
    assert train_tool.main(args) == 0
    states = [torch.load(out / f"checkpoint_{s:06d}.pt", map_location="cpu", weights_only=False)["model"]
              for s in (2, 3)]
    assert train_tool.main(args + ["--resume", "--export", str(exported), "--export-average", "2",
                                   "--bn-batches", "2"]) == 0
    expected = build_model("tiny", deploy=False)
    expected.load_state_dict(average_weights(states))
    expected.reparameterize()
    got = load_deploy(exported).state_dict()
    for key, value in expected.state_dict().items():
        if "running_" in key or "num_batches" in key:
            continue  # BatchNorm statistics are re-estimated after averaging
        torch.testing.assert_close(got[key], value)
    assert any(not torch.equal(got[k], v) for k, v in expected.state_dict().items() if "running_mean" in k)
    assert train_tool.main(args + ["--resume", "--export", str(exported), "--export-average", "9"]) == 2
    with pytest.raises(SystemExit):
        train_tool.main(args + ["--resume", "--export-average", "2"])  # nothing to export to
