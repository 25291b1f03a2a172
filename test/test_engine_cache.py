"""TensorRT engine cache: one self-describing file, atomic writes, permissions, the build lock
and the fallback location. Plain Python: the plans are opaque bytes here, TensorRT is not needed
(what TensorRT does with a plan is tested in test_tensorrt.py on a GPU)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from asymtrack_ros.backends import BackendError
from asymtrack_ros.backends import engine_cache as ec

REPO = Path(__file__).resolve().parents[1]


def key(**changes: Any) -> ec.EngineKey:
    fields: Dict[str, Any] = dict(onnx_sha256="ab" * 32, tensorrt_version="8.5.2.2", gpu_name="Orin",
                                  compute_capability="8.7", sm_count=16, total_memory_gib=31,
                                  precision="fp16", network_typing="weak")
    fields.update(changes)
    return ec.EngineKey(**fields)


class Builds:
    """A build function that records its calls; plans are ``plan<n>``."""

    def __init__(self) -> None:
        self.plans: List[bytes] = []

    def __call__(self) -> bytes:
        self.plans.append(b"plan%d" % len(self.plans))
        return self.plans[-1]


def deserialize(plan: bytes) -> Optional[bytes]:
    return plan if plan.startswith(b"plan") else None


@pytest.fixture
def umask022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_one_file_holds_key_and_checksummed_plan(tmp_path: Path) -> None:
    path = ec.engine_path(tmp_path / "m.search.onnx", "fp16")
    assert path == tmp_path / "m.search.fp16.engine"
    builds = Builds()
    result = ec.load_or_build(path, key(), builds, deserialize)
    assert (result.engine, result.built, result.path) == (b"plan0", True, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.search.fp16.engine", "m.search.fp16.engine.lock"]
    with open(path, "rb") as f:
        header = ec.read_header(f)
    assert header["gpu_name"] == "Orin" and header["plan_size"] == 5 and header["sm_count"] == 16
    again = ec.load_or_build(path, key(), builds, deserialize)
    assert (again.engine, again.built) == (b"plan0", False) and len(builds.plans) == 1
    with pytest.raises(ValueError, match="precision"):
        ec.engine_path(path, "int4")


@pytest.mark.parametrize("change,reason", [
    ({"tensorrt_version": "10.3.0"}, "TensorRT version changed: '8.5.2.2' -> '10.3.0'"),
    ({"gpu_name": "Xavier"}, "GPU changed (name)"),
    ({"sm_count": 8}, "GPU changed (SM count): 16 -> 8"),  # Orin NX vs AGX Orin, both "Orin"
    ({"total_memory_gib": 15}, "GPU changed (memory size)"),
    ({"compute_capability": "7.2"}, "GPU changed (compute capability)"),
    ({"onnx_sha256": "cd" * 32}, "ONNX file changed"),
    ({"precision": "fp32"}, "precision changed"),
    ({"network_typing": "strong"}, "network typing changed"),
])
def test_stale_engine_says_why_and_is_rebuilt(tmp_path: Path, change: Dict[str, Any], reason: str) -> None:
    path = tmp_path / "m.search.fp16.engine"
    builds = Builds()
    ec.load_or_build(path, key(), builds, deserialize)
    status = ec.inspect(path, key(**change))
    assert not status.ok and reason in status.reason, status.reason
    result = ec.load_or_build(path, key(**change), builds, deserialize)
    assert result.built and result.engine == b"plan1"
    assert ec.inspect(path, key(**change)).ok and not ec.inspect(path, key()).ok


def test_a_plan_never_runs_under_another_models_header(tmp_path: Path) -> None:
    """Two writers interleaved used to leave one model's key beside another's plan."""
    a, b = tmp_path / "a.engine", tmp_path / "b.engine"
    ec.atomic_write(a, ec.pack(key(), b"plan-model-a"))
    ec.atomic_write(b, ec.pack(key(onnx_sha256="cd" * 32), b"plan-model-b"))
    spliced = a.read_bytes()[:-len(b"plan-model-a")] + b"plan-model-b"
    a.write_bytes(spliced)
    status = ec.inspect(a, key())
    assert not status.ok and "does not match its header" in status.reason
    a.write_bytes(ec.pack(key(), b"plan-model-a")[:-3])  # truncated copy
    assert "truncated or corrupted" in ec.inspect(a, key()).reason
    a.write_bytes(b"plan from an older cache format")
    assert "not an asymtrack engine cache file" in ec.inspect(a, key()).reason
    a.with_name("a.engine.json").write_text("{}")  # that format's key file goes with it
    assert ec.inspect(tmp_path / "none.engine", key()).reason == "missing"
    builds = Builds()
    assert ec.load_or_build(a, key(), builds, deserialize).built
    assert not a.with_name("a.engine.json").exists()


def test_unloadable_plan_rebuild_and_build_failure(tmp_path: Path) -> None:
    path = tmp_path / "x.engine"
    ec.atomic_write(path, ec.pack(key(), b"garbage: TensorRT would refuse it"))
    builds = Builds()
    result = ec.load_or_build(path, key(), builds, deserialize)
    assert result.built and result.engine == b"plan0"
    assert ec.load_or_build(path, key(), builds, deserialize, rebuild=True).engine == b"plan1"

    def failing() -> bytes:
        raise BackendError("TensorRT failed to build an engine")

    other = tmp_path / "y.engine"
    with pytest.raises(BackendError, match="failed to build"):
        ec.load_or_build(other, key(), failing, deserialize)
    assert not other.exists()
    with pytest.raises(BackendError, match="could not deserialize the engine it has just built"):
        ec.load_or_build(tmp_path / "z.engine", key(), lambda: b"not a plan", deserialize)


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_files_are_shared_per_umask(tmp_path: Path, umask: int, file_mode: int, dir_mode: int) -> None:
    old = os.umask(umask)
    try:
        path = tmp_path / "cache" / "sub" / "m.fp16.engine"
        ec.load_or_build(path, key(), Builds(), deserialize)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == file_mode
    assert stat.S_IMODE(path.parent.stat().st_mode) == dir_mode
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_fallback_is_named_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ec.CACHE_ENV, str(tmp_path / "user"))
    one = ec.engine_locations(tmp_path / "a" / "m.search.onnx", "fp16", "11" * 32)
    two = ec.engine_locations(tmp_path / "b" / "m.search.onnx", "fp16", "22" * 32)
    assert one[0] == tmp_path / "a" / "m.search.fp16.engine"
    assert one[1].parent == two[1].parent == tmp_path / "user"
    assert one[1] != two[1] and one[1].name == "m.search-1111111111111111.fp16.engine"
    assert ec.engine_locations(tmp_path / "m.onnx", "fp32", "11" * 32, tmp_path / "user")[0] == \
        tmp_path / "user" / "m.fp32.engine"


def _run_python(code: str, user: Optional[int] = None, env: Optional[Dict[str, str]] = None,
                wait: bool = True) -> Any:
    code = textwrap.dedent(code)
    if user is not None:  # after the imports: the interpreter itself may live in root's home
        code = code.replace("# as user", f"import os; os.setgid({user}); os.setuid({user})")
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env, cwd="/")
    if not wait:
        return proc
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


_LOAD = """
    import json
    from pathlib import Path
    from asymtrack_ros.backends import engine_cache as ec
    # as user
    key = ec.EngineKey(**json.loads({key!r}))
    locations = ec.engine_locations(Path({onnx!r}), "fp16", key.onnx_sha256)
    built = []
    def build():
        built.append(1)
        return b"plan-by-" + str(__import__("os").getuid()).encode()
    result = ec.load_or_build(locations, key, build, lambda plan: plan)
    print(json.dumps({{"built": result.built, "path": str(result.path), "engine": result.engine.decode()}}))
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can enter (pytest's tmp_path is private to this user)."""
    folder = Path(tempfile.mkdtemp(prefix="asymtrack-cache-test-"))
    folder.chmod(0o755)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=False)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="acting as a second user (nobody) needs root")


