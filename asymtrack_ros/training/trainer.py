"""The training loop: AdamW with a backbone group (lr x0.1), warmup + step schedule, gradient
clipping, checkpoints with resume (model, optimizer, step, RNG states), a tqdm progress bar, a
JSON-lines log of losses and validation AUC, and data parallelism through torch.distributed.

Step ``s`` trains on the pairs ``PairDataset[s*B : (s+1)*B]``; pairs are a pure function of the
seed and their index, so a resumed run sees exactly the batches the uninterrupted run would.
With W processes (``torchrun``), each takes B pairs per step, rank r the pairs of global batch
``s*W + r``; DistributedDataParallel averages the gradients, so every rank holds the same weights.
Only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from asymtrack_ros.training.data import PairDataset
from asymtrack_ros.training.losses import tracking_loss

CHECKPOINT_FORMAT = "asymtrack_ros.train"
LAST = "checkpoint_last.pt"
BEST = "checkpoint_best.pt"
BACKBONE_PREFIXES = ("stem.", "stages.")


@dataclass
class TrainConfig:
    steps: int = 1000
    batch: int = 16
    lr: float = 4e-4
    backbone_lr_mult: float = 0.1
    weight_decay: float = 1e-4
    clip: float = 0.1
    warmup: int = 0  # linear warmup steps
    lr_drop: float = 0.8  # lr x0.1 from this fraction of ``steps`` on
    l1_weight: float = 5.0
    giou_weight: float = 2.0
    corner_weight: float = 0.0
    seed: int = 0
    checkpoint_every: int = 200
    keep_every: int = 0  # also keep checkpoint_STEP.pt every this many steps (0: never)
    workers: int = 0
    validate_every: int = 0  # run the validation hook every this many steps (0: never)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def param_groups(model: nn.Module, lr: float, backbone_mult: float,
                 weight_decay: float) -> List[Dict[str, Any]]:
    """Two AdamW groups: backbone (stem + stages) at ``lr * backbone_mult``, neck + head at ``lr``."""
    backbone, head = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if name.startswith(BACKBONE_PREFIXES) else head).append(p)
    return [{"params": backbone, "lr": lr * backbone_mult, "lr_mult": backbone_mult,
             "weight_decay": weight_decay, "name": "backbone"},
            {"params": head, "lr": lr, "lr_mult": 1.0, "weight_decay": weight_decay, "name": "head"}]


def lr_at(config: TrainConfig, step: int) -> float:
    """Base lr of step ``step``: linear warmup, then constant, then x0.1 after ``lr_drop``."""
    lr = config.lr
    if config.warmup > 0 and step < config.warmup:
        lr *= (step + 1) / config.warmup
    if step >= int(config.lr_drop * config.steps):
        lr *= 0.1
    return lr


def rng_states() -> Dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_states(states: Dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


Validator = Callable[[nn.Module], Dict[str, float]]


def world() -> Tuple[int, int]:
    """(rank, world size) of the torch.distributed group, (0, 1) without one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_indices(start: int, steps: int, batch: int, rank: int, size: int) -> List[int]:
    """Pair indices that rank ``rank`` of ``size`` trains on from step ``start`` to ``steps``."""
    return [i for s in range(start, steps) for i in range((s * size + rank) * batch,
                                                           (s * size + rank + 1) * batch)]


