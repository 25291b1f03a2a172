"""asymtrack-convert: published AsymTrack checkpoint -> our deploy checkpoint (OPE fused, metadata)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asymtrack-convert",
        description="Convert a published AsymTrack .pth.tar into an asymtrack_ros deploy checkpoint.")
    parser.add_argument("published", help="published checkpoint (torch.load(f)['net'])")
    parser.add_argument("-o", "--output", help="output .pt (default: beside the input, .pt suffix)")
    parser.add_argument("--variant", help="tiny / small / base; needed for S / B unless the file name says")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not list the skipped keys")
    return parser


def default_output(published: str) -> Path:
    path = Path(published)
    name = path.name
    for suffix in (".pth.tar", ".pth", ".tar", ".pt"):
        if name.endswith(suffix):
            name = name[:-len(suffix)]
            break
    return path.with_name(name + ".pt")


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..model import CheckpointError, convert_published, save_deploy

    output = Path(args.output) if args.output else default_output(args.published)
    if output.resolve() == Path(args.published).resolve():
        parser.exit(2, "asymtrack-convert: error: output would overwrite the input\n")
    try:
        model, skipped = convert_published(args.published, args.variant)
    except (CheckpointError, ValueError) as exc:
        parser.exit(2, f"asymtrack-convert: error: {exc}\n")
    print(f"AsymTrack-{model.variant}: {model.num_parameters() / 1e6:.2f} M parameters (deploy form)")
    print(f"skipped {len(skipped)} keys unused at inference")
    if not args.quiet:
        for key in skipped:
            print(f"  {key}")
    try:
        save_deploy(model, output)
    except OSError as exc:
        parser.exit(2, f"asymtrack-convert: error: cannot write {output}: {exc}\n")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
