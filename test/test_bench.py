"""asymtrack-bench smoke run: a few iterations, no timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


def test_bench_smoke(reference_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    from asymtrack_ros.tools.bench import main

    monkeypatch.setenv("ASYMTRACK_REFERENCE_DIR", str(reference_dir))  # the published random checkpoints
    out = tmp_path / "bench.json"
    code = main(["--variants", "tiny", "--backends", "onnxruntime,tensorrt", "--iterations", "3",
                 "--warmup", "1", "--rounds", "1", "--rate", "50", "--spin-us", "0", "--json", str(out),
                 "--workdir", str(tmp_path / "models")])
    assert code == 0
    table = capsys.readouterr().out
    assert "threads: " in table and "same intra-op thread count" in table
    assert "search ms med/p95" in table and "tiny | onnxruntime" in table and "tiny | pytorch" in table
    rows = {r["backend"]: r for r in json.loads(out.read_text())}
    eager, ort = rows["pytorch"], rows["onnxruntime"]
    assert eager["speedup"] == pytest.approx(1.0) and eager["torch_imported"]
    assert eager["options"]["threads"] == ort["options"]["threads"] == ort["eager_threads"] >= 1
    assert ort["torch_imported"] is False and ort["peak_rss_mb"] > 0 and ort["samples"] == 3
    assert ort["search_ms"]["p95"] >= ort["search_ms"]["median"] > 0 and ort["search_fps"] > 0
    assert ort["source"].endswith("official_tiny_random.pth.tar")
    assert ort["options"]["spin_us"] == 0 and "at 50 Hz" in table
    assert ort["paced_ms"]["median"] > 0 and ort["paced_cpu_percent"] > 0
    assert max(abs(a - b) for a, b in zip(ort["boxes"], eager["boxes"])) < 1e-4
    assert "tensorrt" in rows and ("skipped" in rows["tensorrt"] or "search_ms" in rows["tensorrt"])
    assert (tmp_path / "models" / "asymtrack_tiny.search.onnx").is_file()


def test_bench_table_reports_failures() -> None:
    from asymtrack_ros.tools.bench import format_table

    table = format_table([{"variant": "base", "backend": "tensorrt", "skipped": "no CUDA device"},
                          {"variant": "base", "backend": "onnxruntime", "error": "ModelFileError: boom"}])
    assert "skipped: no CUDA device" in table and "error: ModelFileError: boom" in table


def test_bench_thread_counts_pair_eager_and_onnxruntime() -> None:
    from asymtrack_ros.tools.bench import _options, default_threads, parse_args, thread_counts

    assert thread_counts("0") == thread_counts("") == [default_threads()]
    assert thread_counts("1,2,2") == [1, 2]
    with pytest.raises(ValueError):
        thread_counts("-1")
    args = parse_args(["--threads", "1,2", "--spin-us", "0,1000"])
    assert _options("pytorch", args) == [{"threads": 1}, {"threads": 2}]
    expected = [{"threads": t, "spin_us": s} for t in (1, 2) for s in (0, 1000)]
    assert _options("onnxruntime", args) == expected
    assert [o["spin_us"] for o in _options("onnxruntime", parse_args(["--threads", "2"]))] == [0, -1]
    for bad in ("sometimes", "-2", ""):
        with pytest.raises(SystemExit):
            parse_args(["--spin-us", bad])
