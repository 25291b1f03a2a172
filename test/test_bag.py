"""Rosbag2 input/output with rosbags: round trips, replay stamps and types, damaged bags."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest

from asymtrack_ros.backends import create_backend
from asymtrack_ros.backends.base import Backend
from asymtrack_ros.bag import BagOpenError, BagReader, BagWriter, CorruptBagError, TopicError, replay
from asymtrack_ros.bag import messages as m
from asymtrack_ros.bag.replay import InitError, InitSpec
from asymtrack_ros.bag.types import (
    COMPRESSED_IMAGE,
    DETECTION_2D,
    DETECTION_2D_ARRAY,
    IMAGE,
    TRACK_STATUS,
    typestore,
)
from asymtrack_ros.packaged import CHECKOUT, DEMO_MODEL_NAME, model_exists
from asymtrack_ros.stamps import header_ns
from asymtrack_ros.tools import replay as replay_tool
from asymtrack_ros.tracking.offline import OfflineTrackError

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000_000_000_000
DT = 33_333_333
TOPIC = "/cam/image_raw"


DEMO_MODEL = CHECKOUT / "models" / DEMO_MODEL_NAME


def demo_backend() -> Backend:
    """The shipped demo model on ONNX Runtime (no torch, no ROS), for the real tracker."""
    if not model_exists(DEMO_MODEL):
        pytest.skip(f"demo model {DEMO_MODEL} is not in the checkout")
    return create_backend("onnxruntime", DEMO_MODEL)


def frames(n: int, h: int = 120, w: int = 160) -> List[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def write_bag(path: Path, images: List[np.ndarray], storage: str = "mcap", encoding: str = "rgb8",
              compressed: bool = False, extra_encodings: dict = None) -> List[int]:
    stamps = [T0 + i * DT for i in range(len(images))]
    with BagWriter(path, storage) as bag:
        for i, (stamp, image) in enumerate(zip(stamps, images)):
            if compressed:
                bag.write(TOPIC, COMPRESSED_IMAGE, stamp, m.compressed_image(stamp, "cam", image))
                continue
            msg = m.raw_image(stamp, "cam", image, encoding)
            if extra_encodings and i in extra_encodings:
                msg.encoding = extra_encodings[i]
            bag.write(TOPIC, IMAGE, stamp, msg)
        bag.write("/init", DETECTION_2D, stamps[1], m.detection(stamps[1], "cam", (40, 30, 40, 30)))
    return stamps


def read_topic(path: Path, topic: str) -> list:
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [(conns[0].msgtype, t, bytes(d)) for _, t, d in reader.messages(connections=conns)]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_roundtrip(tmp_path: Path, storage: str) -> None:
    images = frames(5)
    stamps = write_bag(tmp_path / "bag", images, storage)
    with BagReader(tmp_path / "bag") as reader:
        assert reader.topics[TOPIC] == IMAGE and reader.topics["/init"] == DETECTION_2D
        got = list(reader.frames(TOPIC))
        boxes = list(reader.boxes("/init"))
    assert [f.stamp_ns for f in got] == stamps
    assert all(np.array_equal(f.image, i) for f, i in zip(got, images))
    assert boxes[0].stamp_ns == stamps[1] and np.allclose(boxes[0].box, (40, 30, 40, 30))


@pytest.mark.parametrize("encoding", ["bgr8", "mono8"])
def test_raw_encodings_and_compressed(tmp_path: Path, encoding: str) -> None:
    images = frames(2)
    write_bag(tmp_path / "raw", images, encoding=encoding)
    write_bag(tmp_path / "jpeg", images, compressed=True)
    with BagReader(tmp_path / "raw") as raw, BagReader(tmp_path / "jpeg") as jpeg:
        decoded = next(raw.frames(TOPIC)).image
        assert jpeg.topics[TOPIC] == COMPRESSED_IMAGE
        assert next(jpeg.frames(TOPIC)).image.shape == images[0].shape
    expected = images[0] if encoding == "bgr8" else None
    if expected is not None:
        assert np.array_equal(decoded, expected)
    else:
        assert decoded.shape == images[0].shape and np.all(decoded[..., 0] == decoded[..., 1])


def test_types_match_rosidl_hashes() -> None:
    """Our registered definitions hash like rosidl's, so ros2 bag matches the types."""
    found = 0
    prefixes = [REPO / "build" / "ros" / "install"]
    prefixes += [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(":") if p]
    for prefix in prefixes:
        for msgtype in (TRACK_STATUS, DETECTION_2D_ARRAY, DETECTION_2D):
            package, _, name = msgtype.split("/")
            path = prefix / "share" / package / "msg" / f"{name}.json"
            if path.is_file():
                described = json.loads(path.read_text())["type_hashes"]
                hashes = {h["type_name"]: h["hash_string"] for h in described}
                assert typestore().hash_rihs01(msgtype) == hashes[msgtype]
                found += 1
    if not found:
        pytest.skip("no rosidl-generated .json type descriptions (scripts/setup.sh builds them)")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_replay_stamps_and_types(tmp_path: Path, storage: str) -> None:
    stamps = write_bag(tmp_path / "in", frames(6))
    outputs = replay.Outputs(tmp_path / "out", tmp_path / "out.csv", storage=storage)
    with BagReader(tmp_path / "in") as reader:
        report = replay.replay_bag(reader, TOPIC, InitSpec((40, 30, 40, 30), stamps[2]), demo_backend(),
                                        outputs)
    assert report.result.error is None
    tracks, status = read_topic(tmp_path / "out", "/tracks"), read_topic(tmp_path / "out", "/track_status")
    assert {t for t, _, _ in tracks} == {DETECTION_2D_ARRAY} and {t for t, _, _ in status} == {TRACK_STATUS}
    store = typestore()
    tracks_msgs = [store.deserialize_cdr(d, t) for t, _, d in tracks]
    status_msgs = [store.deserialize_cdr(d, t) for t, _, d in status]
    assert [header_ns(x) for x in tracks_msgs] == stamps == [header_ns(x) for x in status_msgs]
    states = [x.state for x in status_msgs]
    assert states[:3] == [0, 0, 1] and set(states[3:]) <= {1, 2}  # IDLE until the init frame
    assert [len(x.detections) for x in tracks_msgs] == [int(state == 1) for state in states]
    assert np.allclose(m.box_of(tracks_msgs[2].detections[0].bbox), (40, 30, 40, 30))
    # the session's track id, as the node publishes it (one per init), empty while IDLE
    assert [x.track_id for x in status_msgs] == ["", ""] + ["1"] * 4
    assert {d.id for x in tracks_msgs for d in x.detections} == {"1"}
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[0] == "stamp_ns,x,y,w,h,confidence,state"
    assert [int(r.split(",")[0]) for r in rows[1:]] == stamps
    _check_with_rclpy(tracks + status)


