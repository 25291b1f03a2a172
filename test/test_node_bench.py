"""node_bench through the node harness: the real node in its own process, over DDS (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asymtrack_ros.packaged import CHECKOUT, DEMO_MODEL_NAME, model_exists
from asymtrack_ros.ros.harness import ros_available

DEMO_MODEL = CHECKOUT / "models" / DEMO_MODEL_NAME


@pytest.mark.slow
def test_node_bench_runs_the_node_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if not ros_available():
        pytest.skip("rclpy or the messages are not importable (source build/env.sh)")
    if not model_exists(DEMO_MODEL):
        pytest.skip(f"demo model {DEMO_MODEL} is not in the checkout")
    from asymtrack_ros.tools import node_bench

    out = tmp_path / "bench.json"
    assert node_bench.main(["--frames", "6", "--warmup", "2", "--width", "320", "--height", "240",
                            "--threads", "1", "--image-reliability", "reliable", "--image-depth", "10",
                            "--json", str(out)]) == 0  # the demo model by default
    result = json.loads(out.read_text())
    assert result["node_exit_code"] == 0 and result["size"] == "320x240"
    for phase in ("paced", "flood"):
        assert result[phase]["published"] == 6 and 1 <= result[phase]["outputs"] <= 6
        assert result[phase]["e2e_ms"]["p50"] > 0 and result[phase]["inference_ms"]["p50"] > 0
    assert result["bare"]["track_ms"]["n"] == 6
    assert "sustained:" in capsys.readouterr().out
