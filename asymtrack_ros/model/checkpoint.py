"""Checkpoints: the published training-form files and our own deploy-form files.

Published: ``torch.load(f)['net']``, keys as in ``official_keys_*.txt``. We map them onto our
module names, skip the two ETM sub-modules that inference never uses, load the training form and
fuse OPE. Ours: a ``torch.save``'d dict ``{format, format_version, info, state_dict}``.
"""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
from typing import Any, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor

from ..model_info import FORMAT_VERSION, VARIANTS, ModelInfo, canonical_variant
from .asymtrack import AsymTrack, build_model

log = logging.getLogger(__name__)

DEPLOY_FORMAT = "asymtrack_ros.deploy"
PathLike = Union[str, "os.PathLike[str]"]

# ETM sub-modules present in the published checkpoints but never used at inference.
UNUSED_ETM_PARTS = ("post_kernels.", "downsample.")

_EFFICIENTMOD = {
    "gamma_1": "gamma",
    "norm.": "norm.",
    "mlp.fc1.": "mod.fc1.",
    "mlp.fc2.": "mod.fc2.",
    "mlp.context_layer.f.": "mod.f.",
    "mlp.context_layer.g.": "mod.g.",
    "mlp.context_layer.context_list.0.": "mod.dwconv.",
}
_ETM = {
    "pre_kernels.": "pre_kernels.",
    "pre_kernels_x.": "pre_kernels_x.",
    "conv_att.weight_linear.": "weight_linear.",
    "conv_att.norm.": "kernel_norm.",
    "proj_Cto1.": "proj_c_to_1.",
    "ln.": "norm.",
}
_OPE = {"theta": "theta", "ibe_scale": "ibe_scale", "rbr_conv.": "convs.", "ln.": "norm."}
_ATTN = {"norm1.": "norm1.", "attn.qkv.": "qkv.", "attn.proj.": "proj.", "norm2.": "norm2.",
         "mlp.fc1.": "mlp.fc1.", "mlp.fc2.": "mlp.fc2."}
