"""FP16 graphs for strongly typed TensorRT (11+): float16 arithmetic, float32 inputs and outputs,
LayerNorm/softmax/reductions in float32, results close to the float32 graphs.

Run on ONNX Runtime's CPU provider, which executes float16 nodes (casting where it lacks a float16
kernel), so the comparison measures the float16 storage between ops; TensorRT's own FP16 kernels
are compared on a GPU by scripts/gpu_check.sh and test_tensorrt.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto  # noqa: E402

from asymtrack_ros.backends.model_files import resolve_model_files  # noqa: E402
from asymtrack_ros.onnx_fp16 import FP16_KEY, KEEP_FP32_OPS, convert_model  # noqa: E402
from asymtrack_ros.onnx_ops import check_tensorrt_compat, target_for_opset  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "models" / "asymtrack_t_demo"


@pytest.fixture(scope="module")
def demo_pair() -> Tuple[onnx.ModelProto, onnx.ModelProto]:
    files = resolve_model_files(DEMO)
    return onnx.load(str(files.template)), onnx.load(str(files.search))


@pytest.fixture(scope="module")
def converted(demo_pair: Tuple[onnx.ModelProto, onnx.ModelProto]) -> List[onnx.ModelProto]:
    return [convert_model(m) for m in demo_pair]


def _types(model: onnx.ModelProto) -> Dict[str, int]:
    graph = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(graph.input) + list(graph.value_info)
             + list(graph.output)}
    types.update({i.name: i.data_type for i in graph.initializer})
    return types


def io(m: onnx.ModelProto) -> List[Tuple[str, int]]:
    return [(v.name, v.type.tensor_type.elem_type) for v in list(m.graph.input) + list(m.graph.output)]


def test_io_stays_float32_and_arithmetic_is_float16(demo_pair: Tuple[onnx.ModelProto, ...],
                                                    converted: List[onnx.ModelProto]) -> None:
    for original, half in zip(demo_pair, converted):
        assert io(half) == io(original) and all(t == TensorProto.FLOAT for _, t in io(half))
        types = _types(half)
        ops = [n for n in half.graph.node if n.op_type in ("MatMul", "Gemm", "Conv")]
        assert ops and all(types[n.output[0]] == TensorProto.FLOAT16 for n in ops)
        kept = [n for n in half.graph.node if n.op_type in KEEP_FP32_OPS]
        assert kept and all(types[i] == TensorProto.FLOAT for n in kept for i in n.input if i in types
                            and types[i] in (TensorProto.FLOAT, TensorProto.FLOAT16))
        weights = [i for i in half.graph.initializer if i.data_type == TensorProto.FLOAT16]
        assert sum(int(np.prod(w.dims)) for w in weights) > 0.9 * sum(
            int(np.prod(i.dims)) for i in original.graph.initializer if i.data_type == TensorProto.FLOAT)
        meta = {p.key: p.value for p in half.metadata_props}
        assert meta[FP16_KEY] == "1" and {p.key for p in original.metadata_props} <= set(meta)
        opset = max(o.version for o in half.opset_import if o.domain in ("", "ai.onnx"))
        assert check_tensorrt_compat(half, target_for_opset(opset)) == []


def _run(models: Tuple[onnx.ModelProto, onnx.ModelProto], z: np.ndarray, x: np.ndarray) -> List[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    template, search = (ort.InferenceSession(m.SerializeToString(), options,
                                             providers=["CPUExecutionProvider"]) for m in models)
    state = dict(zip([o.name for o in template.get_outputs()], template.run(None, {"template": z})))
    return search.run(None, {"search": x, **state})


def test_float16_results_are_close_to_float32(demo_pair: Tuple[onnx.ModelProto, ...],
                                              converted: List[onnx.ModelProto]) -> None:
    rng = np.random.default_rng(0)
    worst = {"boxes": 0.0, "prob_tl": 0.0, "prob_br": 0.0}
    for _ in range(3):
        z = rng.standard_normal((1, 3, 128, 128)).astype(np.float32)
        x = rng.standard_normal((1, 3, 256, 256)).astype(np.float32)
        for name, a, b in zip(worst, _run(demo_pair, z, x), _run(tuple(converted), z, x)):
            assert b.dtype == np.float32 and np.isfinite(b).all()
            worst[name] = max(worst[name], float(np.abs(a - b).max()))
    print(f"float16 vs float32 graph, demo model, ONNX Runtime CPU: max abs diff {worst}")
    assert max(worst.values()) < 2e-3  # measured 1.5e-4 (boxes), 4e-4 (probabilities)


def test_converter_leaves_its_input_alone(demo_pair: Tuple[onnx.ModelProto, ...]) -> None:
    before = demo_pair[1].SerializeToString()
    convert_model(demo_pair[1])
    assert demo_pair[1].SerializeToString() == before


def test_strongly_typed_build_takes_the_exported_fp16_graph_else_converts(tmp_path: Path) -> None:
    import shutil

    from asymtrack_ros.backends.engine_cache import sha256_file
    from asymtrack_ros.backends.tensorrt_backend import fp16_graph_source, fp16_onnx_path

    search = tmp_path / "m.search.onnx"
    shutil.copy(f"{DEMO}.search.onnx", search)
    source, graph = fp16_graph_source(search)
    assert source == "fp16 graph converted (v1)"
    converted = onnx.load_from_string(graph())
    assert {p.key: p.value for p in converted.metadata_props}[FP16_KEY] == "1"
    exported = fp16_onnx_path(search)
    assert exported == tmp_path / "m.search.fp16.onnx"
    exported.write_bytes(graph())
    source, graph = fp16_graph_source(search)
    assert source == f"fp16 graph {sha256_file(exported)}" and graph() == exported.read_bytes()
