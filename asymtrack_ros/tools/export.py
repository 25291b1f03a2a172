"""asymtrack-export: a published (.pth.tar) or deploy (.pt) checkpoint -> PREFIX.{template,search}.onnx."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from asymtrack_ros.backends.model_files import model_prefix


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="asymtrack-export", description=__doc__)
    p.add_argument("model", help="published .pth.tar or our deploy .pt")
    p.add_argument("-o", "--output", help="output prefix (default: the model path without its suffix)")
    p.add_argument("--opset", type=int, default=16, help="ONNX opset (16 for TensorRT 8.5 / JetPack 5; 17+)")
    p.add_argument("--variant", help="tiny|small|base, for published checkpoints that could be either")
    p.add_argument("--no-strict", action="store_true",
                   help="warn instead of failing when a graph uses ops outside the TensorRT 8.5 allow-list")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from asymtrack_ros.export import export_onnx
    from asymtrack_ros.model import CheckpointError, load_model

    try:
        model = load_model(args.model, variant=args.variant)
    except CheckpointError as exc:
        print(f"asymtrack-export: {exc}", file=sys.stderr)
        return 2
    prefix = Path(args.output) if args.output else model_prefix(args.model)
    try:
        paths = export_onnx(model, prefix, opset=args.opset, strict=False if args.no_strict else None)
    except (ValueError, RuntimeError) as exc:
        print(f"asymtrack-export: {exc}", file=sys.stderr)
        return 1
    print(f"AsymTrack-{model.variant}: wrote {paths[0]} and {paths[1]} (opset {args.opset})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