@needs_root
def test_another_user_reuses_the_engine_and_falls_back_when_it_cannot(shared_dir: Path,
                                                                      umask022: None) -> None:
    models = shared_dir / "models"
    models.mkdir()
    onnx = models / "m.search.onnx"
    onnx.write_bytes(b"onnx")
    user_cache = shared_dir / "nobody-cache"
    user_cache.mkdir()
    os.chown(user_cache, 65534, 65534)
    env = {ec.CACHE_ENV: str(user_cache)}
    wanted = key(onnx_sha256=ec.sha256_file(onnx))
    code = _LOAD.format(key=json.dumps(wanted.to_dict()), onnx=str(onnx))
    locations = ec.engine_locations(onnx, "fp16", wanted.onnx_sha256)
    mine = ec.load_or_build(locations, wanted, Builds(), deserialize)
    assert mine.built and mine.path == models / "m.search.fp16.engine"
    # The engine a first user built (0644) is loaded by another, not rebuilt.
    theirs = _run_python(code, user=65534, env=env)
    assert theirs == {"built": False, "path": str(mine.path), "engine": "plan0"}
    # An engine the other user cannot read (a 0600 file of an older version) is rebuilt into the
    # writable fallback, not a PermissionError; the model folder is not theirs to write.
    mine.path.chmod(0o600)
    theirs = _run_python(code, user=65534, env=env)
    fallback = user_cache / f"m.search-{wanted.onnx_sha256[:16]}.fp16.engine"
    assert theirs == {"built": True, "path": str(fallback), "engine": "plan-by-65534"}
    assert ec.inspect(fallback, wanted).ok
    assert _run_python(code, user=65534, env=env)["built"] is False
    # Nowhere to write: built, used, not stored.
    theirs = _run_python(code, user=65534, env={ec.CACHE_ENV: str(shared_dir / "root-only")})
    assert theirs == {"built": True, "path": "None", "engine": "plan-by-65534"}


