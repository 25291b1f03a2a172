"""ONNX export: two static graphs per variant, our metadata, onnx's checker, TensorRT 8.5 ops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from asymtrack_ros.backends.model_files import INFO_KEY, resolve_model_files  # noqa: E402
from asymtrack_ros.export import REWRITE_TOLERANCE, export_onnx  # noqa: E402
from asymtrack_ros.model.inference_graph import SearchGraph  # noqa: E402
from asymtrack_ros.model_info import ModelInfo  # noqa: E402
from asymtrack_ros.onnx_ops import TENSORRT_85_OPS, check_tensorrt_compat, op_types  # noqa: E402

VARIANTS = ("tiny", "small", "base")
STATE = ["etm1_kernels", "etm2_kernels", "attn_k", "attn_v"]


def export_reference_models(reference_dir: Path, base: Path) -> Dict[str, Path]:
    """Export each variant once per session (prefixes under pytest's base temp, shared by modules)."""
    from asymtrack_ros.model import load_published, save_deploy

    prefixes = {}
    for variant in VARIANTS:
        prefix = base / "asymtrack_exports" / variant
        if not Path(f"{prefix}.search.onnx").is_file():
            prefix.parent.mkdir(parents=True, exist_ok=True)
            model = load_published(reference_dir / f"official_{variant}_random.pth.tar")
            save_deploy(model, f"{prefix}.pt")
            export_onnx(model, prefix)
        prefixes[variant] = prefix
    return prefixes


@pytest.fixture(scope="session")
def exported(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    return export_reference_models(reference_dir, tmp_path_factory.getbasetemp())


@pytest.mark.parametrize("variant", VARIANTS)
def test_export_writes_checked_static_pair(exported: Dict[str, Path], variant: str) -> None:
    files = resolve_model_files(exported[variant])
    info = ModelInfo.for_variant(variant)
    assert files.info == info
    z, f = info.template_size, info.feature_size
    for path in (files.template, files.search):
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto, full_check=True)
        meta = {p.key: p.value for p in proto.metadata_props}
        assert ModelInfo.from_json(meta[INFO_KEY]) == info
        assert json.loads(meta[INFO_KEY])["variant"] == variant
        assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [16]
    template = onnx.load(str(files.template)).graph
    search = onnx.load(str(files.search)).graph
    assert [i.name for i in template.input] == ["template"]
    assert [o.name for o in template.output] == STATE
    assert [i.name for i in search.input] == ["search"] + STATE
    assert [o.name for o in search.output] == ["boxes", "prob_tl", "prob_br"]
    shapes = {d.name: d.shape for d in files.state + files.outputs}
    assert shapes["boxes"] == (1, 4) and shapes["prob_tl"] == (1, f * f) and shapes["prob_br"] == (1, f * f)
    assert shapes["attn_k"] == (1, 8, (z // 16) ** 2, 32)
    assert Path(f"{exported[variant]}.search.onnx").stat().st_size > 1e6


@pytest.mark.parametrize("variant", VARIANTS)
def test_graphs_use_only_tensorrt_85_ops(exported: Dict[str, Path], variant: str) -> None:
    files = resolve_model_files(exported[variant])
    for path in (files.template, files.search):
        proto = onnx.load(str(path))
        assert check_tensorrt_compat(proto) == []
        ops = op_types(proto)
        assert set(ops) <= TENSORRT_85_OPS
        assert not {"Loop", "Scan", "If", "Einsum", "Shape", "LayerNormalization"} & set(ops)
        constants = {i.name for i in proto.graph.initializer}
        assert all(n.input[1] in constants for n in proto.graph.node if n.op_type == "Conv")


def _graph(nodes, inputs, outputs, initializers=(), opset=16):  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name: str, shape):  # type: ignore[no-untyped-def]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_allow_list_rejects_what_tensorrt_85_cannot_parse() -> None:
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])
    static = _graph([helper.make_node("Conv", ["x", "w"], ["y"])], [_vi("x", [1, 1, 4, 4])],
                    [_vi("y", [1, 1, 4, 4])], [weight])
    assert check_tensorrt_compat(static) == []
    dynamic_weight = _graph([helper.make_node("Conv", ["x", "k"], ["y"])],
                            [_vi("x", [1, 1, 4, 4]), _vi("k", [1, 1, 1, 1])], [_vi("y", [1, 1, 4, 4])])
    assert any("dynamic weights" in p for p in check_tensorrt_compat(dynamic_weight))
    layer_norm = _graph([helper.make_node("LayerNormalization", ["x", "s"], ["y"])],
                        [_vi("x", [1, 4]), _vi("s", [4])], [_vi("y", [1, 4])], opset=17)
    assert any("8.6" in p for p in check_tensorrt_compat(layer_norm))
    einsum = _graph([helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->i")],
                    [_vi("x", [2, 2])], [_vi("y", [2])])
    assert any("Einsum" in p for p in check_tensorrt_compat(einsum))
    too_new = _graph([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1])], [_vi("y", [1])], opset=18)
    assert any("opset 18" in p for p in check_tensorrt_compat(too_new))
    dynamic_shape = _graph([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", ["n", 3])],
                           [_vi("y", ["n", 3])])
    assert any("dynamic shape" in p for p in check_tensorrt_compat(dynamic_shape))
    body = helper.make_graph([], "body", [], [])
    loop = _graph([helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)],
                  [helper.make_tensor_value_info("c", TensorProto.BOOL, [])], [_vi("y", [1])])
    assert any("control flow" in p for p in check_tensorrt_compat(loop))


