"""TensorRT engines cached on disk: self-describing files, written atomically, built once.

An engine (plan) only runs on the TensorRT version and GPU it was built for, and it bakes in the
ONNX graph, the precision and how the network was typed. One cache file holds all of it::

    b"ASYMTRACK-TRT-ENGINE\\n" | 8-byte little-endian header length | header JSON | plan

The header holds the ``EngineKey`` and the plan's size and sha256, so a file can never vouch for
another model's plan and a truncated or half-copied plan is detected before TensorRT sees it.
Files are written to a temporary file in the same folder, fsynced and renamed over the old one
(then the folder is fsynced), so a reader sees the old file or the new one, never a mix.

Two processes starting together would both build (minutes and gigabytes on a Jetson): the
builder holds an ``fcntl.flock`` on ``ENGINE.lock`` and a second process waits for it, then finds
the engine in the cache. Files are created readable by everyone (0644 under the usual umask 022)
and folders 0755, or group-writable under umask 002, so another user sharing the cache reuses
the engines. A location that cannot be read or written falls back to the user cache, named by
the ONNX file's content hash so two models with the same file name do not evict each other.
Does not import tensorrt.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import struct
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from asymtrack_ros.backends.base import BackendError

try:
    import fcntl
except ImportError:  # not on Linux: no lock, two builds at worst
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

CACHE_FORMAT = 2
CACHE_ENV = "ASYMTRACK_ENGINE_CACHE"
PRECISIONS = ("fp32", "fp16")
# The one default precision of the TensorRT backend, the node and the tools.
DEFAULT_PRECISION = "fp16"
MAGIC = b"ASYMTRACK-TRT-ENGINE\n"
_LENGTH = struct.Struct("<Q")
_MAX_HEADER = 1 << 20

# What a stale field means, for people reading ``--verify`` or the node log.
FIELD_NAMES = {
    "onnx_sha256": "ONNX file changed",
    "tensorrt_version": "TensorRT version changed",
    "gpu_name": "GPU changed (name)",
    "compute_capability": "GPU changed (compute capability)",
    "sm_count": "GPU changed (SM count)",
    "total_memory_gib": "GPU changed (memory size)",
    "precision": "precision changed",
    "network_typing": "network typing changed (strongly typed or builder flag)",
    "cache_format": "engine cache format changed",
}


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on. Every Orin module reports the GPU name "Orin", so the
    compute capability, SM count and memory size tell the boards apart."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    sm_count: int
    total_memory_gib: int
    precision: str
    network_typing: str = "weak"
    cache_format: int = CACHE_FORMAT

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def differences(self, other: Dict[str, Any]) -> Dict[str, Tuple[Any, Any]]:
        """Fields whose cached value differs from this key: {field: (cached, wanted)}."""
        return {k: (other.get(k), v) for k, v in self.to_dict().items() if other.get(k) != v}


def describe_differences(diff: Dict[str, Tuple[Any, Any]]) -> str:
    return "; ".join(f"{FIELD_NAMES.get(k, k)}: {a!r} -> {b!r}" for k, (a, b) in diff.items())


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


def _stem(onnx_path: Path) -> str:
    name = onnx_path.name
    return name[:-len(".onnx")] if name.endswith(".onnx") else name


def engine_path(onnx_path: Path, precision: str, cache_dir: Optional[Path] = None) -> Path:
    """``NAME.search.onnx`` -> ``NAME.search.fp16.engine`` beside it, or in ``cache_dir``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    folder = Path(cache_dir) if cache_dir is not None else onnx_path.parent
    return folder / f"{_stem(onnx_path)}.{precision}.engine"


def fallback_path(onnx_path: Path, precision: str, onnx_sha256: str) -> Path:
    """The user-cache location, named by content so same-named models never share a file."""
    return default_cache_dir() / f"{_stem(onnx_path)}-{onnx_sha256[:16]}.{precision}.engine"


def engine_locations(onnx_path: Path, precision: str, onnx_sha256: str,
                     cache_dir: Optional[Path] = None) -> List[Path]:
    """Where to look, in order: the chosen place (beside the ONNX file or ``cache_dir``), then
    the user cache, used when the first cannot be read or written."""
    primary = engine_path(onnx_path, precision, cache_dir)
    fallback = fallback_path(onnx_path, precision, onnx_sha256)
    return [primary] if fallback == primary else [primary, fallback]


# --------------------------------------------------------------------------- file format


def pack(key: EngineKey, plan: bytes) -> bytes:
    header = dict(key.to_dict(), plan_size=len(plan), plan_sha256=hashlib.sha256(plan).hexdigest())
    blob = json.dumps(header, sort_keys=True).encode()
    return MAGIC + _LENGTH.pack(len(blob)) + blob + plan


class CacheFileError(ValueError):
    """Not a cache file of this format, or its plan does not match its header."""


