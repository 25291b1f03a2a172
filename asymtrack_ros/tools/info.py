"""asymtrack-info: variant, input sizes, parameter count and GMACs of a model file or variant."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

# Paper, Table 1 (deploy form): parameters in M and GFLOPs (reported as MACs).
PAPER = {"tiny": (3.05, 0.7), "small": (3.36, 0.8), "base": (3.36, 1.8)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asymtrack-info",
        description="Print an AsymTrack model's variant, input sizes, parameter count and GMACs.")
    parser.add_argument("model", nargs="?", help="published .pth.tar or our deploy .pt")
    parser.add_argument("--variant", help="tiny / small / base (T / S / B); alone: a random model of it")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.model is None and args.variant is None:
        parser.error("give a model file or --variant")
    import torch

    from ..model import CheckpointError, build_model, load_model
    from ..model.flops import count_macs
    from ..model_info import canonical_variant

    try:
        if args.model is not None:
            model = load_model(args.model, args.variant)
        else:
            model = build_model(canonical_variant(args.variant)).eval()
    except (CheckpointError, ValueError) as exc:
        parser.exit(2, f"asymtrack-info: error: {exc}\n")
    macs = count_macs(model)
    params_m = model.num_parameters() / 1e6
    paper_params, paper_gflops = PAPER[model.variant]
    state = model.init_template(torch.zeros(1, 3, model.template_size, model.template_size))
    print(f"variant:        {model.variant}")
    print(f"template size:  {model.template_size}")
    print(f"search size:    {model.search_size}")
    print(f"feature map:    {model.feature_size}x{model.feature_size}")
    print(f"parameters:     {params_m:.2f} M (deploy form; paper {paper_params:.2f} M)")
    print("GMACs (multiply-accumulates, convolutions and matrix products):")
    print(f"  template:     {macs['template'] / 1e9:.3f}")
    print(f"  search:       {macs['search'] / 1e9:.3f}")
    print(f"  total:        {macs['total'] / 1e9:.3f} (paper {paper_gflops:.1f} GFLOPs)")
    print("template state: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in state.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
