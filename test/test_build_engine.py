"""asymtrack-build-engine: --verify names each stale engine and why; --fp16-onnx writes the FP16
pair. Building needs TensorRT and a GPU (test_tensorrt.py); the checks here read real cache files."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any, Dict

import pytest

from asymtrack_ros.backends import engine_cache as ec
from asymtrack_ros.backends.model_files import resolve_model_files
from asymtrack_ros.backends.tensorrt_backend import EngineSpec
from asymtrack_ros.tools import build_engine as tool

DEMO = Path(__file__).resolve().parents[1] / "models" / "asymtrack_t_demo"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    for role in ("template", "search"):
        shutil.copy(f"{DEMO}.{role}.onnx", tmp_path / f"robot.{role}.onnx")
    return tmp_path / "robot"


def _key(onnx: Path, **changes: Any) -> ec.EngineKey:
    fields: Dict[str, Any] = dict(onnx_sha256=ec.sha256_file(onnx), tensorrt_version="10.3.0",
                                  gpu_name="Orin", compute_capability="8.7", sm_count=8, total_memory_gib=15,
                                  precision="fp16")
    fields.update(changes)
    return ec.EngineKey(**fields)


def _spec(role: str, onnx: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> EngineSpec:
    monkeypatch.setenv(ec.CACHE_ENV, str(cache))
    key = _key(onnx)
    return EngineSpec(role, onnx, key, tuple(ec.engine_locations(onnx, "fp16", key.onnx_sha256)))


def test_verify_says_which_engine_is_stale_and_why(model: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    files = resolve_model_files(model)
    template = _spec("template", files.template, monkeypatch, tmp_path / "user")
    search = _spec("search", files.search, monkeypatch, tmp_path / "user")
    assert [c.status.reason for c in tool.check_specs([template, search])] == ["missing", "missing"]
    # Built before a JetPack upgrade (TensorRT 8.5) and on an AGX Orin (16 SMs, 31 GiB).
    ec.atomic_write(template.locations[0], ec.pack(_key(files.template, tensorrt_version="8.5.2.2"), b"p"))
    ec.atomic_write(search.locations[0], ec.pack(_key(files.search, sm_count=16, total_memory_gib=31), b"p"))
    lines = [tool.format_check(c) for c in tool.check_specs([template, search])]
    assert lines[0].startswith("STALE   template fp16") and str(template.locations[0]) in lines[0]
    assert "TensorRT version changed: '8.5.2.2' -> '10.3.0'" in lines[0]
    assert lines[1].startswith("STALE   search") and "GPU changed (SM count): 16 -> 8" in lines[1]
    assert "GPU changed (memory size): 31 -> 15" in lines[1]
    # An up-to-date engine in the fallback (the model folder was read-only when it was built).
    ec.atomic_write(search.locations[1], ec.pack(search.key, b"p"))
    checks = tool.check_specs([template, search])
    assert [c.ok for c in checks] == [False, True] and checks[1].status.path == search.locations[1]
    assert tool.format_check(checks[1]).startswith("OK      search")
    files.search.write_bytes(files.search.read_bytes() + b" ")  # the model was re-exported
    changed = _spec("search", files.search, monkeypatch, tmp_path / "user")
    (line,) = [tool.format_check(c) for c in tool.check_specs([changed])]
    assert line.startswith("STALE   search") and "ONNX file changed" in line


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_verify_without_tensorrt_says_why(model: Path, capsys: pytest.CaptureFixture) -> None:
    assert tool.main([str(model), "--verify"]) == 2
    err = capsys.readouterr().err
    assert "tensorrt Python package is not importable" in err and "No module named 'tensorrt'" in err


def test_fp16_onnx_pair(model: Path, capsys: pytest.CaptureFixture) -> None:
    onnx = pytest.importorskip("onnx")
    assert tool.main([str(model), "--fp16-onnx"]) == 0
    for role in ("template", "search"):
        half = onnx.load(str(model.parent / f"robot.{role}.fp16.onnx"))
        original = onnx.load(str(model.parent / f"robot.{role}.onnx"))
        assert {p.key: p.value for p in original.metadata_props}.items() <= \
            {p.key: p.value for p in half.metadata_props}.items()
        assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in half.graph.initializer)
    assert "robot.search.fp16.onnx" in capsys.readouterr().out
    assert tool.main([str(model.parent / "missing"), "--fp16-onnx"]) == 2


def test_a_model_name_is_found_where_the_node_finds_it(model: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    """A bare name is looked up in the package's models/ (as the node's ``model`` parameter), so the
    engines are built for the file the node will load; a name found nowhere is named."""
    from asymtrack_ros import packaged

    share = tmp_path / "share"
    (share / "models").mkdir(parents=True)
    for role in ("template", "search"):
        shutil.move(str(model.parent / f"robot.{role}.onnx"), share / "models" / f"robot.{role}.onnx")
    monkeypatch.setattr(packaged, "share_dirs", lambda: [share])
    monkeypatch.chdir(tmp_path)
    assert tool.main(["robot", "--fp16-onnx"]) == 0
    assert (share / "models" / "robot.search.fp16.onnx").is_file()
    assert tool.main(["nothing", "--fp16-onnx"]) == 2
    assert "model file not found: nothing (looked in " in capsys.readouterr().err
