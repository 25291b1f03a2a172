"""asymtrack-train: train AsymTrack from sequences and stills; resume; export the deploy checkpoint.

Example (the demo model; models/MODEL_CARD.md lists its deviations from the paper):
  asymtrack-train --variant tiny --data synthetic:4000@0.6 \\
      --data stills:/usr/share/doc/opencv-doc/examples/data@0.4 --steps 1400 --batch 16 \\
      --lr 1e-3 --backbone-lr-mult 1.0 --warmup 100 --corner-weight 1.0 \\
      --jitter-centre 2.0 --jitter-scale 0.25 --workers 1 --out out/train \\
      --export models/asymtrack_t_demo.pt
  asymtrack-train ... --resume        # continue from OUT/checkpoint_last.pt up to --steps
  asymtrack-train ... --resume --export-average 1000 --export avg.pt   # mean of kept checkpoints >= 1000

Real data (models/MODEL_CARD.md, "Real-data fine-tuning"): asymtrack-prepare-real writes the
manifest's sequences to out/real; real:DIR trains on them less the manifest's held-out split:
  asymtrack-train --init models/asymtrack_t_demo.pt --data real:out/real@0.5 \
      --data coco:out/coco128@0.2 --data synthetic:4000@0.3 --val out/real \
      --val-names uav_wakeboard7,dtb_MountainBike6 --validate-every 50 --out out/train_real
Several processes (GPUs or machines): torchrun --nproc_per_node N -m asymtrack_ros.tools.train ...

Defaults are the paper's (AdamW lr 4e-4, backbone x0.1, weight decay 1e-4, clip 0.1, lr x0.1 at
80 %, L1 x5 + GIoU x2, search jitter centre 3.5 / scale 0.5).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from asymtrack_ros.datasets.manifest import find_manifest, heldout_names
from asymtrack_ros.training.data import Jitter, PairDataset, parse_source, parse_weighted
from asymtrack_ros.training.trainer import BEST, LAST, TrainConfig, Trainer, seed_everything
from asymtrack_ros.training.warm_start import initial_model


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="asymtrack-train", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--variant", default="tiny", help="tiny | small | base (default tiny)")
    p.add_argument("--data", action="append", default=[], metavar="SPEC[@WEIGHT]",
                   help="synthetic[:N], real:DIR, otb:DIR, got10k:DIR, lasot:DIR, uav123:DIR, coco:DIR or "
                        "stills:DIR, optional sampling weight; repeatable")
    p.add_argument("--manifest", default=None,
                   help="real-sequence manifest whose held-out split is never trained on "
                        "(default: the package's data/real/sequences.json)")
    p.add_argument("--init", help="start from this model: a published .pth.tar or our deploy .pt")
    p.add_argument("--val", help="OTB-layout folder of validation sequences (tracked every "
                                 "--validate-every steps; best kept as OUT/checkpoint_best.pt)")
    p.add_argument("--val-names", default="", help="comma-separated sequences of --val to validate on; "
                                                    "they are also left out of training")
    p.add_argument("--validate-every", type=int, default=0)
    p.add_argument("--steps", type=int, default=d.steps,
                   help="total optimizer steps (a resumed run goes on to it)")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--out", required=True, help="folder for checkpoints and train.log")
    p.add_argument("--resume", action="store_true", help=f"continue from OUT/{LAST} if it exists")
    p.add_argument("--export", help="after training, fuse OPE and write the deploy checkpoint here")
    p.add_argument("--export-best", action="store_true",
                   help=f"export OUT/{BEST} (best validation AUC) instead of the last weights")
    p.add_argument("--export-average", type=int, metavar="FROM_STEP",
                   help="export the uniform average of OUT's kept checkpoints from this step on and "
                        "the last one (stochastic weight averaging), BatchNorm re-estimated")
    p.add_argument("--bn-batches", type=int, default=50,
                   help="batches of fresh training pairs that re-estimate BatchNorm after averaging")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--backbone-lr-mult", type=float, default=d.backbone_lr_mult)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--clip", type=float, default=d.clip, help="gradient-norm clip (0: off)")
    p.add_argument("--warmup", type=int, default=d.warmup, help="linear lr warmup steps")
    p.add_argument("--lr-drop", type=float, default=d.lr_drop, help="lr x0.1 from this fraction of --steps")
    p.add_argument("--l1-weight", type=float, default=d.l1_weight)
    p.add_argument("--giou-weight", type=float, default=d.giou_weight)
    p.add_argument("--corner-weight", type=float, default=d.corner_weight,
                   help="weight of the corner cross-entropy (0 = the paper's objective)")
    p.add_argument("--jitter-centre", type=float, default=Jitter.centre)
    p.add_argument("--jitter-scale", type=float, default=Jitter.scale)
    p.add_argument("--max-gap", type=int, default=100, help="max frames between template and search")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=d.workers, help="data-loading processes")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--keep-every", type=int, default=d.keep_every,
                   help="also keep OUT/checkpoint_STEP.pt every this many steps")
    p.add_argument("--no-progress", action="store_true")
    return p


def make_config(args: argparse.Namespace) -> TrainConfig:
    names = ("steps", "batch", "lr", "backbone_lr_mult", "weight_decay", "clip", "warmup", "lr_drop",
             "l1_weight", "giou_weight", "corner_weight", "seed", "checkpoint_every", "keep_every", "workers",
             "validate_every")
    return TrainConfig(**{name: getattr(args, name) for name in names})


def heldout(args: argparse.Namespace) -> Optional[List[str]]:
    """The manifest's held-out sequence names; None without a manifest."""
    manifest = args.manifest or find_manifest()
    return heldout_names(manifest) if manifest else None