_TOP = {
    "backbone.patch_embed.proj.": "stem.conv.",
    "backbone.patch_embed.norm.": "stem.norm.",
    "bottleneck.": "neck.",
}
_BLOCK_KEY = re.compile(r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.(.+)")
_DOWNSAMPLE_KEY = re.compile(r"backbone\.layers\.(\d+)\.downsample\.(proj|norm)\.(.+)")
_HEAD_KEY = re.compile(r"box_head\.conv(\d)_(tl|br)\.(?:(\d)\.)?(.+)")


class CheckpointError(ValueError):
    """A model file that cannot be read, or does not fit the model it claims to be."""


def _rename(rest: str, table: Mapping[str, str]) -> Optional[str]:
    for old, new in table.items():
        if rest.startswith(old):
            return new + rest[len(old):]
    return None


def _block_key(stage: int, block: int, rest: str, depths: Tuple[int, ...]) -> Optional[str]:
    """Published block list per stage: EfficientMod x depth, [ETM], OPE, [attention]."""
    depth = depths[stage]
    prefix = f"stages.{stage}."
    if block < depth:
        new = _rename(rest, _EFFICIENTMOD)
        return None if new is None else f"{prefix}blocks.{block}.{new}"
    kinds = (["etm"] if stage > 0 else []) + ["ope"] + (["attn"] if stage == 2 else [])
    if block - depth >= len(kinds):
        return None
    kind = kinds[block - depth]
    table = {"etm": _ETM, "ope": _OPE, "attn": _ATTN}[kind]
    new = _rename(rest, table)
    return None if new is None else f"{prefix}{kind}.{new}"


def map_published_key(key: str, depths: Tuple[int, ...]) -> Optional[str]:
    """Our parameter name for a published key, or None if we do not know the key."""
    new = _rename(key, _TOP)
    if new is not None:
        return new
    m = _BLOCK_KEY.fullmatch(key)
    if m:
        return _block_key(int(m.group(1)), int(m.group(2)), m.group(3), depths)
    m = _DOWNSAMPLE_KEY.fullmatch(key)
    if m:
        part = "conv" if m.group(2) == "proj" else "norm"
        return f"stages.{m.group(1)}.downsample.{part}.{m.group(3)}"
    m = _HEAD_KEY.fullmatch(key)
    if m:
        layer, side, sub, rest = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        if layer == 5 and sub is None:
            return f"head.{side}.4.{rest}"
        if 1 <= layer <= 4 and sub in ("0", "1"):
            return f"head.{side}.{layer - 1}.{'conv' if sub == '0' else 'bn'}.{rest}"
    return None


def is_unused_published_key(key: str, depths: Tuple[int, ...]) -> bool:
    """True for the ETM's ``post_kernels`` and ``downsample`` (never used at inference)."""
    m = _BLOCK_KEY.fullmatch(key)
    if not m:
        return False
    stage, block, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    is_etm = stage > 0 and stage < len(depths) and block == depths[stage]
    return is_etm and rest.startswith(UNUSED_ETM_PARTS)


def published_depths(state: Mapping[str, Tensor]) -> Tuple[int, ...]:
    """Stage depths (EfficientMod blocks per stage) of a published state dict."""
    depths = []
    for stage in range(3):
        n = 0
        while f"backbone.layers.{stage}.blocks.{n}.gamma_1" in state:
            n += 1
        depths.append(n)
    return tuple(depths)


def _variant_hint(path: Optional[PathLike]) -> Optional[str]:
    if path is None:
        return None
    name = os.path.basename(os.fspath(path)).lower()
    m = re.search(r"(tiny|small|base)", name) or re.search(r"asymtrack[-_]?([tsb])(?![a-z])", name)
    return canonical_variant(m.group(1)) if m else None


def detect_variant(state: Mapping[str, Tensor], variant: Optional[str] = None,
                   path: Optional[PathLike] = None) -> str:
    """The variant of a published state dict, checked against ``variant`` when given.

    S and B have identical weights (only their input sizes differ); for those the variant comes
    from ``variant`` or, failing that, from the file name (``..._small_...``, ``AsymTrack-B`` ...).
    """
    depths = published_depths(state)
    fits = [v for v, spec in VARIANTS.items() if tuple(spec["depths"]) == depths]
    if not fits:
        known = ", ".join(f"{v}: {list(spec['depths'])}" for v, spec in VARIANTS.items())
        raise CheckpointError(f"checkpoint stage depths {list(depths)} match no AsymTrack variant ({known})")
    if variant is not None:
        wanted = canonical_variant(variant)
        if wanted not in fits:
            raise CheckpointError(
                f"checkpoint is not AsymTrack-{wanted}: its stage depths {list(depths)} are those "
                f"of {' / '.join(fits)}")
        return wanted
    if len(fits) == 1:
        return fits[0]
    hint = _variant_hint(path)
    if hint in fits:
        return hint
    raise CheckpointError(
        f"checkpoint could be any of {' / '.join(fits)} (same weights, different input sizes); "
        "pass the variant explicitly (variant=... / --variant)")


def _read(path: PathLike) -> Any:
    if not os.path.isfile(path):
        raise CheckpointError(f"model file not found: {os.fspath(path)}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated / not a torch file / unpicklable content
        raise CheckpointError(
            f"cannot read {os.fspath(path)} as a torch checkpoint ({type(exc).__name__}: {exc}); "
            "is the file complete?") from exc


def _published_state(obj: Any, source: str) -> Mapping[str, Tensor]:
    state = obj.get("net") if isinstance(obj, dict) else None
    if not isinstance(state, Mapping):
        found = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{source}: not a published AsymTrack checkpoint (no 'net' state dict; "
                              f"found {found})")
    return state


def load_state_checked(model: AsymTrack, state: Mapping[str, Tensor], source: str) -> None:
    """``load_state_dict`` with one clear message for missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" ... (+{len(items) - 5})" if len(items) > 5 else ""
            problems.append(f"{label} {len(items)}: {', '.join(items[:5])}{more}")
    if problems:
        raise CheckpointError(f"{source} does not fit AsymTrack-{model.variant}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def convert_published_state(state: Mapping[str, Tensor], variant: Optional[str] = None,
                            path: Optional[PathLike] = None) -> Tuple[AsymTrack, List[str]]:
    """A published state dict -> (deploy-form model in eval mode, skipped published keys)."""
    source = os.fspath(path) if path is not None else "checkpoint"
    variant = detect_variant(state, variant, path)
    depths = tuple(VARIANTS[variant]["depths"])
    mapped: OrderedDict[str, Tensor] = OrderedDict()
    skipped: List[str] = []
    unknown: List[str] = []
    for key, value in state.items():
        if is_unused_published_key(key, depths):
            skipped.append(key)
            continue
        new = map_published_key(key, depths)
        if new is None:
            unknown.append(key)
        else:
            mapped[new] = value
    if unknown:
        more = f" ... (+{len(unknown) - 5})" if len(unknown) > 5 else ""
        raise CheckpointError(
            f"{source}: unknown keys for AsymTrack-{variant}: {', '.join(unknown[:5])}{more}")
    model = build_model(variant, deploy=False)
    load_state_checked(model, mapped, source)
    return model.reparameterize().eval(), skipped


def convert_published(path: PathLike, variant: Optional[str] = None) -> Tuple[AsymTrack, List[str]]:
    """Load a published ``.pth.tar``: (deploy-form model in eval mode, skipped keys)."""
    return convert_published_state(_published_state(_read(path), os.fspath(path)), variant, path)


def load_published(path: PathLike, variant: Optional[str] = None) -> AsymTrack:
    """Load a published checkpoint for any variant; returns the deploy form in eval mode."""
    model, skipped = convert_published(path, variant)
    log.info("loaded AsymTrack-%s from %s; skipped %d keys unused at inference",
             model.variant, os.fspath(path), len(skipped))
    return model


def save_deploy(model: AsymTrack, path: PathLike) -> None:
    """Write our deploy checkpoint (OPE fused) with its ModelInfo metadata."""
    if not model.deploy:
        raise ValueError("save_deploy needs the deploy form; call model.reparameterize() first")
    state = OrderedDict((k, v.detach().cpu()) for k, v in model.state_dict().items())
    torch.save({"format": DEPLOY_FORMAT, "format_version": FORMAT_VERSION,
                "info": model.info.to_dict(), "state_dict": state}, path)


def _deploy_from_object(obj: Any, source: str) -> AsymTrack:
    if not isinstance(obj, dict) or obj.get("format") != DEPLOY_FORMAT:
        raise CheckpointError(f"{source}: not an asymtrack_ros deploy checkpoint (no format "
                              f"{DEPLOY_FORMAT!r})")
    if obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{source}: deploy format version {obj.get('format_version')!r} is not "
                              f"supported (expected {FORMAT_VERSION})")
    try:
        info = ModelInfo.from_dict(obj["info"])
        model = build_model(info.variant, deploy=True, info=info)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: bad model metadata: {exc}") from exc
    if not isinstance(obj.get("state_dict"), Mapping):
        raise CheckpointError(f"{source}: no state_dict")
    load_state_checked(model, obj["state_dict"], source)
    return model.eval()


def load_deploy(path: PathLike) -> AsymTrack:
    """Load our deploy checkpoint (written by ``save_deploy``); eval mode."""
    return _deploy_from_object(_read(path), os.fspath(path))


def load_model(path: PathLike, variant: Optional[str] = None) -> AsymTrack:
    """Load either a published ``.pth.tar`` or our deploy ``.pt``, told apart by content."""
    source = os.fspath(path)
    obj = _read(path)
    if isinstance(obj, dict) and "format" in obj:
        model = _deploy_from_object(obj, source)
        if variant is not None and canonical_variant(variant) != model.variant:
            raise CheckpointError(
                f"{source} holds AsymTrack-{model.variant}, not {canonical_variant(variant)}")
        return model
    model, _ = convert_published_state(_published_state(obj, source), variant, path)
    return model
