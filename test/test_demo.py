"""The demo bag and asymtrack-demo end to end: the replay path, and the ROS path when ROS is set up."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from asymtrack_ros import demo_data, packaged
from asymtrack_ros.bag import BagReader
from asymtrack_ros.packaged import find_model
from asymtrack_ros.tools import demo

FRAMES = 24


@pytest.fixture(scope="module")
def short_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_data.write_demo_bag(tmp_path_factory.mktemp("bag") / "demo", frames=FRAMES)


@pytest.fixture(scope="module")
def model(reference_dir: Path) -> str:
    present = find_model()
    return str(present) if present is not None else str(reference_dir / "official_tiny_random.pth.tar")


def test_demo_bag_is_deterministic(tmp_path: Path, short_bag: Path) -> None:
    again = demo_data.write_demo_bag(tmp_path / "again", frames=FRAMES)
    with BagReader(short_bag) as a, BagReader(again) as b:
        assert a.topics == b.topics == {demo_data.IMAGE_TOPIC: "sensor_msgs/msg/CompressedImage",
                                        demo_data.GT_TOPIC: "vision_msgs/msg/Detection2DArray",
                                        demo_data.INIT_TOPIC: "vision_msgs/msg/Detection2D"}
        for topic in a.topics:
            assert list(a.raw(topic)) == list(b.raw(topic))
        init = next(a.boxes(demo_data.INIT_TOPIC))
        gt = list(a.boxes(demo_data.GT_TOPIC))
        first = next(a.frames(demo_data.IMAGE_TOPIC))
    assert len(gt) == FRAMES and init.stamp_ns == gt[0].stamp_ns == first.stamp_ns
    assert init.box == pytest.approx(gt[0].box)


def test_bundled_bag_matches_the_generator() -> None:
    bundled = demo_data.default_bag_path()
    if not (bundled / "metadata.yaml").is_file():
        pytest.skip(f"no bundled demo bag at {bundled}")
    seq = demo_data.demo_sequence()
    with BagReader(bundled) as reader:
        gt = list(reader.boxes(demo_data.GT_TOPIC))
    assert len(gt) == demo_data.FRAMES
    assert [g.box is not None for g in gt] == list(seq.visible)
    assert gt[0].box == pytest.approx(tuple(seq.boxes[0]))


def _run(args: list, capsys: pytest.CaptureFixture) -> tuple:
    rc = demo.main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _check_outputs(out: Path, via: str) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    assert summary["via"] == via and summary["frames"] == FRAMES and summary["auc"] is not None
    strip = cv2.imread(str(out / "strip.png"))
    assert strip is not None and strip.shape == (2 * 240, 3 * 320, 3)
    assert any((out / name).is_file() for name in ("demo.mp4", "demo.avi"))
    assert len((out / "tracks.csv").read_text().splitlines()) == FRAMES + 1
    with BagReader(out / "tracks") as reader:
        assert len(list(reader.raw("/tracks"))) == FRAMES
    return summary


def test_demo_replay(tmp_path: Path, short_bag: Path, model: str, capsys: pytest.CaptureFixture) -> None:
    rc, out, err = _run(["--via", "replay", "--bag", str(short_bag), "--model", model, "--backend", "pytorch",
                         "--out", str(tmp_path)], capsys)
    assert rc == 0, err
    assert "success AUC" in out and "precision@20px" in out and "FPS" in out and "p95" in out
    _check_outputs(tmp_path, "replay")


def test_demo_without_model_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture, short_bag: Path) -> None:
    monkeypatch.delenv("ASYMTRACK_MODEL", raising=False)
    monkeypatch.setattr(packaged, "share_dirs", lambda: [])  # as if the demo model were not installed
    monkeypatch.chdir(tmp_path)
    rc, _, err = _run(["--via", "replay", "--bag", str(short_bag), "--out", str(tmp_path)], capsys)
    assert rc == 2 and "asymtrack_t_demo.pt" in err and "--model" in err


def test_demo_ros_matches_replay(tmp_path: Path, short_bag: Path, model: str,
                                 capsys: pytest.CaptureFixture) -> None:
    if not demo.ros_available():
        pytest.skip("rclpy, vision_msgs or asymtrack_msgs.msg not importable (source build/env.sh)")
    common = ["--bag", str(short_bag), "--model", model, "--backend", "pytorch", "--rate", "0"]
    rc, out, err = _run(["--via", "ros", "--out", str(tmp_path / "ros")] + common, capsys)
    assert rc == 0, err + out
    assert "end to end over DDS" in out
    _check_outputs(tmp_path / "ros", "ros")
    rc, _, err = _run(["--via", "replay", "--out", str(tmp_path / "replay")] + common, capsys)
    assert rc == 0, err

    def tracks(folder: str) -> list:  # stamp, box, state: the confidence may differ in the last digit
        rows = (tmp_path / folder / "tracks.csv").read_text().splitlines()
        return [",".join(r.split(",")[:5] + r.split(",")[6:]) for r in rows]

    assert tracks("ros") == tracks("replay")


def test_demo_ros_says_why_the_node_did_not_come_up(tmp_path: Path, short_bag: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """A model file the node cannot load: the node stays unconfigured and reports ERROR on
    /diagnostics; the demo stops on that report (not after --timeout) and shows the node's log."""
    if not demo.ros_available():
        pytest.skip("rclpy, vision_msgs or asymtrack_msgs.msg not importable (source build/env.sh)")
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model")
    rc, _, err = _run(["--via", "ros", "--bag", str(short_bag), "--model", str(bad), "--backend",
                       "onnxruntime", "--out", str(tmp_path / "out"), "--timeout", "600"], capsys)
    reported = err.split("asymtrack-node log")[0]
    assert rc == 2 and "asymtrack-node reported an error" in reported and "broken" in reported
    assert "node.log" in err and "configure failed" in err
