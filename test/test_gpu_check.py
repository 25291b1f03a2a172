"""scripts/gpu_check.sh: says so and exits 77 without an NVIDIA GPU; the table has a row per GPU
path, measured or saying why not. (The GPU measurements themselves need a GPU.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _has_gpu() -> bool:
    """What the script looks for: a GPU in nvidia-smi, a desktop or a Jetson GPU device node."""
    if any(Path(p).exists() for p in ("/dev/nvidia0", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0/ctrl")):
        return True
    if shutil.which("nvidia-smi") is None:
        return False
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return any(line.startswith("GPU ") for line in listed.stdout.splitlines())


@pytest.mark.skipif(_has_gpu(), reason="this machine has an NVIDIA GPU")
def test_without_gpu_it_says_so_and_exits_77() -> None:
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 77
    assert "no NVIDIA GPU on this machine" in done.stdout


def test_every_path_is_a_row_measured_or_saying_why(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    from asymtrack_ros.tools import gpu_check

    out = tmp_path / "rows.json"
    rc = gpu_check.main(["--crops", "2", "--seconds", "0.1", "--iterations", "30", "--json", str(out),
                         "--cache-dir", str(tmp_path / "engines")])
    rows = json.loads(out.read_text())
    assert [(r["path"], r["precision"]) for r in rows] == [("TensorRT", "fp32"), ("TensorRT", "fp16"),
                                                           ("PyTorch CUDA eager", "fp32"),
                                                           ("ONNX Runtime CUDA", "fp32")]
    for row in rows:
        measured = row["boxes_diff"] is not None and row["median_ms"] > 0
        assert measured or row["note"].startswith("skipped: "), row
    assert rc == (1 if any(r["verdict"] == "FAIL" for r in rows) else 0)
    assert "| TensorRT | fp16 |" in capsys.readouterr().out
