"""Inference backends: PyTorch (reference), ONNX Runtime and TensorRT, behind one interface.

Importing this package imports neither torch nor tensorrt; ``create_backend`` imports the one
backend it builds.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Any, Union

from asymtrack_ros.backends.base import Backend, BackendError, ModelFileError, SearchOutput

log = logging.getLogger(__name__)

BACKENDS = {
    "pytorch": ("asymtrack_ros.backends.pytorch_backend", "PyTorchBackend"),
    "onnxruntime": ("asymtrack_ros.backends.onnxruntime_backend", "OnnxRuntimeBackend"),
    "tensorrt": ("asymtrack_ros.backends.tensorrt_backend", "TensorRTBackend"),
}
KINDS = tuple(BACKENDS) + ("auto",)
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
        raise ValueError(f"unknown backend {kind!r}; expected one of {KINDS}")
    module, cls = BACKENDS[kind]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        needed, how = INSTALL_HINTS[kind]
        if (exc.name or "").split(".")[0] != needed:
            raise
        raise ImportError(f"the {kind} backend needs {needed}, which is not installed here: {how}") from None


def create_backend(kind: str, model_path: Union[str, Path, Any], **options: Any) -> Backend:
    """Build a backend: ``kind`` in pytorch | onnxruntime | tensorrt | auto; ``options`` go to its class."""
    if kind.lower() == "auto":
        kind = auto_kind()
        log.info("auto backend: %s", kind)
    return backend_class(kind)(model_path, **options)


__all__ = ["Backend", "BackendError", "ModelFileError", "SearchOutput", "KINDS", "auto_kind",
           "backend_class", "create_backend", "gpu_available"]