def read_header(f: Any) -> Dict[str, Any]:
    if f.read(len(MAGIC)) != MAGIC:
        raise CacheFileError("not an asymtrack engine cache file (older format or another file)")
    raw = f.read(_LENGTH.size)
    if len(raw) != _LENGTH.size:
        raise CacheFileError("truncated header")
    (size,) = _LENGTH.unpack(raw)
    if size > _MAX_HEADER:
        raise CacheFileError("corrupt header length")
    try:
        header = json.loads(f.read(size).decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise CacheFileError(f"corrupt header ({exc})") from exc
    if not isinstance(header, dict):
        raise CacheFileError("corrupt header")
    return header


def read_plan(f: Any, header: Dict[str, Any]) -> bytes:
    plan = f.read()
    if len(plan) != header.get("plan_size") or hashlib.sha256(plan).hexdigest() != header.get("plan_sha256"):
        raise CacheFileError(f"the plan does not match its header ({len(plan)} bytes, header says "
                             f"{header.get('plan_size')}): truncated or corrupted")
    return plan


@dataclass(frozen=True)
class CacheStatus:
    path: Path
    ok: bool
    reason: str
    plan: Optional[bytes] = None


def inspect(path: Path, key: EngineKey, load_plan: bool = True) -> CacheStatus:
    """Whether ``path`` holds a valid engine for ``key``, and if not, why."""
    try:
        with open(path, "rb") as f:
            header = read_header(f)
            diff = key.differences(header)
            if diff:
                return CacheStatus(path, False, "stale: " + describe_differences(diff))
            plan = read_plan(f, header) if load_plan else None
    except FileNotFoundError:
        return CacheStatus(path, False, "missing")
    except PermissionError as exc:
        return CacheStatus(path, False, f"unreadable ({exc.strerror})")
    except (OSError, CacheFileError) as exc:
        return CacheStatus(path, False, f"unusable: {exc}")
    return CacheStatus(path, True, "up to date", plan)


# --------------------------------------------------------------------------- writing


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # not thread-safe, hence /proc first
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(str(folder), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def make_dirs(folder: Path) -> None:
    """mkdir -p with the umask's permissions (0755 under 022, 0775 under 002)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o777)


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, chmod to 0666 & ~umask, rename, fsync the folder."""
    make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _can_write(path: Path) -> bool:
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK,
                                         effective_ids=os.access in os.supports_effective_ids)


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``PATH.lock`` (a no-op where it cannot be taken)."""
    lock = path.with_name(path.name + ".lock")
    fd = None
    if fcntl is not None:
        try:
            make_dirs(lock.parent)
            fd = os.open(str(lock), os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:  # another user's lock file (0644): flock works read-only too
            with contextlib.suppress(OSError):
                fd = os.open(str(lock), os.O_RDONLY)
        except OSError as exc:
            log.debug("no build lock at %s (%s)", lock, exc)
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                log.warning("another process is building %s; waiting for it", path.name)
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)  # closing drops the lock


# --------------------------------------------------------------------------- load or build


def _load(status: CacheStatus, deserialize: Callable[[bytes], Any]) -> Any:
    try:
        loaded = deserialize(status.plan)  # type: ignore[arg-type]
    except Exception as exc:  # TensorRT raises RuntimeError or returns None, by version
        log.warning("cached engine %s failed to load (%s); rebuilding", status.path, exc)
        return None
    if loaded is None:
        log.warning("cached engine %s could not be deserialized; rebuilding", status.path)
    return loaded


def _find(locations: Sequence[Path], key: EngineKey, deserialize: Callable[[bytes], Any]
          ) -> Tuple[Any, Optional[Path]]:
    for path in locations:
        status = inspect(path, key)
        if status.ok:
            loaded = _load(status, deserialize)
            if loaded is not None:
                return loaded, path
        elif status.reason != "missing":
            log.warning("cached engine %s: %s", path, status.reason)
    return None, None


@dataclass(frozen=True)
class LoadResult:
    engine: Any
    built: bool
    path: Optional[Path]  # where the engine is cached; None if it could not be stored


def load_or_build(locations: Union[Path, Sequence[Path]], key: EngineKey, build: Callable[[], bytes],
                  deserialize: Callable[[bytes], Any], rebuild: bool = False) -> LoadResult:
    """Load the engine from the first location holding a valid one, else build it under a lock
    (a concurrent builder is waited for, then the cache re-checked) and store it in the first
    writable location. ``deserialize`` returns None on failure."""
    locations = [locations] if isinstance(locations, Path) else list(locations)
    if not rebuild:
        loaded, path = _find(locations, key, deserialize)
        if loaded is not None:
            return LoadResult(loaded, False, path)
    writable = [p for p in locations if _can_write(p)]
    if not writable:
        log.warning("no writable engine cache among %s; building without caching",
                    ", ".join(map(str, locations)))
        return LoadResult(_build_and_load(build, deserialize, key), True, None)
    with build_lock(writable[0]):
        if not rebuild:
            loaded, path = _find(locations, key, deserialize)
            if loaded is not None:  # another process built it while we waited
                return LoadResult(loaded, False, path)
        plan = build()
        stored = next((p for p in writable if _store(p, key, plan)), None)
    return LoadResult(_deserialize_built(plan, deserialize, key), True, stored)


def _store(target: Path, key: EngineKey, plan: bytes) -> bool:
    try:
        atomic_write(target, pack(key, plan))
    except OSError as exc:
        log.warning("cannot cache the TensorRT engine at %s (%s); it will be rebuilt next time", target, exc)
        return False
    with contextlib.suppress(OSError):  # the key file of the format before CACHE_FORMAT 2
        target.with_name(target.name + ".json").unlink()
    return True


def _build_and_load(build: Callable[[], bytes], deserialize: Callable[[bytes], Any], key: EngineKey) -> Any:
    return _deserialize_built(build(), deserialize, key)


def _deserialize_built(plan: bytes, deserialize: Callable[[bytes], Any], key: EngineKey) -> Any:
    loaded = deserialize(plan)
    if loaded is None:
        raise BackendError(f"TensorRT could not deserialize the engine it has just built "
                           f"(TensorRT {key.tensorrt_version}, {key.precision})")
    return loaded

