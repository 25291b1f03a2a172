"""Files that ship with the package (the demo model, the demo bag) and where to find them.

A source checkout, a colcon install (the ament share directory) and a pip wheel (data files
under ``sys.prefix/share``) put them in different places; every tool and the node look here
(``resolve_model``). No ROS needed: ament_index_python is used only when it is importable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional, Union

from asymtrack_ros.backends.base import ModelFileError

PACKAGE = "asymtrack_ros"
DEMO_MODEL_NAME = "asymtrack_t_demo.pt"
MODEL_ENV = "ASYMTRACK_MODEL"
CHECKOUT = Path(__file__).resolve().parents[1]
CLI_HINT = f"pass --model PATH or set {MODEL_ENV}"


class ModelNotFoundError(ModelFileError):
    """The model given (or the demo model, when none is given) is nowhere to be found."""


def share_dirs() -> List[Path]:
    """Folders that may hold ``models/`` and ``data/``: ament share, pip data files, the checkout."""
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # no ament_index_python, or the package is not in an ament prefix
        pass
    dirs.append(Path(sys.prefix) / "share" / PACKAGE)
    if (CHECKOUT / "setup.py").is_file():
        dirs.append(CHECKOUT)
    return [d for i, d in enumerate(dirs) if d.is_dir() and d not in dirs[:i]]


def model_exists(path: Union[str, Path]) -> bool:
    """A model file, or the prefix of an exported ONNX pair."""
    path = Path(path)
    return path.is_file() or Path(f"{path}.template.onnx").is_file() or Path(f"{path}.pt").is_file()


def find_model(value: Optional[str] = None, use_env: bool = True) -> Optional[Path]:
    """The model to load: ``value``, else ``$ASYMTRACK_MODEL``, else the packaged demo model.

    A relative path is tried in the working directory, then in each share directory's
    ``models/``. A given path that exists nowhere is returned as given (so that the backend
    reports it); None means no model was given and the demo model is not installed.
    """
    given = value or (os.environ.get(MODEL_ENV) if use_env else None)
    path = Path(given or DEMO_MODEL_NAME).expanduser()
    if path.is_absolute() or model_exists(path):
        return path if given or model_exists(path) else None
    for folder in share_dirs():
        for candidate in (folder / path, folder / "models" / path):
            if model_exists(candidate):
                return candidate
    return path if given else None


def _searched(path: Path) -> str:
    folders = [Path.cwd()] + [d / "models" for d in share_dirs()] if not path.is_absolute() else []
    return f" (looked in {', '.join(str(f) for f in folders)})" if folders else ""


def resolve_model(value: Optional[str] = None, use_env: bool = True, hint: str = CLI_HINT) -> Path:
    """``find_model``'s answer, which exists; else ModelNotFoundError naming the missing file.

    ``hint`` says how to give a model (the tools' ``--model``; the node's parameter).
    """
    path = find_model(value, use_env)
    if path is None:
        raise ModelNotFoundError(f"no model given and the demo model {DEMO_MODEL_NAME} is not installed"
                                 f"{_searched(Path(DEMO_MODEL_NAME))}: {hint}")
    if not model_exists(path):
        raise ModelNotFoundError(f"model file not found: {path}{_searched(path)}")
    return path
