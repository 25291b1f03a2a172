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
from typing import Optional, Sequence

from asymtrack_ros.benchmark import MANIFEST, default_manifest, find_otb, split_names
from asymtrack_ros.calibrate import FrameLog, calibrate, log_frames, write_calibration
from asymtrack_ros.cli import (
    USER_ERRORS,
    UsageError,
    add_backend_argument,
    open_backend_from_args,
    optional_float,
)
from asymtrack_ros.packaged import resolve_model
from asymtrack_ros.tracking import TrackerConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asymtrack-calibrate", description=__doc__.splitlines()[0])
    p.add_argument("model", help="our model (.pt and/or ONNX pair prefix); the files are updated in place")
    p.add_argument("--data", required=True, help="folder of OTB-layout sequences (e.g. out/real)")
    p.add_argument("--manifest", help=f"split manifest (default {MANIFEST})")
    p.add_argument("--split", default="train", choices=("train",),
                   help="only the train split: the held-out sequences measure the result")
    add_backend_argument(p)
    p.add_argument("--max-scale-step", type=optional_float, default=TrackerConfig.max_scale_step)
    p.add_argument("--min-tracking", type=float, default=0.95,
                   help="share of on-target frames that must stay TRACKING on the train split")
    p.add_argument("--log", help="per-frame log (.npz): reused if it exists, else written")
    p.add_argument("--dry-run", action="store_true", help="print the calibration, write nothing")
    return p


def frame_log(args: argparse.Namespace) -> FrameLog:
    if args.log and Path(args.log).is_file():
        return FrameLog.load(args.log)
    manifest = Path(args.manifest) if args.manifest else default_manifest()
    if manifest is None or not manifest.is_file():
        raise UsageError(f"no split manifest {args.manifest or MANIFEST}: pass --manifest")
    folders = find_otb(args.data, split_names(manifest, args.split))
    config = TrackerConfig(confidence="corner", max_scale_step=args.max_scale_step, reacquire_after=None)
    backend = open_backend_from_args(args, announce=False)  # stdout is the calibration's JSON
    try:
        log = log_frames(backend, folders, config, progress=True)
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
        notes = {"data": f"{args.split} split of {Path(args.data).name}", "sequences": int(log.starts.sum()),
                 "max_scale_step": args.max_scale_step, "min_tracking": args.min_tracking}
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