class Trainer:
    """Owns the model, its optimizer and the step counter; ``run()`` trains to ``config.steps``."""

    def __init__(self, model: nn.Module, dataset: PairDataset, config: TrainConfig,
                 out_dir: Optional[str] = None, device: str = "cpu",
                 validator: Optional[Validator] = None):
        self.device = torch.device(device)
        self.model, self.dataset, self.config = model.to(self.device), dataset, config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.rank, self.world_size = world()
        self.net: nn.Module = model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.optimizer = torch.optim.AdamW(
            param_groups(model, config.lr, config.backbone_lr_mult, config.weight_decay), lr=config.lr)
        self.validator = validator
        self.step = 0
        self.elapsed = 0.0  # training seconds over all runs (resumes included)
        self.history: List[Dict[str, float]] = []
        self.best: Dict[str, float] = {}

    def batches(self, start: int) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
        b = self.config.batch
        indices = rank_indices(start, self.config.steps, b, self.rank, self.world_size)
        extra: Dict[str, Any] = {"prefetch_factor": 4} if self.config.workers else {}
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=b, sampler=indices,
                                             num_workers=self.config.workers, **extra)
        return iter(loader)

    def train_step(self, z: Tensor, x: Tensor, target: Tensor) -> Dict[str, float]:
        self.model.train()
        lr = lr_at(self.config, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        z, x, target = (t.to(self.device, non_blocking=True) for t in (z, x, target))
        outputs = self.net(z, x)
        loss, stats = tracking_loss(outputs, target, self.config.l1_weight, self.config.giou_weight,
                                    self.config.corner_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip > 0:
            stats["grad_norm"] = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip))
        self.optimizer.step()
        self.step += 1
        stats["lr"] = lr
        return stats

    def run(self, progress: bool = True, log_every: int = 10, log_file: Optional[str] = None) -> None:
        from tqdm import tqdm

        cfg = self.config
        if self.step >= cfg.steps:
            return
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress or self.rank != 0, unit="step",
                   dynamic_ncols=True, mininterval=2.0)
        window: List[Dict[str, float]] = []
        tick = time.perf_counter()
        for z, x, target in self.batches(self.step):
            stats = self.train_step(z, x, target)
            now = time.perf_counter()
            stats["pairs_per_s"] = cfg.batch / max(now - tick, 1e-9)
            self.elapsed += now - tick
            tick = now
            window.append(stats)
            bar.update(1)
            if self.step % log_every == 0 or self.step == cfg.steps:
                self._log(window, bar, log_file)
                window = []
            if self.validator is not None and cfg.validate_every > 0 and self.step % cfg.validate_every == 0:
                self.run_validation(log_file)
                tick = time.perf_counter()
            if self.out_dir is not None and (self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps):
                self.save_checkpoint()
                tick = time.perf_counter()
        bar.close()
        self.sync_buffers()

    def sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (BatchNorm statistics). DDP broadcasts them before
        each forward, so after the last step each rank still holds the statistics of its own batch."""
        if self.world_size > 1:
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer, 0)

    def run_validation(self, log_file: Optional[str] = None) -> Dict[str, float]:
        """Validate (rank 0), log the figures and keep ``checkpoint_best.pt`` by ``val_auc``."""
        if self.rank != 0 or self.validator is None:
            return {}
        result = dict(self.validator(self.model))
        result["step"] = self.step
        self.history.append(result)
        if log_file is not None:
            self._write_jsonl(log_file, result)
        if self.out_dir is not None and result.get("val_auc", -1.0) > self.best.get("val_auc", -1.0):
            self.best = result
            self.save_checkpoint(str(self.out_dir / BEST))
        return result

    def _log(self, window: List[Dict[str, float]], bar: Any, log_file: Optional[str]) -> None:
        mean = {k: float(np.mean([s[k] for s in window if k in s])) for k in window[-1]}
        mean["step"] = self.step
        mean["elapsed_s"] = self.elapsed
        mean["pairs_per_s"] *= self.world_size
        self.history.append(mean)
        bar.set_postfix(loss=f"{mean['loss']:.3f}", iou=f"{mean['iou']:.3f}",
                        pairs_s=f"{mean['pairs_per_s']:.1f}", refresh=False)
        if log_file is not None and self.rank == 0:
            with open(log_file, "a") as f:
                f.write(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in mean.items()) + "\n")
            self._write_jsonl(log_file, mean)

    @staticmethod
    def _write_jsonl(log_file: str, record: Dict[str, Any]) -> None:
        """One JSON object per line in ``<log_file stem>.jsonl`` beside the text log."""
        path = Path(log_file).with_suffix(".jsonl")
        with open(path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def state(self) -> Dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "step": self.step, "elapsed_s": self.elapsed,
                "config": asdict(self.config), "info": self.model.info.to_dict(),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": rng_states(), "history": self.history, "best": self.best}

    def save_checkpoint(self, path: Optional[str] = None) -> Optional[Path]:
        """Write ``checkpoint_last.pt`` (atomically) and, every ``keep_every`` steps, a numbered copy.
        Only rank 0 writes (every rank holds the same weights)."""
        if self.rank != 0:
            return None
        target = Path(path) if path is not None else self.out_dir / LAST
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, target)
        keep = self.config.keep_every
        if path is None and keep > 0 and self.step % keep == 0:
            torch.save(self.state(), target.with_name(f"checkpoint_{self.step:06d}.pt"))
        return target

    def load_checkpoint(self, path: str) -> None:
        """Restore model, optimizer, step, elapsed time and RNG states from a training checkpoint."""
        state = torch.load(path, map_location=self.device, weights_only=False)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not an asymtrack_ros training checkpoint")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed_s", 0.0))
        self.history = list(state.get("history", []))
        self.best = dict(state.get("best", {}))
        rng = state["rng"]
        rng["torch"] = rng["torch"].cpu()
        set_rng_states(rng)