def _check_with_rclpy(records: list) -> None:
    """Deserialise with rclpy's own classes when ROS is set up: the types are the real ones."""
    try:
        from rclpy.serialization import deserialize_message
        from vision_msgs.msg import Detection2DArray

        from asymtrack_msgs.msg import TrackStatus
    except ImportError:
        return
    classes = {DETECTION_2D_ARRAY: Detection2DArray, TRACK_STATUS: TrackStatus}
    for msgtype, _, data in records:
        msg = deserialize_message(data, classes[msgtype])
        assert msg.header.frame_id == "cam"


def test_init_stamp_without_frame(tmp_path: Path) -> None:
    stamps = write_bag(tmp_path / "in", frames(4))
    outputs = replay.Outputs(tmp_path / "out")
    with BagReader(tmp_path / "in") as reader:
        init = InitSpec((40, 30, 40, 30), stamps[1] + 5)
        report = replay.replay_bag(reader, TOPIC, init, demo_backend(), outputs)
    assert isinstance(report.result.error, InitError)
    assert "no frame has the init stamp" in str(report.result.error)
    assert len(read_topic(tmp_path / "out", "/tracks")) == 2  # the frames before it, IDLE


def test_replay_stops_where_the_session_ends_the_track(tmp_path: Path) -> None:
    """A frame of another size ends the track (the node's policy); offline no new box can come,
    so the replay stops there and keeps the frames before it."""
    stamps = write_bag(tmp_path / "in", frames(3) + frames(1, h=60, w=80) + frames(2))
    outputs = replay.Outputs(tmp_path / "out", tmp_path / "out.csv")
    with BagReader(tmp_path / "in") as reader:
        report = replay.replay_bag(reader, TOPIC, InitSpec((40, 30, 40, 30)), demo_backend(), outputs)
    assert isinstance(report.result.error, OfflineTrackError)
    assert "image size changed from 160x120 to 80x60" in str(report.result.error)
    assert [r.stamp_ns for r in report.result.records] == stamps[:3]
    assert [t for _, t, _ in read_topic(tmp_path / "out", "/tracks")] == stamps[:3]


def test_replay_reports_a_rejected_init_box(tmp_path: Path) -> None:
    write_bag(tmp_path / "in", frames(3))
    with BagReader(tmp_path / "in") as reader:
        report = replay.replay_bag(reader, TOPIC, InitSpec((500, 400, 40, 30)), demo_backend(),
                                   replay.Outputs(tmp_path / "out"))
    assert isinstance(report.result.error, OfflineTrackError) and "init box" in str(report.result.error)
    assert report.result.records == []


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: List[str]) -> tuple:
    monkeypatch.setattr(replay_tool, "open_backend_from_args", lambda args: demo_backend())
    rc = replay_tool.main(args + ["--no-progress"])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_init_topic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
                        ) -> None:
    stamps = write_bag(tmp_path / "in", frames(4))
    rc, out, err = run_cli(monkeypatch, capsys, [str(tmp_path / "in"), "--init-topic", "/init", "--out",
                                                 str(tmp_path / "out"), "--csv"])
    assert rc == 0, err
    assert "4 frames (" in out and "1 IDLE)" in out
    assert (tmp_path / "out.csv").is_file()
    assert [t for _, t, _ in read_topic(tmp_path / "out", "/tracks")] == stamps  # log times kept too


