"""Without an NVIDIA driver, each cuda-python generation fails differently: 12.3 (like 11.8 and
12.0-12.5) raises ``RuntimeError: Failed to dlopen libcuda.so.1``, 12.9 returns "CUDA driver
version is insufficient". Both must reach the user as a BackendError that says what is wrong,
and ``auto`` must fall back instead of failing. Uses the real cuda-python wheels fetched by
``scripts/fetch_tensorrt_bindings.sh --cuda-python`` (opt-in, 36 MB) and, for the backend, the real
TensorRT 11.4 bindings (see test_tensorrt_bindings.py)."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CUDA_PYTHON = REPO / "build" / "cuda_python"
TRT = REPO / "build" / "tensorrt_bindings" / "11.4.0"
EXPECTED = {"12.3.0": "Failed to dlopen libcuda.so.1",
            "12.9.4": "CUDA driver version is insufficient for CUDA runtime version"}

HAS_DRIVER = ctypes.util.find_library("cuda") is not None or Path("/dev/nvidia0").exists()
needs_no_driver = pytest.mark.skipif(HAS_DRIVER, reason="this machine has an NVIDIA driver")

PROBE = """
import json
from asymtrack_ros.backends import BackendError, auto_kind, gpu_available
from asymtrack_ros.backends.cuda_memory import load_cuda
result = {"api": load_cuda().name}
try:
    load_cuda().device_count()  # the first call: later ones may word it differently
except BackendError as exc:
    result["device_count"] = f"{type(exc).__name__}: {exc}"
result["gpu_available"] = gpu_available()
try:
    import tensorrt  # the real bindings, loaded through the stub (test_tensorrt_bindings.py)
    from asymtrack_ros.backends.tensorrt_backend import TensorRTBackend
    TensorRTBackend(%r)
except ImportError:
    result["backend"] = "no tensorrt"
except BackendError as exc:
    result["backend"] = f"{type(exc).__name__}: {exc}"
result["auto"] = auto_kind()
print(json.dumps(result))
"""


def _package(version: str) -> Path:
    package = CUDA_PYTHON / version / "pkg"
    if not (CUDA_PYTHON / version / "ok").is_file():
        pytest.skip(f"cuda-python {version} not in {package}: "
                    "scripts/fetch_tensorrt_bindings.sh --cuda-python (opt-in, 36 MB)")
    return package


API_PROBE = """
import ast, json, re, sys
tree = ast.parse(open(sys.argv[1]).read())
api = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CudaPythonApi")
nodes = list(ast.walk(api))
calls = sorted({n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)
                and re.match("^cuda[A-Z]", n.value)})
fields = sorted({n.attr for n in nodes if isinstance(n, ast.Attribute)
                 and isinstance(n.value, ast.Name) and n.value.id == "props"})
try:
    from cuda.bindings import runtime as rt
except ImportError:
    from cuda import cudart as rt
props = rt.cudaDeviceProp()
print(json.dumps({"calls": calls, "fields": fields, "missing": [c for c in calls if not hasattr(rt, c)
                  and not hasattr(rt.cudaMemcpyKind, c)] + [f for f in fields if not hasattr(props, f)]}))
"""


@pytest.mark.parametrize("version", sorted(EXPECTED))
def test_cuda_python_has_what_cuda_memory_uses(version: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(_package(version)))
    source = REPO / "asymtrack_ros" / "backends" / "cuda_memory.py"
    done = subprocess.run([sys.executable, "-c", API_PROBE, str(source)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert "cudaMemcpyAsync" in result["calls"] and "multiProcessorCount" in result["fields"]
    assert result["missing"] == []


@needs_no_driver
@pytest.mark.parametrize("version", sorted(EXPECTED))
def test_no_driver_is_a_backend_error_with_the_cause(version: str, tmp_path: Path) -> None:
    package = _package(version)
    shim = tmp_path / "shim"
    shim.mkdir()
    path = [str(package), str(REPO)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    if (TRT / "ok").is_file():
        (shim / "tensorrt.py").write_text(f"import sys\nsys.path.insert(0, {str(TRT / 'pkg')!r})\n"
                                          "from tensorrt_bindings import *\n"
                                          "from tensorrt_bindings import __version__\n")
        env.update(PYTHONPATH=os.pathsep.join([str(shim)] + path), LD_LIBRARY_PATH=str(TRT / "stubs"))
    done = subprocess.run([sys.executable, "-c", PROBE % str(REPO / "models" / "asymtrack_t_demo")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["gpu_available"] is False and result["api"] == "cuda-python"
    assert result["device_count"].startswith("CudaError: cudaGetDeviceCount failed: " + EXPECTED[version])
    assert "no usable NVIDIA driver" in result["device_count"]
    if (TRT / "ok").is_file():  # the backend, built on the real TensorRT 11.4 module, stops there too
        assert result["backend"].startswith("CudaError: cudaGetDeviceCount failed: ")
        assert "no usable NVIDIA driver" in result["backend"]
    assert result["auto"] == "onnxruntime"
