"""TensorRT backend and engine cache.

The real-GPU tests run where ``tensorrt`` imports and a CUDA device answers, and are skipped
with the reason otherwise; TensorRT is never imitated. The engine cache's keying and rebuild
logic is plain Python and runs everywhere.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pytest

from asymtrack_ros.backends import BackendError, create_backend, gpu_available
from asymtrack_ros.backends import engine_cache as ec

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
from test_export import VARIANTS, export_reference_models  # noqa: E402


@pytest.fixture(scope="session")
def exported(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    return export_reference_models(reference_dir, tmp_path_factory.getbasetemp())


def _real_tensorrt_reason() -> Optional[str]:
    if importlib.util.find_spec("tensorrt") is None:
        return "tensorrt is not installed"
    if not gpu_available():
        return "no CUDA device (or neither cuda-python nor pycuda installed)"
    return None


needs_gpu = pytest.mark.skipif(_real_tensorrt_reason() is not None,
                               reason=f"real TensorRT tests: {_real_tensorrt_reason()}")


# --------------------------------------------------------------------------- real TensorRT


@needs_gpu
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("precision,tolerance", [("fp32", 2e-4), ("fp16", 2e-2)])
def test_tensorrt_matches_reference_vectors(exported: Dict[str, Path], reference_dir: Path, tmp_path: Path,
                                            variant: str, precision: str, tolerance: float) -> None:
    vectors = np.load(reference_dir / f"network_{variant}.npz")
    with create_backend("tensorrt", exported[variant], precision=precision, cache_dir=tmp_path) as backend:
        worst = 0.0
        for i in range(3):
            backend.init_template(vectors[f"template_{i}"])
            out = backend.track(vectors[f"search_{i}"])
            again = backend.track(vectors[f"search_{i}"])
            worst = max(worst, float(np.abs(out.boxes - vectors[f"pred_boxes_{i}"][0]).max()),
                        float(np.abs(again.boxes - vectors[f"pred_boxes_cached_{i}"][0]).max()))
        print(f"TensorRT {precision} AsymTrack-{variant} on {backend.gpu_name}: max box diff {worst:.2e}")
        assert worst < tolerance
    with create_backend("tensorrt", exported[variant], precision=precision, cache_dir=tmp_path) as cached:
        assert cached.built == {"template": False, "search": False}


@needs_gpu
def test_tensorrt_binding_api_where_it_exists(exported: Dict[str, Path], tmp_path: Path) -> None:
    import tensorrt

    if int(tensorrt.__version__.split(".")[0]) >= 10:
        pytest.skip(f"TensorRT {tensorrt.__version__} has no binding API")
    z = np.random.default_rng(0).standard_normal((1, 3, 128, 128)).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((1, 3, 256, 256)).astype(np.float32)
    outs = []
    for api in ("tensors", "bindings"):
        with create_backend("tensorrt", exported["tiny"], cache_dir=tmp_path, io_api=api) as backend:
            backend.init_template(z)
            outs.append(backend.track(x).boxes)
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)


# --------------------------------------------------------------------------- engine cache


def _key(**changes: Any) -> ec.EngineKey:
    fields = dict(onnx_sha256="ab" * 32, tensorrt_version="8.5.2.2", gpu_name="Orin",
                  compute_capability="8.7", precision="fp16")
    fields.update(changes)
    return ec.EngineKey(**fields)


def test_engine_cache_keys_and_rebuilds(tmp_path: Path) -> None:
    path = ec.engine_path(tmp_path / "m.search.onnx", "fp16")
    assert path == tmp_path / "m.search.fp16.engine"
    builds: List[bytes] = []

    def build() -> bytes:
        builds.append(b"plan%d" % len(builds))
        return builds[-1]

    def deserialize(plan: bytes) -> Optional[bytes]:
        return plan if plan.startswith(b"plan") else None

    engine, built = ec.load_or_build(path, _key(), build, deserialize)
    assert built and engine == b"plan0"
    assert json.loads(ec.sidecar_path(path).read_text())["gpu_name"] == "Orin"
    assert ec.load_or_build(path, _key(), build, deserialize) == (b"plan0", False)
    for change in ({"gpu_name": "Xavier"}, {"tensorrt_version": "10.3.0"}, {"onnx_sha256": "cd" * 32}):
        engine, built = ec.load_or_build(path, _key(**change), build, deserialize)
        assert built, change
    path.write_bytes(b"garbage")  # key still matches: the plan itself fails to load
    engine, built = ec.load_or_build(path, _key(onnx_sha256="cd" * 32), build, deserialize)
    assert built and engine.startswith(b"plan")
    ec.sidecar_path(path).write_text("{not json")
    assert ec.load_or_build(path, _key(), build, deserialize)[1]
    assert ec.load_or_build(path, _key(), build, deserialize, rebuild=True)[1]
    with pytest.raises(ValueError, match="precision"):
        ec.engine_path(path, "int4")


def test_engine_cache_build_failure_propagates(tmp_path: Path) -> None:
    def build() -> bytes:
        raise BackendError("TensorRT failed to build an engine")

    with pytest.raises(BackendError, match="failed to build"):
        ec.load_or_build(tmp_path / "x.engine", _key(), build, lambda plan: plan)
    assert not (tmp_path / "x.engine").exists()


def test_sha256_of_onnx(exported: Dict[str, Path]) -> None:
    import hashlib

    path = Path(f"{exported['tiny']}.search.onnx")
    assert ec.sha256_file(path, chunk=4096) == hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- without TensorRT


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_missing_tensorrt_is_a_clear_error(exported: Dict[str, Path]) -> None:
    with pytest.raises(BackendError, match="tensorrt Python package is not importable"):
        create_backend("tensorrt", exported["tiny"])
