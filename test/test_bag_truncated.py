"""The bundled demo bag cut inside its first MCAP chunk: what the chunk holds up to the cut is read.

The demo bag's chunks are uncompressed (rosbags writes compression ''); the same bag with its first
chunk re-encoded as zstd or lz4 (both allowed by the MCAP spec, written by rosbag2 and the mcap CLI)
covers compressed chunks.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

from asymtrack_ros.backends import create_backend
from asymtrack_ros.backends.base import Backend
from asymtrack_ros.bag import BagReader, CorruptBagError
from asymtrack_ros.bag.salvage import MCAP_MAGIC
from asymtrack_ros.packaged import CHECKOUT, DEMO_MODEL_NAME, model_exists
from asymtrack_ros.tools import replay as replay_tool

DEMO_BAG = CHECKOUT / "data" / "demo" / "asymtrack_demo" / "asymtrack_demo.mcap"
IMAGES = "/camera/image_raw/compressed"
CHUNK = 0x06
DEMO_MODEL = CHECKOUT / "models" / DEMO_MODEL_NAME


@pytest.fixture(scope="module")
def demo() -> bytes:
    if not DEMO_BAG.is_file():
        pytest.skip(f"the demo bag {DEMO_BAG} is not in the checkout")
    return DEMO_BAG.read_bytes()


@pytest.fixture(scope="module")
def intact(demo: bytes) -> List[Tuple[int, np.ndarray]]:
    with BagReader(DEMO_BAG.parent) as reader:
        return [(f.stamp_ns, f.image) for f in reader.frames(IMAGES)]


def first_chunk(data: bytes) -> Tuple[int, int]:
    """(start, end) of the first chunk record."""
    pos = len(MCAP_MAGIC)
    while True:
        op, length = data[pos], struct.unpack_from("<Q", data, pos + 1)[0]
        if op == CHUNK:
            return pos, pos + 9 + length
        pos += 9 + length


def recompressed(data: bytes, compression: str) -> bytes:
    """The demo bag up to the end of its first chunk, that chunk's records compressed again."""
    start, end = first_chunk(data)
    body = data[start + 9:end]
    times, (size,) = body[:16], struct.unpack_from("<Q", body, 16)
    name_len = struct.unpack_from("<I", body, 28)[0]
    records = body[32 + name_len + 8:]
    assert len(records) == size and name_len == 0, "the demo bag's chunks are expected uncompressed"
    if compression == "zstd":
        from backports import zstd

        packed = zstd.compress(records)
    else:
        import lz4.frame

        packed = lz4.frame.compress(records)
    name = compression.encode()
    new = (times + struct.pack("<QI", size, 0) + struct.pack("<I", len(name)) + name
           + struct.pack("<Q", len(packed)) + packed)
    return data[:start] + bytes([CHUNK]) + struct.pack("<Q", len(new)) + new


def cut(tmp_path: Path, data: bytes, offset: int) -> Path:
    path = tmp_path / f"cut_{offset}.mcap"
    path.write_bytes(data[:offset])
    return path


def salvaged_frames(path: Path) -> Tuple[List[Tuple[int, np.ndarray]], str, str]:
    frames: List[Tuple[int, np.ndarray]] = []
    with BagReader(path) as reader:
        damage = reader.damage or ""
        with pytest.raises(CorruptBagError) as stop:
            for f in reader.frames(IMAGES):
                frames.append((f.stamp_ns, f.image))
    return frames, damage, str(stop.value)


def assert_prefix(got: List[Tuple[int, np.ndarray]], intact: List[Tuple[int, np.ndarray]]) -> None:
    assert [s for s, _ in got] == [s for s, _ in intact[:len(got)]]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, intact))


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.7, 0.999])
def test_cut_inside_first_chunk_reads_its_frames(tmp_path: Path, demo: bytes, intact: list,
                                                 fraction: float) -> None:
    start, end = first_chunk(demo)
    offset = int(start + (end - start) * fraction)
    got, damage, stop = salvaged_frames(cut(tmp_path, demo, offset))
    assert "truncated" in damage and f"ends at byte {offset} inside the chunk" in damage
    assert "truncated" in stop
    assert_prefix(got, intact)
    # ~7 kB per frame (JPEG + ground truth): every whole frame before the cut, and only those
    assert len(got) >= int(fraction * 70) and len(got) < len(intact)
    if fraction > 0.9:
        assert len(got) > 0.9 * 75  # the first chunk holds about half of the 150 frames


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_cut_inside_compressed_chunk(tmp_path: Path, demo: bytes, intact: list, compression: str) -> None:
    data = recompressed(demo, compression)
    start, end = first_chunk(data)
    got, damage, _ = salvaged_frames(cut(tmp_path, data, (start + end) // 2))
    assert "truncated" in damage
    assert_prefix(got, intact)
    assert len(got) >= 10  # zstd / lz4 blocks decode as they come; the cut loses the last one only
    whole, _, _ = salvaged_frames(cut(tmp_path, data, end))  # the whole chunk, nothing after it
    assert_prefix(whole, intact)
    assert len(whole) > len(got)


def demo_backend() -> Backend:
    if not model_exists(DEMO_MODEL):
        pytest.skip(f"demo model {DEMO_MODEL} is not in the checkout")
    return create_backend("onnxruntime", DEMO_MODEL)


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: List[str]) -> tuple:
    monkeypatch.setattr(replay_tool, "open_backend_from_args", lambda args: demo_backend())
    rc = replay_tool.main(args + ["--no-progress"])
    out = capsys.readouterr()
    return rc, out.out, out.err


def read_topic(path: Path, topic: str) -> list:
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [(conns[0].msgtype, t, bytes(d)) for _, t, d in reader.messages(connections=conns)]


def test_replay_cli_keeps_frames_of_cut_chunk(tmp_path: Path, demo: bytes, intact: list,
                                              monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
                                              ) -> None:
    start, end = first_chunk(demo)
    path = cut(tmp_path, demo, (start + end) // 2)
    rc, out, err = run_cli(monkeypatch, capsys, [str(path), "--init-topic", "/init_box", "--out",
                                                 str(tmp_path / "out")])
    assert rc == 2 and "truncated" in err and "kept the" in err, err
    assert "image topics" not in err
    kept = [t for _, t, _ in read_topic(tmp_path / "out", "/tracks")]
    assert len(kept) > 20 and kept == [s for s, _ in intact[:len(kept)]]
    tracked = re.search(r"\((\d+) TRACKING", out)
    assert tracked is not None and int(tracked.group(1)) > 20, out


def test_replay_cli_cut_before_any_channel_says_truncated(tmp_path: Path, demo: bytes,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    start, _ = first_chunk(demo)
    for offset in (start + 4, start + 60, start + 200):  # chunk header; first schema record
        path = cut(tmp_path, demo, offset)
        monkeypatch.setattr(replay_tool, "open_backend_from_args", lambda _: pytest.fail("no backend needed"))
        args = [str(path), "--init", "1,1,20,20", "--out", str(tmp_path / "o"), "--no-progress"]
        rc = replay_tool.main(args)
        err = capsys.readouterr().err
        assert rc == 2 and "truncated" in err and "no image topic survives" in err, err