def test_opset_17_is_selectable_and_pytorch_stays_in_eval(reference_dir: Path, tmp_path: Path) -> None:
    from asymtrack_ros.model import load_published

    model = load_published(reference_dir / "official_tiny_random.pth.tar")
    template, search = export_onnx(model, tmp_path / "t17", opset=17)
    assert not model.training
    for path in (template, search):
        proto = onnx.load(str(path))
        assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
        assert check_tensorrt_compat(proto, "8.6") == []
        assert "LayerNormalization" in op_types(proto)  # why opset 16 is the default for TensorRT 8.5
        assert any("8.6+" in p for p in check_tensorrt_compat(proto, "8.5"))
    # From opset 17 every LayerNorm of the search graph is one node (TensorRT's normalization layer).
    search_ops = [n.op_type for n in onnx.load(str(search)).graph.node]
    assert search_ops.count("LayerNormalization") == 18 and "Sqrt" not in search_ops
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "bad", opset=11)


def test_export_does_not_change_the_model(reference_dir: Path, tmp_path: Path) -> None:
    from asymtrack_ros.model import load_published

    model = load_published(reference_dir / "official_tiny_random.pth.tar")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_export_tool(reference_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from asymtrack_ros.tools.export import main

    prefix = tmp_path / "tool" / "asymtrack_t"
    assert main([str(reference_dir / "official_tiny_random.pth.tar"), "-o", str(prefix)]) == 0
    assert resolve_model_files(f"{prefix}.template.onnx").info.variant == "tiny"
    assert "wrote" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.pt")]) == 2
    assert "not found" in capsys.readouterr().err


def test_deploy_checkpoint_exports_beside_itself(exported: Dict[str, Path], tmp_path: Path) -> None:
    from asymtrack_ros.tools.export import main

    checkpoint = tmp_path / "robot.pt"
    checkpoint.write_bytes(Path(f"{exported['tiny']}.pt").read_bytes())
    assert main([str(checkpoint)]) == 0
    files = resolve_model_files(checkpoint)
    assert files.template == tmp_path / "robot.template.onnx"
    assert np.isclose(files.info.search_factor, 4.0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_search_graph_rewrite_computes_what_the_model_computes(reference_dir: Path, variant: str) -> None:
    """The exported formulation (channel-first stages, 2-D tokens, broadcast context) is the same network."""
    from asymtrack_ros.model import load_published

    model = load_published(reference_dir / f"official_{variant}_random.pth.tar")
    vectors = np.load(reference_dir / f"network_{variant}.npz")
    graphs = [SearchGraph(model, model.state_names, channels_first=cf).eval() for cf in (True, False)]
    with torch.no_grad():
        for i in range(3):
            state = model.init_template(torch.from_numpy(vectors[f"template_{i}"])).as_dict()
            x = torch.from_numpy(vectors[f"search_{i}"])
            for graph in graphs:
                assert graph.max_difference(x, state) <= REWRITE_TOLERANCE


def test_rewritten_search_graph_matches_the_traced_model(exported: Dict[str, Path], reference_dir: Path,
                                                        tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from asymtrack_ros.model import load_published

    search = onnx.load(f"{exported['tiny']}.search.onnx")
    ops = op_types(search)
    assert "Tile" not in ops and "Gemm" in ops  # broadcast context, Linear on 2-D tokens
    model = load_published(reference_dir / "official_tiny_random.pth.tar")
    _, traced = export_onnx(model, tmp_path / "traced", rewrite=False)
    assert "Tile" in op_types(onnx.load(str(traced)))
    vectors = np.load(reference_dir / "network_tiny.npz")
    with torch.no_grad():
        state = model.init_template(torch.from_numpy(vectors["template_0"])).as_dict()
    feeds = {"search": vectors["search_0"], **{k: v.numpy() for k, v in state.items()}}
    outputs = [ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
               for path in (f"{exported['tiny']}.search.onnx", traced)]
    assert max(float(np.abs(a - b).max()) for a, b in zip(*outputs)) <= REWRITE_TOLERANCE


def test_fp16_export_for_strongly_typed_tensorrt(reference_dir: Path, tmp_path: Path) -> None:
    """``fp16=True`` writes NAME.*.fp16.onnx: same pair and metadata, float32 IO, every
    LayerNormalization and Softmax in float32, boxes within float16 noise of the model's."""
    ort = pytest.importorskip("onnxruntime")
    from asymtrack_ros.model import load_published

    model = load_published(reference_dir / "official_tiny_random.pth.tar")
    template, search = export_onnx(model, tmp_path / "m", opset=17, fp16=True)
    half_paths = [tmp_path / "m.template.fp16.onnx", tmp_path / "m.search.fp16.onnx"]
    for full, half_path in zip((template, search), half_paths):
        half = onnx.load(str(half_path))
        meta = {p.key: p.value for p in half.metadata_props}
        assert {p.key: p.value for p in onnx.load(str(full)).metadata_props}.items() <= meta.items()
        assert check_tensorrt_compat(half, "8.6") == []
        graph = onnx.shape_inference.infer_shapes(half).graph
        types = {v.name: v.type.tensor_type.elem_type for v in list(graph.value_info) + list(graph.input)}
        norms = [n for n in half.graph.node if n.op_type in ("LayerNormalization", "Softmax")]
        assert norms and all(types[n.input[0]] == TensorProto.FLOAT for n in norms)
    vectors = np.load(reference_dir / "network_tiny.npz")
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in half_paths]
    worst = 0.0
    for i in range(3):
        state = sessions[0].run(None, {"template": vectors[f"template_{i}"]})
        feeds = dict(zip([o.name for o in sessions[0].get_outputs()], state), search=vectors[f"search_{i}"])
        boxes = sessions[1].run(None, feeds)[0]
        worst = max(worst, float(np.abs(boxes - vectors[f"pred_boxes_{i}"]).max()))
    print(f"fp16 graph (ONNX Runtime CPU) vs reference boxes: {worst:.2e}")
    assert worst < 5e-3
