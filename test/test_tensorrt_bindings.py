"""The TensorRT backend against the real Python bindings of TensorRT 8.6, 10.3, 10.16 and 11.4,
without TensorRT's libraries or a GPU.

scripts/fetch_tensorrt_bindings.sh (run by scripts/setup.sh) puts each version's binding wheel
in build/tensorrt_bindings; the extension module is loaded there with an abort-on-call stub for
libnvinfer, so only what the extension itself defines is read: classes, enums, properties and the
signatures in pybind11's docstrings. test/trt_bindings_probe.py runs the backend's own functions
(network flags, dtype map, io_api) on that module in a fresh interpreter.

TensorRT 8.5 (JetPack 5) has no wheel for this Python. What the backend uses of it is also in 8.6
(the tensor-name API and ``set_memory_pool_limit`` date from 8.5 and 8.4; its DataType names are
a subset of 8.6's). What breaks there is ``trt.nptype``, which builds a dict with
``np.bool`` on every call (AttributeError under numpy 1.24-1.26, NVIDIA/TensorRT#2557): the
backend must not call it, which the probe checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

REPO = Path(__file__).resolve().parents[1]
BINDINGS = Path(os.environ.get("ASYMTRACK_TRT_BINDINGS_DIR", REPO / "build" / "tensorrt_bindings"))
VERSIONS = ("8.6.1", "10.3.0", "10.16.1", "11.4.0")


def _probe(version: str) -> Dict[str, Any]:
    folder = BINDINGS / version
    if not (folder / "ok").is_file():
        pytest.skip(f"TensorRT {version} bindings not in {folder} (scripts/fetch_tensorrt_bindings.sh "
                    "downloads them; it needs the network once, gcc and binutils)")
    env = dict(os.environ, LD_LIBRARY_PATH=str(folder / "stubs"), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(REPO / "test" / "trt_bindings_probe.py"), str(folder / "pkg")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=VERSIONS)
def report(request: pytest.FixtureRequest) -> Dict[str, Any]:
    result = _probe(request.param)
    assert result["version"].startswith(request.param.rsplit(".", 1)[0])
    return result


def _major(report: Dict[str, Any]) -> int:
    return int(report["version"].split(".")[0])


def test_every_attribute_the_backend_uses_exists(report: Dict[str, Any]) -> None:
    assert report["missing"]["common"] == [] and report["missing"]["tensors"] == []
    if _major(report) < 10:
        assert report["missing"]["bindings"] == []
    else:  # the binding API is gone from 10 on
        assert "IExecutionContext.execute_async_v2" in report["missing"]["bindings"]
    assert report["undeclared"] == [], "the backend uses TensorRT attributes API_USED does not list"
    assert not report["uses_nptype"]


def test_every_call_matches_a_signature(report: Dict[str, Any]) -> None:
    calls = report["calls"]
    assert calls["IExecutionContext.execute_async_v3(1 args)"] is True
    assert calls["IExecutionContext.set_tensor_address(2 args)"] is True
    assert calls["Runtime.deserialize_cuda_engine(1 args)"] is True
    assert calls["IBuilderConfig.set_memory_pool_limit(2 args)"] is True
    assert {name: ok for name, ok in calls.items() if ok is not True} == {}
    if _major(report) < 10:
        assert calls["IExecutionContext.execute_async_v2(2 args)"] is True


def test_fp16_is_the_builder_flag_where_it_exists_else_strongly_typed(report: Dict[str, Any]) -> None:
    fp16, fp32, bits = report["plans"]["fp16"], report["plans"]["fp32"], report["flag_bits"]
    explicit_batch = 1 << bits["EXPLICIT_BATCH"] if _major(report) < 10 else 0
    if _major(report) < 11:
        assert fp16 == {"network_flags": explicit_batch, "set_flags": ["FP16"], "clear_flags": [],
                        "strongly_typed": False, "fp16_graph": False}
        assert fp32["network_flags"] == explicit_batch and not fp32["strongly_typed"]
    else:  # TensorRT 11: no BuilderFlag.FP16, no EXPLICIT_BATCH
        strong = 1 << bits["STRONGLY_TYPED"]
        assert fp16 == {"network_flags": strong, "set_flags": [], "clear_flags": [],
                        "strongly_typed": True, "fp16_graph": True}
        assert fp32["network_flags"] == strong and not fp32["fp16_graph"]
    assert fp32["set_flags"] == [] and fp32["clear_flags"] == ["TF32"]


def test_io_api_resolution(report: Dict[str, Any]) -> None:
    io = report["io_api"]
    assert io["auto"] == io["tensors"] == "tensors"
    if _major(report) < 10:
        assert io["bindings"] == "bindings"
    else:
        assert io["bindings"].startswith("BackendError: io_api='bindings' is not available in TensorRT")


def test_dtype_map_by_name(report: Dict[str, Any]) -> None:
    dtypes = report["dtypes"]
    assert (dtypes["FLOAT"], dtypes["HALF"], dtypes["INT32"], dtypes["BOOL"]) == \
        ("float32", "float16", "int32", "bool")
    assert dtypes["FP8"].startswith("BackendError: TensorRT tensor type FP8 has no numpy equivalent")
    if _major(report) >= 10:
        assert dtypes["INT64"] == "int64"


def test_broken_install_names_the_missing_library(tmp_path: Path) -> None:
    """The bindings without libnvinfer (a broken install): the BackendError the node logs names the
    missing library, not only its ``__cause__``."""
    folder = BINDINGS / "11.4.0"
    if not (folder / "ok").is_file():
        pytest.skip(f"TensorRT 11.4 bindings not in {folder} (scripts/fetch_tensorrt_bindings.sh)")
    (tmp_path / "tensorrt.py").write_text(f"import sys\nsys.path.insert(0, {str(folder / 'pkg')!r})\n"
                                          "from tensorrt_bindings import *\n")
    code = ("from asymtrack_ros.backends import BackendError, create_backend\n"
            "try:\n    create_backend('tensorrt', 'models/asymtrack_t_demo')\n"
            "except BackendError as exc:\n    print(exc)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    env.pop("LD_LIBRARY_PATH", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tensorrt Python package is not importable" in done.stdout
    assert "libnv" in done.stdout and "cannot open shared object file" in done.stdout, done.stdout
