"""PyTorch vs ONNX Runtime on the reference vectors, create_backend, torch-free runtime, bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest

from asymtrack_ros.backends import BackendError, ModelFileError, SearchOutput, auto_kind, create_backend
from asymtrack_ros.backends.model_files import model_prefix, onnx_pair_paths, resolve_model_files
from asymtrack_ros.backends.onnx_proto import parse_onnx

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from test_export import VARIANTS, export_reference_models  # noqa: E402

TOLERANCE = 1e-4
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def exported(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    return export_reference_models(reference_dir, tmp_path_factory.getbasetemp())


def _max_diff(a: SearchOutput, b: SearchOutput) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.mark.parametrize("variant", VARIANTS)
def test_pytorch_and_onnxruntime_agree_on_reference_vectors(exported: Dict[str, Path], reference_dir: Path,
                                                            variant: str) -> None:
    vectors = np.load(reference_dir / f"network_{variant}.npz")
    with create_backend("pytorch", f"{exported[variant]}.pt") as reference, \
            create_backend("onnxruntime", exported[variant], threads=1) as ort_backend:
        worst = 0.0
        for i in range(3):
            outputs = []
            for backend in (reference, ort_backend):
                backend.init_template(vectors[f"template_{i}"])
                first = backend.track(vectors[f"search_{i}"])
                second = backend.track(vectors[f"search_{i}"])  # the cached template, again
                np.testing.assert_allclose(first.boxes, vectors[f"pred_boxes_{i}"][0], atol=TOLERANCE)
                np.testing.assert_allclose(second.boxes, vectors[f"pred_boxes_cached_{i}"][0], atol=TOLERANCE)
                np.testing.assert_allclose(first.prob_tl, vectors[f"prob_tl_{i}"][0], atol=TOLERANCE)
                np.testing.assert_allclose(first.prob_br, vectors[f"prob_br_{i}"][0], atol=TOLERANCE)
                outputs.append(first)
            worst = max(worst, _max_diff(*outputs))
        print(f"AsymTrack-{variant}: max |PyTorch - ONNX Runtime| = {worst:.2e}")
        assert worst < TOLERANCE


def test_onnxruntime_fuses_every_channel_last_layer_norm(exported: Dict[str, Path], tmp_path: Path) -> None:
    """With the transpose optimizer off, each channel-last LayerNorm of the search graph (ReduceMean
    over the last axis) becomes one LayerNormalization node, the channel-first ones (MatMul means)
    stay as they are, and the NCHWc pass still absorbs the Transposes around the convs."""
    import onnxruntime as ort

    from asymtrack_ros.backends.onnxruntime_backend import DISABLED_OPTIMIZERS, session_options

    path = f"{exported['tiny']}.search.onnx"
    exported_ops = [n.op_type for n in onnx.load(path).graph.node]
    channel_last = exported_ops.count("ReduceMean") // 2
    assert exported_ops.count("Sqrt") == 18 and 0 < channel_last < 18
    opts = session_options(threads=1)
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"],
                         disabled_optimizers=list(DISABLED_OPTIMIZERS))
    optimized = [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]
    assert optimized.count("LayerNormalization") == channel_last
    assert "ReduceMean" not in optimized and "SimplifiedLayerNormalization" not in optimized
    assert optimized.count("Transpose") < 10 and "ReorderInput" in optimized


def test_onnx_metadata_reader_agrees_with_onnx(exported: Dict[str, Path]) -> None:
    for path in onnx_pair_paths(exported["tiny"]):
        proto = onnx.load(str(path))
        summary = parse_onnx(path.read_bytes(), path)
        assert summary.metadata == {p.key: p.value for p in proto.metadata_props}
        assert [i.name for i in summary.inputs] == [i.name for i in proto.graph.input]
        assert [o.name for o in summary.outputs] == [o.name for o in proto.graph.output]
        assert summary.num_nodes == len(proto.graph.node)
        assert summary.opsets[""] == 16


def test_model_paths_resolve_to_one_pair(exported: Dict[str, Path]) -> None:
    prefix = exported["tiny"]
    assert model_prefix("a/b.pt") == model_prefix("a/b.template.onnx") == model_prefix("a/b.search.onnx") \
        == model_prefix("a/b.pth.tar") == Path("a/b")
    for given in (prefix, f"{prefix}.pt", f"{prefix}.template.onnx", f"{prefix}.search.onnx"):
        files = resolve_model_files(given)
        assert files.template == Path(f"{prefix}.template.onnx")
        assert files.state_names == ("etm1_kernels", "etm2_kernels", "attn_k", "attn_v")


def test_create_backend_kinds(exported: Dict[str, Path]) -> None:
    assert auto_kind() in ("onnxruntime", "tensorrt")
    with create_backend("ort", f"{exported['tiny']}.search.onnx") as backend:
        assert backend.name == "onnxruntime" and backend.active_providers == ["CPUExecutionProvider"]
    with create_backend("pytorch", exported["tiny"]) as backend:  # prefix -> NAME.pt
        assert backend.name == "pytorch" and backend.info.variant == "tiny"
    with pytest.raises(ValueError, match="unknown backend"):
        create_backend("openvino", exported["tiny"])


def test_pytorch_backend_takes_a_model_or_a_published_checkpoint(reference_dir: Path) -> None:
    from asymtrack_ros.backends.pytorch_backend import PyTorchBackend
    from asymtrack_ros.model import load_published

    vectors = np.load(reference_dir / "network_tiny.npz")
    for source in (load_published(reference_dir / "official_tiny_random.pth.tar"),
                   reference_dir / "official_tiny_random.pth.tar"):
        backend = PyTorchBackend(source)
        backend.init_template(vectors["template_0"])
        np.testing.assert_allclose(backend.track(vectors["search_0"]).boxes, vectors["pred_boxes_0"][0],
                                   atol=TOLERANCE)


def test_runtime_backends_never_import_torch(exported: Dict[str, Path]) -> None:
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import asymtrack_ros.backends
        import asymtrack_ros.backends.onnxruntime_backend
        import asymtrack_ros.backends.tensorrt_backend
        from asymtrack_ros.backends import create_backend
        backend = create_backend("onnxruntime", {str(exported['tiny'])!r})
        backend.init_template(np.zeros((1, 3, 128, 128), np.float32))
        out = backend.track(np.zeros((1, 3, 256, 256), np.float32))
        assert out.boxes.shape == (4,) and out.prob_tl.shape == (64,)
        leaked = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not leaked, leaked
        print("torch-free")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO))
    assert result.returncode == 0, result.stderr
    assert "torch-free" in result.stdout


@pytest.fixture()
def tiny_ort(exported: Dict[str, Path]):  # type: ignore[no-untyped-def]
    backend = create_backend("onnxruntime", exported["tiny"], threads=1)
    yield backend
    backend.close()


def test_wrong_shapes_and_call_order_are_clear_errors(tiny_ort) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BackendError, match="before init_template"):
        tiny_ort.track(np.zeros((1, 3, 256, 256), np.float32))
    with pytest.raises(ValueError, match=r"template crop must have shape \(1, 3, 128, 128\)"):
        tiny_ort.init_template(np.zeros((1, 3, 256, 256), np.float32))
    with pytest.raises(TypeError, match="numpy array"):
        tiny_ort.init_template([[0.0]])
    tiny_ort.init_template(np.zeros((1, 3, 128, 128), np.float64))  # cast, not refused
    with pytest.raises(ValueError, match="search crop"):
        tiny_ort.track(np.zeros((3, 256, 256), np.float32))
    out = tiny_ort.track(np.zeros((1, 3, 256, 256), np.float32))
    assert out.boxes.dtype == np.float32 and np.isfinite(out.boxes).all()
    tiny_ort.close()
    tiny_ort.close()
    with pytest.raises(BackendError):
        tiny_ort.track(np.zeros((1, 3, 256, 256), np.float32))


def test_outputs_are_not_overwritten_by_the_next_frame(tiny_ort) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    tiny_ort.init_template(rng.standard_normal((1, 3, 128, 128)).astype(np.float32))
    first = tiny_ort.track(rng.standard_normal((1, 3, 256, 256)).astype(np.float32))
    kept = first.boxes.copy()
    tiny_ort.track(rng.standard_normal((1, 3, 256, 256)).astype(np.float32))
    np.testing.assert_array_equal(first.boxes, kept)


def _copy_pair(prefix: Path, folder: Path, name: str = "m") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for src in onnx_pair_paths(prefix):
        shutil.copy(src, folder / src.name.replace(prefix.name, name, 1))
    return folder / name


def test_missing_files_tell_the_user_to_export(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"asymtrack-export MODEL.pt -o"):
        create_backend("onnxruntime", tmp_path / "nothing")
    (tmp_path / "robot.pt").write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"export it first: asymtrack-export .*robot.pt"):
        create_backend("onnxruntime", tmp_path / "robot.pt")
    with pytest.raises(ModelFileError, match="not found"):
        create_backend("pytorch", tmp_path / "absent.pt")


def test_corrupt_files_are_reported(exported: Dict[str, Path], tmp_path: Path) -> None:
    prefix = _copy_pair(exported["tiny"], tmp_path)
    search = Path(f"{prefix}.search.onnx")
    data = search.read_bytes()
    search.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        create_backend("onnxruntime", prefix)
    search.write_bytes(b"\xff" * 64)
    with pytest.raises(ModelFileError, match="not a valid ONNX file"):
        create_backend("onnxruntime", prefix)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="bad.pt"):
        create_backend("pytorch", tmp_path / "bad.pt")


def test_mismatched_pairs_are_refused(exported: Dict[str, Path], tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    shutil.copy(f"{exported['tiny']}.template.onnx", f"{mixed}.template.onnx")
    shutil.copy(f"{exported['base']}.search.onnx", f"{mixed}.search.onnx")
    with pytest.raises(ModelFileError, match="different models"):
        create_backend("onnxruntime", mixed)
    other = _copy_pair(exported["tiny"], tmp_path / "other")
    proto = onnx.load(f"{other}.search.onnx")
    for entry in proto.metadata_props:
        if entry.key == "asymtrack_pair":
            entry.value = "another-export"
    onnx.save(proto, f"{other}.search.onnx")
    with pytest.raises(ModelFileError, match="different exports"):
        create_backend("onnxruntime", other)
    swapped = tmp_path / "swapped"
    shutil.copy(f"{exported['tiny']}.search.onnx", f"{swapped}.template.onnx")
    shutil.copy(f"{exported['tiny']}.search.onnx", f"{swapped}.search.onnx")
    with pytest.raises(ModelFileError, match="expected the 'template' graph"):
        create_backend("onnxruntime", swapped)


def test_foreign_onnx_without_metadata_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    for path in onnx_pair_paths(tmp_path / "foreign"):
        onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelFileError, match="graph|metadata"):
        create_backend("onnxruntime", tmp_path / "foreign")


def test_unavailable_execution_provider_is_an_error(exported: Dict[str, Path]) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(BackendError, match="CUDAExecutionProvider is not available"):
        create_backend("onnxruntime", exported["tiny"], providers="cuda")
    with create_backend("onnxruntime", exported["tiny"], providers="auto") as backend:
        assert backend.active_providers == ["CPUExecutionProvider"]


def test_onnxruntime_spin_time_reaches_the_session_and_keeps_the_results(exported: Dict[str, Path]) -> None:
    from asymtrack_ros.backends.onnxruntime_backend import session_options

    def entries(spin_us: int) -> Tuple[str, str]:
        opts = session_options(threads=2, spin_us=spin_us)
        return (opts.get_session_config_entry("session.intra_op.allow_spinning"),
                opts.get_session_config_entry("session.intra_op.spin_duration_us")
                if spin_us > 0 else "")

    assert entries(0) == ("0", "") and entries(-1) == ("1", "") and entries(1000) == ("1", "1000")
    with pytest.raises(BackendError, match="spin_us"):
        session_options(spin_us=-2)
    rng = np.random.default_rng(3)
    z = rng.standard_normal((1, 3, 128, 128)).astype(np.float32)
    x = rng.standard_normal((1, 3, 256, 256)).astype(np.float32)
    boxes = []
    for spin_us in (0, 1000, -1):
        with create_backend("onnxruntime", exported["tiny"], threads=2, spin_us=spin_us) as backend:
            backend.init_template(z)
            boxes.append(backend.track(x).boxes)
    assert np.allclose(boxes[0], boxes[1], atol=1e-6) and np.allclose(boxes[0], boxes[2], atol=1e-6)


def test_open_backend_hands_each_backend_the_options_it_knows(exported: Dict[str, Path]) -> None:
    from asymtrack_ros.backends import BackendOptions, open_backend

    with open_backend("onnxruntime", exported["tiny"], BackendOptions(threads=1, spin_us=-1)) as backend:
        session = backend._search.get_session_options()
        assert session.intra_op_num_threads == 1
        assert session.get_session_config_entry("session.intra_op.allow_spinning") == "1"
        assert backend.active_providers == ["CPUExecutionProvider"]
    threads = torch.get_num_threads()
    try:
        options = BackendOptions(device="cpu", threads=1, variant="tiny")
        with open_backend("pytorch", f"{exported['tiny']}.pt", options) as backend:
            assert backend.name == "pytorch" and str(backend.device) == "cpu" and torch.get_num_threads() == 1
        with pytest.raises(ModelFileError, match="AsymTrack-tiny, not small"):
            open_backend("pytorch", f"{exported['tiny']}.pt", BackendOptions(variant="small"))
    finally:
        torch.set_num_threads(threads)
    with open_backend("auto", exported["tiny"]) as backend:
        assert backend.name == auto_kind()
    with pytest.raises(ValueError, match="unknown backend 'openvino'"):
        open_backend("openvino", exported["tiny"])


def test_tensorrt_reads_its_options() -> None:
    """The keywords TensorRTBackend.from_options gives its constructor (no GPU needed)."""
    from asymtrack_ros.backends import BackendOptions
    from asymtrack_ros.backends.tensorrt_backend import TensorRTBackend

    class Recorded(TensorRTBackend):
        def __init__(self, model_path: str, **keywords: object) -> None:  # records, builds nothing
            self.keywords = keywords

    options = BackendOptions(device="cuda:1", precision="fp32", engine_cache_dir="/tmp/engines", rebuild=True,
                             threads=3, spin_us=-1)
    assert Recorded.from_options("m", options).keywords == {"precision": "fp32", "device": 1,
                                                              "cache_dir": "/tmp/engines", "rebuild": True}
    assert Recorded.from_options("m", BackendOptions()).keywords["device"] == 0


def test_backend_options_are_checked_and_share_one_precision_default() -> None:
    import inspect

    from asymtrack_ros.backends import BackendOptions
    from asymtrack_ros.backends.engine_cache import DEFAULT_PRECISION
    from asymtrack_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from asymtrack_ros.backends.tensorrt_backend import TensorRTBackend

    assert BackendOptions().precision == DEFAULT_PRECISION == "fp16"  # docs/BACKENDS.md, docs/NODE.md
    assert inspect.signature(TensorRTBackend).parameters["precision"].default == DEFAULT_PRECISION
    assert inspect.signature(OnnxRuntimeBackend).parameters["fp16"].default is (DEFAULT_PRECISION == "fp16")
    for bad in (dict(precision="int8"), dict(threads=-1), dict(spin_us=-2)):
        with pytest.raises(ValueError):
            BackendOptions(**bad)
    assert [BackendOptions(device=d).gpu_index() for d in ("", "cuda", "2", "cuda:1")] == [0, 0, 2, 1]
    with pytest.raises(ValueError, match="not a GPU index"):
        BackendOptions(device="cpu").gpu_index()