def _waiting_on_flock(pid: int) -> bool:
    return any(line.split()[1] == "->" and line.split()[5] == str(pid)
               for line in Path("/proc/locks").read_text().splitlines() if "->" in line)


@pytest.mark.skipif(not Path("/proc/locks").exists(),
                    reason="needs Linux /proc/locks to see a waiting process")
def test_second_builder_waits_for_the_first_then_uses_its_engine(shared_dir: Path) -> None:
    onnx = shared_dir / "m.search.onnx"
    onnx.write_bytes(b"onnx")
    wanted = key(onnx_sha256=ec.sha256_file(onnx))
    path = ec.engine_locations(onnx, "fp16", wanted.onnx_sha256)[0]
    with ec.build_lock(path):  # this test is the first builder
        proc = _run_python(_LOAD.format(key=json.dumps(wanted.to_dict()), onnx=str(onnx)), wait=False,
                           env={ec.CACHE_ENV: str(shared_dir / "fallback")})
        for _ in range(600):
            if _waiting_on_flock(proc.pid) or proc.poll() is not None:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
        assert proc.poll() is None, "the second builder did not wait for the lock"
        assert _waiting_on_flock(proc.pid)
        ec.atomic_write(path, ec.pack(wanted, b"plan-by-the-first"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"built": False, "path": str(path),
                                                         "engine": "plan-by-the-first"}
    assert "waiting for it" in err


def test_sha256_of_a_file(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "f"
    path.write_bytes(os.urandom(10000))
    assert ec.sha256_file(path, chunk=4096) == hashlib.sha256(path.read_bytes()).hexdigest()
