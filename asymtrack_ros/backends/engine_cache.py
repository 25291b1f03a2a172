"""TensorRT engines cached on disk, keyed by what makes an engine valid.

An engine (plan) only runs on the TensorRT version and GPU it was built for, and it bakes in the
ONNX graph and the precision. ``NAME.search.fp16.engine`` is stored with a sidecar
``NAME.search.fp16.engine.json`` holding that key; a missing, different or unloadable engine is
rebuilt from the ONNX file and replaces the old one. Does not import tensorrt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

from asymtrack_ros.backends.base import BackendError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
CACHE_ENV = "ASYMTRACK_ENGINE_CACHE"
PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    cache_format: int = CACHE_FORMAT

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def differences(self, other: Dict[str, Any]) -> Dict[str, Tuple[Any, Any]]:
        """Fields whose cached value differs from this key: {field: (cached, wanted)}."""
        return {k: (other.get(k), v) for k, v in self.to_dict().items() if other.get(k) != v}


def sha256_file(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "asymtrack_ros" / "engines"


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK)


def engine_path(onnx_path: Path, precision: str, cache_dir: Optional[Path] = None) -> Path:
    """``NAME.search.onnx`` -> ``NAME.search.fp16.engine``, beside it unless a cache dir is given
    or that folder is read-only (then the user cache dir)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    stem = onnx_path.name[:-len(".onnx")] if onnx_path.name.endswith(".onnx") else onnx_path.name
    folder = cache_dir if cache_dir is not None else onnx_path.parent
    if cache_dir is None and not _writable(folder):
        folder = default_cache_dir()
    return folder / f"{stem}.{precision}.engine"


def sidecar_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def read_cached(engine: Path, key: EngineKey) -> Optional[bytes]:
    """The cached plan if its sidecar matches ``key``; None (and the reason logged) otherwise."""
    sidecar = sidecar_path(engine)
    if not engine.is_file() or not sidecar.is_file():
        log.info("no cached TensorRT engine at %s; building one", engine)
        return None
    try:
        cached = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        log.warning("unreadable engine cache key %s (%s); rebuilding", sidecar, exc)
        return None
    diff = key.differences(cached if isinstance(cached, dict) else {})
    if diff:
        reasons = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diff.items())
        log.warning("cached engine %s was built for another setup (%s); rebuilding", engine, reasons)
        return None
    return engine.read_bytes()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_cached(engine: Path, key: EngineKey, plan: bytes) -> bool:
    """Store plan and key (engine first, key last, so a key never vouches for a partial plan)."""
    try:
        engine.parent.mkdir(parents=True, exist_ok=True)
        sidecar = sidecar_path(engine)
        if sidecar.exists():
            sidecar.unlink()
        _atomic_write(engine, plan)
        _atomic_write(sidecar, json.dumps(key.to_dict(), indent=1, sort_keys=True).encode())
        return True
    except OSError as exc:
        log.warning("cannot cache the TensorRT engine at %s (%s); it will be rebuilt next time", engine, exc)
        return False


def load_or_build(engine: Path, key: EngineKey, build: Callable[[], bytes],
                  deserialize: Callable[[bytes], Any], rebuild: bool = False) -> Tuple[Any, bool]:
    """(engine object, whether it was built now). ``deserialize`` returns None on failure."""
    plan = None if rebuild else read_cached(engine, key)
    if plan is not None:
        try:
            loaded = deserialize(plan)
        except Exception as exc:  # TensorRT raises RuntimeError or returns None, by version
            log.warning("cached engine %s failed to load (%s); rebuilding", engine, exc)
            loaded = None
        if loaded is not None:
            return loaded, False
        log.warning("cached engine %s could not be deserialized; rebuilding", engine)
    plan = build()
    write_cached(engine, key, plan)
    loaded = deserialize(plan)
    if loaded is None:
        raise BackendError(f"TensorRT could not deserialize the engine it has just built for {engine.name}")
    return loaded, True
