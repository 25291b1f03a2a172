"""asymtrack-train: train AsymTrack from sequences and stills; resume; export the deploy checkpoint.

Example (the demo model; models/MODEL_CARD.md lists its deviations from the paper):
  asymtrack-train --variant tiny --data synthetic:4000@0.6 \\
      --data stills:/usr/share/doc/opencv-doc/examples/data@0.4 --steps 1400 --batch 16 \\
      --lr 1e-3 --backbone-lr-mult 1.0 --warmup 100 --corner-weight 1.0 \\
      --jitter-centre 2.0 --jitter-scale 0.25 --workers 1 --out out/train \\
      --export models/asymtrack_t_demo.pt
  asymtrack-train ... --resume        # continue from OUT/checkpoint_last.pt up to --steps

Defaults are the paper's (AdamW lr 4e-4, backbone x0.1, weight decay 1e-4, clip 0.1, lr x0.1 at
80 %, L1 x5 + GIoU x2, search jitter centre 3.5 / scale 0.5).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from asymtrack_ros.training.data import Jitter, PairDataset, parse_source, parse_weighted
from asymtrack_ros.training.trainer import LAST, TrainConfig, Trainer, seed_everything


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="asymtrack-train", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--variant", default="tiny", help="tiny | small | base (default tiny)")
    p.add_argument("--data", action="append", default=[], metavar="SPEC[@WEIGHT]",
                   help="synthetic[:N], got10k:DIR or stills:DIR, optional sampling weight; repeatable")
    p.add_argument("--steps", type=int, default=d.steps,
                   help="total optimizer steps (a resumed run goes on to it)")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--out", required=True, help="folder for checkpoints and train.log")
    p.add_argument("--resume", action="store_true", help=f"continue from OUT/{LAST} if it exists")
    p.add_argument("--export", help="after training, fuse OPE and write the deploy checkpoint here")
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
             "l1_weight", "giou_weight", "corner_weight", "seed", "checkpoint_every", "keep_every", "workers")
    return TrainConfig(**{name: getattr(args, name) for name in names})


def make_dataset(args: argparse.Namespace, info) -> PairDataset:
    specs = args.data or ["synthetic"]
    parsed = [parse_weighted(s) for s in specs]
    sources = [parse_source(spec, max_gap=args.max_gap) for spec, _ in parsed]
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


def run(args: argparse.Namespace) -> None:
    import torch

    from asymtrack_ros.model import build_model

    torch.set_num_threads(max(1, args.threads))
    seed_everything(args.seed)
    model = build_model(args.variant, deploy=False)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model, make_dataset(args, model.info), make_config(args), str(out), device=device)
    if args.resume and (out / LAST).is_file():
        trainer.load_checkpoint(str(out / LAST))
        print(f"resumed from {out / LAST} at step {trainer.step}", file=sys.stderr)
    (out / "args.json").write_text(json.dumps(vars(args), indent=2))
    start = time.time()
    trainer.run(progress=not args.no_progress, log_file=str(out / "train.log"))
    print(f"trained to step {trainer.step} ({time.time() - start:.0f} s this run, "
          f"{trainer.elapsed:.0f} s in all)", file=sys.stderr)
    if args.export:
        export(trainer, args.export)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps < 0 or args.batch < 1:
        parser.error("--steps must be >= 0 and --batch >= 1")
    try:
        run(args)
    except (ValueError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