def excluded(args: argparse.Namespace) -> Optional[List[str]]:
    """Sequence names never trained on: the manifest's held-out split and the validation ones."""
    names = heldout(args)
    val = [n for n in args.val_names.split(",") if n]
    return None if names is None else names + val


def make_dataset(args: argparse.Namespace, info) -> PairDataset:
    specs = args.data or ["synthetic"]
    parsed = [parse_weighted(s) for s in specs]
    exclude = excluded(args)
    sources = [parse_source(spec, max_gap=args.max_gap, exclude=exclude) for spec, _ in parsed]
    return PairDataset(sources, info, seed=args.seed, weights=[w for _, w in parsed],
                       jitter=Jitter(args.jitter_centre, args.jitter_scale))


def export(trainer: Trainer, path: str) -> None:
    import copy

    from asymtrack_ros.model import save_deploy

    model = copy.deepcopy(trainer.model).cpu().eval()
    model.reparameterize()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_deploy(model, path)
    print(f"wrote deploy checkpoint {path} (step {trainer.step})")


def average_into(trainer: Trainer, out: Path, from_step: int, bn_batches: int) -> None:
    """Load the average of the run's kept checkpoints (>= from_step, plus the last) into the
    trainer's model and re-estimate BatchNorm on pairs after the schedule (never trained on)."""
    import torch

    from asymtrack_ros.training.averaging import (
        average_weights,
        kept_checkpoints,
        load_weights,
        update_batchnorm,
    )

    paths = kept_checkpoints(str(out), from_step)
    if not any(p.name == f"checkpoint_{trainer.step:06d}.pt" for p in paths) and (out / LAST).is_file():
        paths.append(out / LAST)
    if len(paths) < 2:
        raise ValueError(f"--export-average {from_step}: fewer than 2 checkpoints in {out} from that step")
    trainer.model.load_state_dict(average_weights([load_weights(p) for p in paths]))
    batch = trainer.config.batch
    first = trainer.config.steps * batch * trainer.world_size
    loader = torch.utils.data.DataLoader(trainer.dataset, batch_size=batch,
                                         sampler=range(first, first + bn_batches * batch))
    seen = update_batchnorm(trainer.model, loader, device=str(trainer.device))
    print(f"averaged {len(paths)} checkpoints ({', '.join(p.name for p in paths)}); "
          f"BatchNorm re-estimated on {seen} batches", file=sys.stderr)


def make_validator(args: argparse.Namespace):
    if not args.val or args.validate_every <= 0:
        return None
    from asymtrack_ros.datasets.otb import otb_sequences
    from asymtrack_ros.training.validate import validate

    names = [n for n in args.val_names.split(",") if n] or None
    if names is None:
        raise ValueError("--val needs --val-names: the sequences it names are left out of training")
    if set(names) & set(heldout(args) or ()):
        raise ValueError("--val-names must not name held-out sequences: they are kept for the final test")
    sequences = otb_sequences(args.val, names=names)
    return lambda model: validate(model, sequences)


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and "LOCAL_RANK" in os.environ:
        requested = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return requested


def init_distributed(device: str) -> None:
    """Join the process group torchrun describes (WORLD_SIZE > 1): NCCL on GPUs, else gloo."""
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")


def run(args: argparse.Namespace) -> None:
    import torch

    from asymtrack_ros.model import build_model

    torch.set_num_threads(max(1, args.threads))
    seed_everything(args.seed)
    device = pick_device(args.device)
    init_distributed(device)
    model = initial_model(args.init, args.variant) if args.init else build_model(args.variant, deploy=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model, make_dataset(args, model.info), make_config(args), str(out), device=device,
                      validator=make_validator(args))
    if args.resume and (out / LAST).is_file():
        trainer.load_checkpoint(str(out / LAST))
        print(f"resumed from {out / LAST} at step {trainer.step}", file=sys.stderr)
    (out / "args.json").write_text(json.dumps(vars(args), indent=2))
    start = time.time()
    trainer.run(progress=not args.no_progress, log_file=str(out / "train.log"))
    print(f"trained to step {trainer.step} ({time.time() - start:.0f} s this run, "
          f"{trainer.elapsed:.0f} s in all)", file=sys.stderr)
    if args.export and trainer.rank == 0:
        if args.export_average is not None:
            average_into(trainer, out, args.export_average, args.bn_batches)
        elif args.export_best:
            if not (out / BEST).is_file():
                raise ValueError(f"--export-best: no {out / BEST} (validate with --val/--validate-every)")
            trainer.load_checkpoint(str(out / BEST))
        export(trainer, args.export)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps < 0 or args.batch < 1:
        parser.error("--steps must be >= 0 and --batch >= 1")
    if args.export_average is not None and (args.export_best or not args.export):
        parser.error("--export-average needs --export and excludes --export-best")
    try:
        run(args)
    except (ValueError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
