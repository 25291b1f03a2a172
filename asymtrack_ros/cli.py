"""The command-line arguments every tool shares: the model, the backend and the tracker settings.

Tools add them with ``add_model_arguments`` / ``add_tracker_arguments`` and turn them into a
backend (``open_backend_from_args``) and a ``TrackerConfig`` (``tracker_config``), so that every
tool offers the same backends (``backends.BACKEND_CHOICES``) and finds models the same way
(``packaged.resolve_model``). No torch, no ROS.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from asymtrack_ros.backends import BACKEND_CHOICES, DEFAULT_OPTIONS, BackendOptions, open_backend
from asymtrack_ros.backends.base import Backend, BackendError
from asymtrack_ros.packaged import DEMO_MODEL_NAME, MODEL_ENV, resolve_model
from asymtrack_ros.tracking import TrackerConfig

MODEL_HELP = (f"model file (.pt, .pth.tar, ONNX pair or its prefix); default ${MODEL_ENV} or the "
              f"packaged demo model models/{DEMO_MODEL_NAME}")
AUTO_REASONS = {"tensorrt": "TensorRT and a GPU found", "onnxruntime": "no TensorRT with a GPU here",
                "pytorch": "neither TensorRT with a GPU nor ONNX Runtime here"}


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                        help="auto: tensorrt with a GPU, else onnxruntime, else pytorch (the choice is "
                             "printed)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--backend``."""
    parser.add_argument("--model", help=MODEL_HELP)
    add_backend_argument(parser)


def add_tracker_arguments(parser: argparse.ArgumentParser) -> None:
    """The LOST thresholds and search factor; unset, they come from the model's calibration."""
    parser.add_argument("--lost-threshold", type=float, default=TrackerConfig.lost_threshold,
                        help="default: the model's calibrated threshold")
    parser.add_argument("--recover-threshold", type=float, default=TrackerConfig.recover_threshold,
                        help="default: the model's calibrated threshold")
    parser.add_argument("--lost-search-factor", type=float, default=None,
                        help="crop factor of the search while LOST (default: the model's)")


def tracker_config(args: argparse.Namespace) -> TrackerConfig:
    """The ``add_tracker_arguments`` settings; every other field at its default."""
    return TrackerConfig(lost_threshold=args.lost_threshold, recover_threshold=args.recover_threshold,
                         lost_search_factor=args.lost_search_factor)


def backend_line(requested: str, backend: Backend) -> str:
    """Which backend runs; for ``auto``, why that one."""
    if requested != "auto":
        return f"backend: {backend.name}"
    return f"backend: {backend.name} (picked by --backend auto: {AUTO_REASONS.get(backend.name, '')})"


def open_backend_from_args(args: argparse.Namespace, model: Optional[str] = None,
                           options: BackendOptions = DEFAULT_OPTIONS, announce: bool = True) -> Backend:
    """The backend of ``--backend`` on ``model`` (default ``--model``), found by ``resolve_model``;
    ``announce`` prints the backend line. ModelNotFoundError names a missing model file."""
    path: Path = resolve_model(model if model is not None else args.model)
    backend = open_backend(args.backend, path, options)
    if announce:
        print(backend_line(args.backend, backend), flush=True)
    return backend


class UsageError(ValueError):
    """Input or arguments a tool cannot work with: ``PROG: error: ...`` and exit code 2."""


USER_ERRORS = (ValueError, OSError, ImportError, BackendError)  # reported as errors, not tracebacks


def optional_float(text: str) -> Optional[float]:
    """An argument type: a number, or ``none``."""
    return None if text.lower() == "none" else float(text)


def optional_int(text: str) -> Optional[int]:
    """An argument type: an integer, or ``none``."""
    return None if text.lower() == "none" else int(text)
