"""Data-parallel training through torch.distributed: two CPU processes on the gloo backend."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from asymtrack_ros.model import build_model
from asymtrack_ros.model_info import ModelInfo
from asymtrack_ros.training.data import PairDataset, SyntheticSource
from asymtrack_ros.training.trainer import TrainConfig, Trainer

if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("this torch build has no gloo backend", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_rank(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)  # DDP broadcasts rank 0's weights anyway; same seed keeps it honest
        model = build_model("tiny", deploy=False)
        source = SyntheticSource(count=2, length=6, pool=1, refresh=10 ** 6, seed_base=7)
        dataset = PairDataset([source], ModelInfo.for_variant("tiny"), seed=0)
        trainer = Trainer(model, dataset, TrainConfig(steps=2, batch=1, lr=1e-3, backbone_lr_mult=1.0))
        first = next(iter(trainer.batches(0)))[2]
        trainer.run(progress=False)
        torch.save({"state": model.state_dict(), "first_box": first}, Path(out) / f"rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_ranks_end_with_identical_weights(tmp_path):
    mp.start_processes(train_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert not torch.equal(r0["first_box"], r1["first_box"])  # each rank trained on its own pairs
    for key, value in r0["state"].items():
        assert torch.equal(value, r1["state"][key]), key
    torch.manual_seed(0)
    start = build_model("tiny", deploy=False).state_dict()
    assert any(not torch.equal(start[k], v) for k, v in r0["state"].items())  # the steps changed them


def test_torchrun_two_processes_train_and_rank0_checkpoints(tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    if not Path(torchrun).is_file():
        pytest.skip("torchrun is not installed beside this Python")
    out = tmp_path / "run"
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()), "-m",
           "asymtrack_ros.tools.train", "--data", "synthetic:2", "--batch", "1", "--steps", "2",
           "--threads", "1", "--device", "cpu", "--out", str(out), "--no-progress"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(out / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 2
    assert sorted(p.name for p in out.glob("*.pt")) == ["checkpoint_last.pt"]
