"""Write rosbag2 bags that ``ros2 bag`` (Jazzy, Humble) reads: MCAP by default, sqlite3 on request.

``BagWriter`` adds a topic on its first message and always finishes the bag on close, also
when the caller stopped on an error, so that what was written stays readable.
``TrackWriter`` writes one vision_msgs/Detection2DArray and one TrackStatus per processed frame.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

from asymtrack_ros.bag import messages as m
from asymtrack_ros.bag.types import DETECTION_2D_ARRAY, TRACK_STATUS, typestore
from asymtrack_ros.tracking.state import TrackState

STORAGES = ("mcap", "sqlite3")
BAG_VERSION = 8  # read by rosbag2 on Humble (ignores newer fields) and Jazzy


class BagWriteError(RuntimeError):
    """The output bag cannot be created."""


def _prepare(path: Path, overwrite: bool) -> None:
    if not path.exists():
        return
    looks_like_bag = path.is_dir() and ((path / "metadata.yaml").exists() or not any(path.iterdir()))
    if not overwrite or not looks_like_bag:
        hint = "pass --overwrite to replace it" if looks_like_bag else "it is not a bag; choose another path"
        raise BagWriteError(f"output {path} exists ({hint})")
    shutil.rmtree(path)


class BagWriter:
    """``with BagWriter(path) as bag: bag.write(topic, msgtype, log_ns, msg)``."""

    def __init__(self, path: Union[str, Path], storage: str = "mcap", overwrite: bool = False):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagWriteError(f"storage must be one of {STORAGES}, got {storage!r}")
        self.path = Path(path)
        _prepare(self.path, overwrite)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        self._writer.open()
        self._connections: Dict[str, Any] = {}
        self.count = 0

    def write(self, topic: str, msgtype: str, log_ns: int, msg: Any) -> None:
        store = typestore()
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=store)
            self._connections[topic] = connection
        self._writer.write(connection, int(log_ns), bytes(store.serialize_cdr(msg, msgtype)))
        self.count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TrackWriter:
    """Tracks (Detection2DArray: one detection while TRACKING, empty otherwise) and TrackStatus."""

    def __init__(self, bag: BagWriter, tracks_topic: str = "/tracks", status_topic: str = "/track_status"):
        self.bag = bag
        self.tracks_topic = tracks_topic
        self.status_topic = status_topic

    def write(self, stamp_ns: int, log_ns: int, frame_id: str, state: int, box: Optional[Sequence[float]],
              confidence: float = 0.0, track_id: str = "", latency_ms: float = 0.0,
              inference_ms: float = 0.0, frames_since_init: int = 0) -> None:
        detections = []
        if int(state) == TrackState.TRACKING and box is not None:
            detections.append(m.detection(stamp_ns, frame_id, box, confidence, track_id=track_id))
        self.bag.write(self.tracks_topic, DETECTION_2D_ARRAY, log_ns,
                       m.detection_array(stamp_ns, frame_id, detections))
        status = m.track_status(stamp_ns, frame_id, state, track_id, box, confidence, latency_ms,
                                inference_ms, frames_since_init)
        self.bag.write(self.status_topic, TRACK_STATUS, log_ns, status)
