"""asymtrack-bench-real DATA: our models (and optionally NanoTrack) on real OTB-layout sequences.

DATA holds ``<name>/img/*.jpg`` + ``<name>/groundtruth_rect.txt`` (NaN rows: target absent). The
sequences of ``--split`` (default heldout) in the manifest are tracked one pass from their first
box. One table: success AUC, precision at 20 px, FPS of the tracker's update (decoding excluded),
and how well LOST agrees with the box: of the frames whose box has left the target (IoU < 0.1, or
target absent) the share reported LOST; of the frames on target (IoU >= 0.5) the share reported
TRACKING.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from asymtrack_ros.benchmark import (
    MANIFEST,
    SPLITS,
    AsymTrackRunner,
    NanoTrackRunner,
    Scored,
    as_dict,
    default_manifest,
    find_otb,
    fps,
    pooled_lost,
    run_all,
    split_names,
)
from asymtrack_ros.cli import (
    MODEL_HELP,
    USER_ERRORS,
    UsageError,
    add_backend_argument,
    add_tracker_arguments,
    open_backend_from_args,
    optional_float,
    optional_int,
)
from asymtrack_ros.cli import tracker_config as base_config
from asymtrack_ros.evaluation import precision, success_auc, summarise
from asymtrack_ros.packaged import resolve_model
from asymtrack_ros.tracking import TrackerConfig

HEADER = (f"{'model':<36} {'seqs':>4} {'frames':>6} {'AUC':>6} {'P@20':>6} {'FPS':>6} "
          f"{'off-tgt':>7} {'LOST':>6} {'on-tgt':>6} {'TRACK':>6}")


def _share(value: float) -> str:
    return "   -  " if math.isnan(value) else f"{value:6.3f}"


def row(label: str, scored: Sequence[Scored]) -> str:
    total = summarise([s.score for s in scored])
    lost = pooled_lost(scored)
    return (f"{label[:36]:<36} {len(scored):>4d} {int(total['frames']):>6d} {total['auc']:>6.3f} "
            f"{total['precision20']:>6.3f} {fps(scored):>6.1f} {lost.off_target:>7d} "
            f"{_share(lost.lost_share)} {lost.on_target:>6d} {_share(lost.tracking_share)}")


def sequence_rows(scored: Sequence[Scored]) -> List[str]:
    lines = []
    for s in scored:
        auc, p20 = success_auc(s.score.ious), precision(s.score.errors)
        lines.append(f"  {s.score.name[:34]:<34} {'':>4} {s.score.frames:>6d} {auc:>6.3f} {p20:>6.3f} "
                     f"{fps([s]):>6.1f} {s.lost.off_target:>7d} "
                     f"{_share(s.lost.lost_share)} {s.lost.on_target:>6d} {_share(s.lost.tracking_share)}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asymtrack-bench-real", description=__doc__.splitlines()[0])
    p.add_argument("data", help="folder of OTB-layout sequences (e.g. out/real)")
    p.add_argument("--model", action="append", default=None, help=MODEL_HELP + "; repeat for several")
    add_backend_argument(p)
    p.add_argument("--nanotrack", metavar="DIR",
                   help="also run NanoTrack (cv2.TrackerNano) from DIR/*backbone*.onnx + DIR/*head*.onnx")
    p.add_argument("--split", default="heldout", choices=SPLITS)
    p.add_argument("--manifest", help=f"split manifest (default {MANIFEST})")
    p.add_argument("--sequences", nargs="+", help="these sequence names instead of --split")
    p.add_argument("--all", action="store_true",
                   help="every sequence folder in DATA, no manifest (e.g. asymtrack-synth output)")
    p.add_argument("--verbose", action="store_true", help="per-sequence rows")
    p.add_argument("--json", help="write all metrics as JSON here")
    add_config_arguments(p)
    return p


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """Tracker settings; unset thresholds come from each model's calibration."""
    add_tracker_arguments(p)
    p.add_argument("--confidence", default=TrackerConfig.confidence, choices=("calibrated", "corner"))
    p.add_argument("--frames-to-lose", type=int, default=TrackerConfig.frames_to_lose)
    p.add_argument("--max-scale-step", type=optional_float, default=TrackerConfig.max_scale_step,
                   help="largest per-frame change of w and h (none: unclamped)")
    p.add_argument("--reacquire-after", type=optional_int, default=TrackerConfig.reacquire_after,
                   help="frames LOST before the extra wide/tiled search (none: off)")
    p.add_argument("--follow-while-lost", action="store_true",
                   help="while LOST the search follows any box at or above the LOST threshold")


def config_from(args: argparse.Namespace) -> TrackerConfig:
    return replace(base_config(args), confidence=args.confidence, frames_to_lose=args.frames_to_lose,
                   max_scale_step=args.max_scale_step, reacquire_after=args.reacquire_after,
                   follow_while_lost=args.follow_while_lost)


def selected_folders(args: argparse.Namespace) -> List[Path]:
    if args.sequences or args.all:
        return find_otb(args.data, args.sequences)
    manifest = Path(args.manifest) if args.manifest else default_manifest()
    if manifest is None or not manifest.is_file():
        raise UsageError(f"no split manifest {args.manifest or MANIFEST}: pass --manifest or --sequences")
    return find_otb(args.data, split_names(manifest, args.split))


def run_models(args: argparse.Namespace, folders: List[Path]) -> Dict[str, List[Scored]]:
    results: Dict[str, List[Scored]] = {}
    config = config_from(args)
    for model in args.model or [None]:
        path = resolve_model(model)
        backend = open_backend_from_args(args, str(path), announce=False)  # the label names it
        try:
            label = f"{path.name} ({backend.name})"
            results[label] = run_all(AsymTrackRunner(backend, config), folders, progress=True)
        finally:
            backend.close()
    if args.nanotrack:
        nanotrack = NanoTrackRunner(args.nanotrack)
        results["NanoTrack (cv2.TrackerNano)"] = run_all(nanotrack, folders, progress=True)
    return results


def report(results: Dict[str, List[Scored]], verbose: bool) -> str:
    lines = [HEADER]
    for label, scored in results.items():
        lines.append(row(label, scored))
        if verbose:
            lines.extend(sequence_rows(scored))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        folders = selected_folders(args)
        results = run_models(args, folders)
        if args.json:
            Path(args.json).write_text(json.dumps({k: as_dict(v) for k, v in results.items()}, indent=2))
    except USER_ERRORS as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(report(results, args.verbose))
    print("AUC/P@20 over present frames after the first (pooled); off-tgt: frames with IoU < 0.1 or "
          "target absent, LOST: share of them reported LOST; on-tgt: IoU >= 0.5, TRACK: share "
          "reported TRACKING.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