def test_missing_topic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
                       ) -> None:
    write_bag(tmp_path / "in", frames(2))
    rc, _, err = run_cli(monkeypatch, capsys, [str(tmp_path / "in"), "--image-topic", "/nope",
                                               "--init", "1,1,9,9", "--out", str(tmp_path / "out")])
    assert rc == 2 and "'/nope' is not in" in err and TOPIC in err
    with BagReader(tmp_path / "in") as reader, pytest.raises(TopicError, match="carries"):
        list(reader.frames("/init"))


def test_unsupported_encoding_keeps_processed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    stamps = write_bag(tmp_path / "in", frames(5), extra_encodings={3: "16UC1"})
    rc, out, err = run_cli(monkeypatch, capsys, [str(tmp_path / "in"), "--init", "40,30,40,30", "--out",
                                                 str(tmp_path / "out"), "--csv"])
    assert rc == 2 and "16UC1" in err and "not supported" in err and "kept the 3 frames" in err
    assert [t for _, t, _ in read_topic(tmp_path / "out", "/track_status")] == stamps[:3]
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_keeps_processed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture, storage: str) -> None:
    stamps = write_bag(tmp_path / "in", frames(16, 240, 320), storage)  # ~3.7 MB: several MCAP chunks
    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "in", damaged)
    data = next(p for p in damaged.iterdir() if p.suffix in (".mcap", ".db3"))
    os.truncate(data, int(data.stat().st_size * 0.6))
    rc, out, err = run_cli(monkeypatch, capsys, [str(damaged), "--init", "40,30,40,30", "--out",
                                                 str(tmp_path / "out"), "--csv"])
    assert rc == 2 and ("truncated" in err or "damaged" in err) and "kept the" in err
    kept = [t for _, t, _ in read_topic(tmp_path / "out", "/tracks")]
    assert kept == stamps[:len(kept)]
    if storage == "mcap":
        assert 0 < len(kept) < len(stamps)


def test_not_a_bag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"\x00garbage" * 100)
    rc, _, err = run_cli(monkeypatch, capsys, [str(junk), "--init", "1,1,9,9", "--out", str(tmp_path / "o")])
    assert rc == 2 and "not a readable rosbag2" in err
    with pytest.raises(BagOpenError, match="bag not found"):
        BagReader(tmp_path / "missing").open()


def test_corrupt_message_is_reported(tmp_path: Path) -> None:
    write_bag(tmp_path / "in", frames(3))
    data = next(p for p in (tmp_path / "in").iterdir() if p.suffix == ".mcap")
    raw = bytearray(data.read_bytes())
    encoding = raw.find(b"\x05\x00\x00\x00rgb8\x00")  # the first image's encoding string
    raw[encoding:encoding + 4] = b"\xff\xff\xff\x7f"  # a length far past the message's end
    data.write_bytes(bytes(raw))
    with pytest.raises(CorruptBagError, match="cannot decode"), BagReader(tmp_path / "in") as reader:
        list(reader.frames(TOPIC))


@pytest.fixture(scope="module")
def onnx_model(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("model") / "tiny"
    from asymtrack_ros.tools import export

    assert export.main([str(reference_dir / "official_tiny_random.pth.tar"), "-o", str(prefix)]) == 0
    return prefix


def test_cli_with_onnx_model_no_torch_no_ros(tmp_path: Path, onnx_model: Path) -> None:
    stamps = write_bag(tmp_path / "in", frames(4), compressed=True)
    code = ("import sys; from asymtrack_ros.tools import replay; rc = replay.main(sys.argv[1:]); "
            "bad = [m for m in ('torch', 'rclpy') if m in sys.modules]; "
            "print('IMPORTED', bad); sys.exit(rc or (3 if bad else 0))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = [str(tmp_path / "in"), "--init", f"40,30,40,30@{stamps[0]}", "--model", str(onnx_model),
            "--backend", "onnxruntime", "--out", str(tmp_path / "out"), "--video", str(tmp_path / "v.mp4"),
            "--no-progress"]
    proc = subprocess.run([sys.executable, "-c", code] + args, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "IMPORTED []" in proc.stdout
    assert [t for _, t, _ in read_topic(tmp_path / "out", "/tracks")] == stamps
    assert any(p.name.startswith("v.") for p in tmp_path.iterdir())
