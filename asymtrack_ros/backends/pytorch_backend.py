"""PyTorch backend: the reference. Runs ``asymtrack_ros.model`` eagerly (imports torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from asymtrack_ros.backends.base import Backend, BackendError, ModelFileError, SearchOutput, check_input
from asymtrack_ros.backends.model_files import SEARCH_OUTPUTS, model_prefix
from asymtrack_ros.backends.options import BackendOptions


def checkpoint_for(path: Path) -> Path:
    """The checkpoint itself, or ``NAME.pt`` beside an ONNX file or prefix ``NAME``."""
    if path.is_file() and not str(path).endswith(".onnx"):
        return path
    candidate = Path(f"{model_prefix(path)}.pt")
    if candidate.is_file():
        return candidate
    raise ModelFileError(f"model file not found: {path} (the PyTorch backend needs a checkpoint: "
                         f"a published .pth.tar or {candidate})")


def _load(path: Path, variant: Optional[str]) -> Any:
    from asymtrack_ros.model import CheckpointError, load_model

    path = checkpoint_for(path)
    try:
        return load_model(path, variant=variant)
    except CheckpointError as exc:
        raise ModelFileError(str(exc)) from exc


class PyTorchBackend(Backend):
    """``PyTorchBackend(model_or_path, device='cpu')``: an AsymTrack, a published .pth.tar or our .pt."""

    name = "pytorch"

    @classmethod
    def from_options(cls, model_path: Union[str, Path], options: BackendOptions) -> PyTorchBackend:
        """``device`` (default cpu), ``variant``; ``threads`` sets torch's intra-op threads, which
        are process-wide."""
        if options.threads:
            torch.set_num_threads(int(options.threads))
        return cls(model_path, device=options.device or "cpu", variant=options.variant or None)

    def __init__(self, model_or_path: Union[str, Path, torch.nn.Module], device: str = "cpu",
                 variant: Optional[str] = None) -> None:
        if isinstance(model_or_path, torch.nn.Module):
            model = model_or_path
        else:
            model = _load(Path(model_or_path), variant)
        try:
            self.device = torch.device(device)
            self.model = model.to(self.device).eval()
        except (RuntimeError, AssertionError) as exc:
            raise BackendError(f"PyTorch cannot use device {device!r}: {exc}") from exc
        self.info = model.info
        self._state: Any = None
        self._has_template = False

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(self.device)

    @torch.no_grad()
    def init_template(self, z: np.ndarray) -> None:
        z = check_input(z, self.info.template_size, "template crop")
        self._state = self.model.init_template(self._tensor(z))
        self._has_template = True

    @torch.no_grad()
    def track(self, x: np.ndarray) -> SearchOutput:
        self._require_template()
        x = check_input(x, self.info.search_size, "search crop")
        out = self.model.track(self._tensor(x), self._state)
        return SearchOutput(*(out[k].reshape(-1).float().cpu().numpy() for k in SEARCH_OUTPUTS))

    def close(self) -> None:
        self._state = None
        self._has_template = False
