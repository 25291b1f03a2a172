"""What a deployed model is: variant, input sizes, crop factors and normalisation.

Every model file we write (deploy checkpoint, ONNX graphs, TensorRT engines) carries a
``ModelInfo`` so that no later stage has to guess. This module must not import torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple

FORMAT_VERSION = 1

# Stage depths and input sizes of the published variants (paper, Table 1).
VARIANTS: Dict[str, Dict[str, Any]] = {
    "tiny": {"depths": (2, 2, 1), "template_size": 128, "search_size": 256},
    "small": {"depths": (2, 2, 3), "template_size": 128, "search_size": 256},
    "base": {"depths": (2, 2, 3), "template_size": 192, "search_size": 384},
}
VARIANT_ALIASES = {"t": "tiny", "s": "small", "b": "base"}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURE_STRIDE = 32


def canonical_variant(name: str) -> str:
    """Map 'T', 't', 'tiny', 'AsymTrack-T' ... to 'tiny' / 'small' / 'base'."""
    key = name.strip().lower()
    if key.startswith("asymtrack-") or key.startswith("asymtrack_"):
        key = key[len("asymtrack-"):]
    key = VARIANT_ALIASES.get(key, key)
    if key not in VARIANTS:
        raise ValueError(f"unknown AsymTrack variant {name!r}; expected one of {sorted(VARIANTS)}")
    return key


@dataclass(frozen=True)
class ModelInfo:
    variant: str
    template_size: int
    search_size: int
    template_factor: float = 2.0
    search_factor: float = 4.0
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    format_version: int = FORMAT_VERSION
    extra: Dict[str, Any] = field(default_factory=dict)
    # Confidence weights and LOST/TRACKING thresholds fitted on real video (asymtrack-calibrate);
    # None for an uncalibrated model. Readers that predate it ignore the key.
    calibration: Optional[Dict[str, Any]] = None

    @property
    def feature_size(self) -> int:
        return self.search_size // FEATURE_STRIDE

    @classmethod
    def for_variant(cls, variant: str, **overrides: Any) -> ModelInfo:
        v = canonical_variant(variant)
        sizes = VARIANTS[v]
        return cls(variant=v, template_size=sizes["template_size"],
                   search_size=sizes["search_size"], **overrides)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        if self.calibration is None:
            del d["calibration"]  # uncalibrated files stay byte-identical to earlier exports
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> ModelInfo:
        version = int(d.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise ValueError(
                f"model metadata format_version {version} is not supported (expected {FORMAT_VERSION})")
        if d.get("calibration") is not None and not isinstance(d["calibration"], dict):
            raise ValueError(f"model metadata 'calibration' must be an object, got {d['calibration']!r}")
        known = {k: d[k] for k in ("variant", "template_size", "search_size", "template_factor",
                                   "search_factor", "extra", "calibration") if k in d}
        return cls(mean=tuple(d.get("mean", IMAGENET_MEAN)), std=tuple(d.get("std", IMAGENET_STD)),
                   format_version=version, **known)

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        return cls.from_dict(json.loads(text))
