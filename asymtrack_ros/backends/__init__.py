"""Inference backends: PyTorch (reference), ONNX Runtime and TensorRT, behind one interface.

Importing this package imports neither torch nor tensorrt; ``open_backend`` imports the one
backend it builds. ``BACKEND_NAMES`` / ``BACKEND_CHOICES`` are the one list of backend names that
the node's parameters and every tool offer.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Any, Union

from asymtrack_ros.backends.base import Backend, BackendError, ModelFileError, SearchOutput
from asymtrack_ros.backends.options import BackendOptions

log = logging.getLogger(__name__)

BACKENDS = {
    "pytorch": ("asymtrack_ros.backends.pytorch_backend", "PyTorchBackend"),
    "onnxruntime": ("asymtrack_ros.backends.onnxruntime_backend", "OnnxRuntimeBackend"),
    "tensorrt": ("asymtrack_ros.backends.tensorrt_backend", "TensorRTBackend"),
}
BACKEND_NAMES = tuple(BACKENDS)
BACKEND_CHOICES = ("auto",) + BACKEND_NAMES
_ALIASES = {"torch": "pytorch", "ort": "onnxruntime", "onnx": "onnxruntime", "trt": "tensorrt"}


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def gpu_available() -> bool:
    """Whether a CUDA device answers, asked through cuda-python or pycuda (never torch)."""
    try:
        from asymtrack_ros.backends.cuda_memory import load_cuda

        return load_cuda().device_count() > 0
    except Exception:  # no driver, no library, no device: all mean "no"
        return False


def auto_kind() -> str:
    """tensorrt if importable and a GPU answers, else onnxruntime, else pytorch."""
    if _has_module("tensorrt") and gpu_available():
        return "tensorrt"
    if _has_module("onnxruntime"):
        return "onnxruntime"
    return "pytorch"


# What each backend imports and how to get it (setup.py's extras; TensorRT is not on PyPI for Jetsons).
INSTALL_HINTS = {
    "pytorch": ("torch", "pip install 'asymtrack_ros[torch]'"),
    "onnxruntime": ("onnxruntime", "pip install 'asymtrack_ros[onnxruntime]'"),
    "tensorrt": ("tensorrt", "on a Jetson it comes with JetPack (apt install python3-libnvinfer), "
                             "elsewhere pip install tensorrt"),
}


def backend_class(kind: str) -> Any:
    kind = _ALIASES.get(kind.lower(), kind.lower())
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend {kind!r}; expected one of {BACKEND_CHOICES}")
    module, cls = BACKENDS[kind]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        needed, how = INSTALL_HINTS[kind]
        if (exc.name or "").split(".")[0] != needed:
            raise
        raise ImportError(f"the {kind} backend needs {needed}, which is not installed here: {how}") from None


def resolve_kind(kind: str) -> str:
    """``kind`` itself, or for ``auto`` the backend ``auto_kind`` picks here."""
    if kind.lower() != "auto":
        return kind
    picked = auto_kind()
    log.info("auto backend: %s", picked)
    return picked


DEFAULT_OPTIONS = BackendOptions()


def open_backend(kind: str, model_path: Union[str, Path, Any],
                 options: BackendOptions = DEFAULT_OPTIONS) -> Backend:
    """Build a backend: ``kind`` in ``BACKEND_CHOICES``; each backend reads the ``options`` it knows."""
    return backend_class(resolve_kind(kind)).from_options(model_path, options)


def create_backend(kind: str, model_path: Union[str, Path, Any], **keywords: Any) -> Backend:
    """Build a backend with its own class's constructor keywords (``open_backend`` takes the
    backend-independent ``BackendOptions``)."""
    return backend_class(resolve_kind(kind))(model_path, **keywords)


__all__ = ["Backend", "BackendError", "BackendOptions", "ModelFileError", "SearchOutput", "BACKEND_CHOICES",
           "BACKEND_NAMES", "auto_kind", "backend_class", "create_backend", "gpu_available",
           "open_backend"]
