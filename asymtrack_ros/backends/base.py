"""The one small interface every inference backend implements.

A backend owns one target's template state between frames: ``init_template`` runs the
template branch once and keeps its outputs (on the device, where there is one); ``track``
runs only the search branch. Inputs are normalised float32 crops, NCHW, batch 1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from asymtrack_ros.model_info import ModelInfo


class BackendError(RuntimeError):
    """A backend cannot run: missing runtime library, failed engine build, wrong call order."""


class ModelFileError(BackendError):
    """A model file is missing, corrupt, or does not belong with its partner file."""


class SearchOutput(NamedTuple):
    boxes: np.ndarray  # (4,) float32, normalised (cx, cy, w, h) in the search crop
    prob_tl: np.ndarray  # (F*F,) float32, softmaxed top-left corner distribution
    prob_br: np.ndarray  # (F*F,) float32, softmaxed bottom-right corner distribution


class Backend:
    """Base class: subclasses set ``name`` and ``info`` and implement the three methods."""

    name: str = "abstract"
    info: ModelInfo

    def init_template(self, z: np.ndarray) -> None:
        raise NotImplementedError

    def track(self, x: np.ndarray) -> SearchOutput:
        raise NotImplementedError

    def close(self) -> None:
        """Release sessions, engines and device memory. Safe to call twice."""

    @property
    def has_template(self) -> bool:
        """Whether ``init_template`` has run since construction (``track`` needs it)."""
        return bool(getattr(self, "_has_template", False))

    def _require_template(self) -> None:
        if not self.has_template:
            raise BackendError(f"{self.name}: track() called before init_template()")

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_input(x: np.ndarray, size: int, what: str) -> np.ndarray:
    """Validate a (1, 3, size, size) crop and return it as contiguous float32."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(x).__name__}")
    if x.shape != (1, 3, size, size):
        raise ValueError(f"{what} must have shape (1, 3, {size}, {size}), got {tuple(x.shape)}")
    return np.ascontiguousarray(x, dtype=np.float32)
