"""TensorRT backend and engine cache.

The real-GPU tests run where ``tensorrt`` imports and a CUDA device answers, and are skipped
with the reason otherwise; TensorRT is never imitated. The engine cache is tested in
test_engine_cache.py, the backend's use of each TensorRT version's API in test_tensorrt_bindings.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pytest

from asymtrack_ros.backends import BackendError, create_backend, gpu_available

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
        assert cached.engine_paths["search"] == tmp_path / f"{variant}.search.{precision}.engine"


@needs_gpu
def test_verify_after_build_and_the_default_precision(exported: Dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    from asymtrack_ros.backends.engine_cache import DEFAULT_PRECISION
    from asymtrack_ros.tools.build_engine import main

    model = str(exported["tiny"])
    assert main([model, "--cache-dir", str(tmp_path), "--verify"]) == 1
    assert "MISSING " in capsys.readouterr().out
    assert main([model, "--cache-dir", str(tmp_path)]) == 0
    assert main([model, "--cache-dir", str(tmp_path), "--verify"]) == 0
    out = capsys.readouterr().out
    assert out.count("OK      ") == 2 and f" {DEFAULT_PRECISION} " in out
    with create_backend("tensorrt", exported["tiny"], cache_dir=tmp_path) as backend:
        assert backend.precision == DEFAULT_PRECISION
        assert backend.built == {"template": False, "search": False}


@needs_gpu
def test_tensorrt_binding_api_where_it_exists(exported: Dict[str, Path], tmp_path: Path) -> None:
    import tensorrt

    if int(tensorrt.__version__.split(".")[0]) >= 10:
        with pytest.raises(BackendError, match="io_api='bindings' is not available"):
            create_backend("tensorrt", exported["tiny"], cache_dir=tmp_path, io_api="bindings")
        pytest.skip(f"TensorRT {tensorrt.__version__} has no binding API (refused with a BackendError)")
    z = np.random.default_rng(0).standard_normal((1, 3, 128, 128)).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((1, 3, 256, 256)).astype(np.float32)
    outs = []
    for api in ("tensors", "bindings"):
        with create_backend("tensorrt", exported["tiny"], cache_dir=tmp_path, io_api=api) as backend:
            backend.init_template(z)
            outs.append(backend.track(x).boxes)
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)


# --------------------------------------------------------------------------- without TensorRT


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_missing_tensorrt_is_a_clear_error(exported: Dict[str, Path]) -> None:
    with pytest.raises(BackendError, match="tensorrt Python package is not importable") as error:
        create_backend("tensorrt", exported["tiny"])
    assert "No module named 'tensorrt'" in str(error.value)  # the cause, in the message the node logs
