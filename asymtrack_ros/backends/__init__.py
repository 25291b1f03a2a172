"""Inference backends: PyTorch (reference), ONNX Runtime and TensorRT, behind one interface."""

from asymtrack_ros.backends.base import Backend, SearchOutput

__all__ = ["Backend", "SearchOutput"]
