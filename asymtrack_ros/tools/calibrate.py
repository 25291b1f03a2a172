"""asymtrack-calibrate MODEL --data DIR: fit the confidence and LOST thresholds, store them in MODEL.

Runs MODEL over the train split of DIR (OTB-layout sequences; never the held-out ones), fits the
logistic confidence of tracking/calibration.py and the LOST/TRACKING thresholds (asymtrack_ros/
calibrate.py), and writes them into MODEL's ``.pt`` and ONNX pair, where the tracker, the tools
and the node pick them up.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from asymtrack_ros.benchmark import MANIFEST, default_manifest, find_otb, split_names
from asymtrack_ros.calibrate import FrameLog, calibrate, cross_validate, log_frames, write_calibration
from asymtrack_ros.cli import (
    USER_ERRORS,
    UsageError,
    add_backend_argument,
    open_backend_from_args,
    optional_float,
)
from asymtrack_ros.packaged import resolve_model
from asymtrack_ros.tracking import TrackerConfig


def int_list(text: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"frame steps must be integers >= 1: {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asymtrack-calibrate", description=__doc__.splitlines()[0])
    p.add_argument("model", help="our model (.pt and/or ONNX pair prefix); the files are updated in place")
    p.add_argument("--data", required=True, help="folder of OTB-layout sequences (e.g. out/real)")
    p.add_argument("--manifest", help=f"split manifest (default {MANIFEST})")
    p.add_argument("--split", default="train", choices=("train",),
                   help="only the train split: the held-out sequences measure the result")
    add_backend_argument(p)
    p.add_argument("--max-scale-step", type=optional_float, default=TrackerConfig.max_scale_step)
    p.add_argument("--follow-while-lost", action="store_true",
                   help="log with the tracker's follow_while_lost (calibrate a model meant to run so)")
    p.add_argument("--min-tracking", type=float, default=0.95,
                   help="share of on-target frames that must stay TRACKING on the train split")
    p.add_argument("--frame-steps", type=int_list, default=[1],
                   help="also track each sequence at every k-th frame, for each k of this comma list "
                        "(e.g. 1,2,3): more kinds of failure to fit on (default 1)")
    p.add_argument("--cross-validate", type=int, default=0, metavar="FOLDS",
                   help="also report LOST/TRACKING shares cross-validated by sequence (in the notes)")
    p.add_argument("--log", help="per-frame log (.npz): reused if it exists, else written")
    p.add_argument("--dry-run", action="store_true", help="print the calibration, write nothing")
    return p


def frame_log(args: argparse.Namespace) -> FrameLog:
    if args.log and Path(args.log).is_file():
        log = FrameLog.load(args.log)
        missing = set(args.frame_steps) - set(np.unique(log.frame_step).tolist())
        if missing:
            raise UsageError(f"{args.log} has no runs at frame steps {sorted(missing)}: delete it or "
                             f"pass another --log")
        return log.select(np.isin(log.frame_step, args.frame_steps))
    manifest = Path(args.manifest) if args.manifest else default_manifest()
    if manifest is None or not manifest.is_file():
        raise UsageError(f"no split manifest {args.manifest or MANIFEST}: pass --manifest")
    folders = find_otb(args.data, split_names(manifest, args.split))
    config = TrackerConfig(confidence="corner", max_scale_step=args.max_scale_step, reacquire_after=None,
                           follow_while_lost=args.follow_while_lost)
    backend = open_backend_from_args(args, announce=False)  # stdout is the calibration's JSON
    try:
        log = log_frames(backend, folders, config, progress=True, frame_steps=args.frame_steps)
    finally:
        backend.close()
    if args.log:
        log.save(args.log)
    return log


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        log = frame_log(args)
        notes = {"data": f"{args.split} split of {Path(args.data).name}",
                 "sequences": int(len(np.unique(log.sequence))),
                 "max_scale_step": args.max_scale_step, "min_tracking": args.min_tracking,
                 "frame_steps": args.frame_steps, "follow_while_lost": args.follow_while_lost}
        if args.cross_validate:
            lost, tracking = cross_validate(log, args.cross_validate, args.min_tracking)
            notes["cross_validated"] = {"folds": args.cross_validate, "lost_share": round(lost, 4),
                                        "tracking_share": round(tracking, 4)}
        calibration = calibrate(log, args.min_tracking, notes)
        written = [] if args.dry_run else write_calibration(resolve_model(args.model), calibration)
    except USER_ERRORS as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(calibration.to_dict(), indent=1))
    for path in written:
        print(f"wrote the calibration into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
