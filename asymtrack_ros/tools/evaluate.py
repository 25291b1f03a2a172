"""asymtrack-eval SEQ_DIR: one-pass evaluation on sequences in GOT-10k layout.

SEQ_DIR is one sequence folder (images + groundtruth.txt) or a folder of them. Each sequence is
initialised from its first ground-truth box and tracked without resets; prints per-sequence and
pooled success AUC (21 IoU thresholds, OTB convention) and precision at 20 px.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from asymtrack_ros.backends.base import Backend
from asymtrack_ros.cli import (
    USER_ERRORS,
    UsageError,
    add_model_arguments,
    add_tracker_arguments,
    open_backend_from_args,
    tracker_config,
)
from asymtrack_ros.evaluation import SequenceScore, precision, score_sequence, success_auc, summarise
from asymtrack_ros.synthetic import Sequence as Seq
from asymtrack_ros.synthetic import read_got10k
from asymtrack_ros.tracking import TrackerConfig
from asymtrack_ros.tracking.offline import OfflineSession


def find_sequences(root: Path) -> List[Path]:
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder")
    if (root / "groundtruth.txt").is_file():
        return [root]
    found = sorted(p for p in root.iterdir() if (p / "groundtruth.txt").is_file())
    if not found:
        raise UsageError(f"{root}: no GOT-10k sequence (folder with groundtruth.txt) found")
    return found


def track_sequence(session: OfflineSession, seq: Seq, progress=None) -> np.ndarray:
    """One-pass boxes (N, 4) for ``seq``, initialised from its first ground-truth box."""
    if len(seq.boxes) != len(seq.frames):
        raise UsageError(f"{seq.name}: {len(seq.boxes)} ground-truth boxes for {len(seq.frames)} frames")
    boxes = np.zeros((len(seq.frames), 4))
    for i, frame in enumerate(seq.frames):
        output = session.init(frame, seq.boxes[0]) if i == 0 else session.update(frame)
        boxes[i] = output.box
        if progress is not None:
            progress.update(1)
    return boxes


def evaluate(backend: Backend, folders: Sequence[Path], config: Optional[TrackerConfig] = None,
             results_dir: Optional[Path] = None, quiet: bool = True) -> List[SequenceScore]:
    from tqdm import tqdm

    session = OfflineSession(backend, config)
    scores = []
    for folder in tqdm(folders, disable=quiet, unit="seq"):
        seq = read_got10k(folder, lazy=True)
        boxes = track_sequence(session, seq)
        if results_dir is not None:
            results_dir.mkdir(parents=True, exist_ok=True)
            np.savetxt(results_dir / f"{seq.name}_001.txt", boxes, fmt="%.4f", delimiter=",")
        visible = seq.visible if len(seq.visible) == len(seq.boxes) else None
        scores.append(score_sequence(boxes, seq.boxes, visible, seq.name))
    return scores


def report(scores: Sequence[SequenceScore]) -> str:
    lines = [f"{'sequence':<24} {'frames':>6} {'AUC':>6} {'P@20':>6}"]
    for s in scores:
        lines.append(f"{s.name:<24} {s.frames:>6d} {success_auc(s.ious):>6.3f} {precision(s.errors):>6.3f}")
    total = summarise(scores)
    lines.append(f"{'all (pooled frames)':<24} {int(total['frames']):>6d} {total['auc']:>6.3f} "
                 f"{total['precision20']:>6.3f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asymtrack-eval", description=__doc__.splitlines()[0])
    p.add_argument("seq_dir", help="a GOT-10k sequence folder or a folder of them")
    add_model_arguments(p)
    p.add_argument("--results-dir", help="write each sequence's boxes as NAME_001.txt here")
    p.add_argument("--json", help="write the pooled and per-sequence metrics as JSON here")
    add_tracker_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def to_json(scores: Sequence[SequenceScore]) -> dict:
    return {"summary": summarise(scores),
            "sequences": {s.name: {"frames": s.frames, "auc": success_auc(s.ious),
                                   "precision20": precision(s.errors)} for s in scores}}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        folders = find_sequences(Path(args.seq_dir))
        config = tracker_config(args)
        backend = open_backend_from_args(args)
        try:
            results_dir = Path(args.results_dir) if args.results_dir else None
            scores = evaluate(backend, folders, config, results_dir=results_dir, quiet=args.quiet)
        finally:
            backend.close()
        if args.json:
            Path(args.json).write_text(json.dumps(to_json(scores), indent=2))
    except USER_ERRORS as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(report(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
