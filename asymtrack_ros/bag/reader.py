"""Read camera frames and boxes from a rosbag2 (MCAP or sqlite3) with ``rosbags``; no ROS needed.

``BagReader(path)`` opens a bag directory or a single ``.mcap`` / ``.db3`` file. When ``rosbags``
cannot open it (truncated or damaged), the reader falls back to ``salvage`` and yields what is
intact; the first damaged record then raises ``CorruptBagError`` *after* the good messages, so a
caller keeps everything it processed. Stamps are ``header.stamp`` in nanoseconds (the log time
when a header stamp is zero).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, NamedTuple, Optional, Tuple, Union

import numpy as np

from asymtrack_ros.bag.encodings import UnsupportedEncoding, compressed_to_rgb, image_to_rgb
from asymtrack_ros.bag.messages import Box, first_box
from asymtrack_ros.bag.salvage import SalvageStop, salvage
from asymtrack_ros.bag.types import BOX_TYPES, IMAGE, IMAGE_TYPES, typestore
from asymtrack_ros.stamps import header_ns


class BagError(RuntimeError):
    """A bag cannot be read as asked; the message says why and what to do."""


class BagOpenError(BagError):
    """The path is not a readable rosbag2."""


class TopicError(BagError):
    """The topic is missing or does not carry the expected message type."""


class CorruptBagError(BagError):
    """Reading stopped at a damaged or truncated part of the bag."""


class EncodingError(BagError):
    """The images use an encoding the tracker cannot use."""


class Frame(NamedTuple):
    index: int
    stamp_ns: int  # header.stamp (log time if the stamp is zero)
    log_ns: int  # time the message was recorded
    frame_id: str
    image: np.ndarray  # HxWx3 uint8 RGB


class StampedBox(NamedTuple):
    stamp_ns: int
    log_ns: int
    box: Optional[Box]  # None: an empty Detection2DArray (no target)


class BagReader:
    """Context manager over one bag; ``topics`` maps topic -> message type."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self.topics: Dict[str, str] = {}
        self.damage: Optional[str] = None  # why rosbags could not open it (salvage mode)
        self._reader: Any = None
        self._salvaged: Any = None

    def __enter__(self) -> BagReader:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if not self.path.exists():
            raise BagOpenError(f"bag not found: {self.path}")
        from rosbags.rosbag2 import Reader

        try:
            reader = Reader(self.path)
            reader.open()
        except Exception as exc:  # rosbags raises ReaderError, OSError, KeyError, struct.error...
            self._open_salvage(f"{type(exc).__name__}: {exc}")
            return
        self._reader = reader
        self.topics = {c.topic: c.msgtype for c in reader.connections}

    def _open_salvage(self, reason: str) -> None:
        try:
            salvaged = salvage(self.path)
        except (SalvageStop, OSError) as exc:
            raise BagOpenError(f"{self.path} is not a readable rosbag2 ({reason}; {exc})") from None
        self.topics, self._salvaged = salvaged.topics, salvaged.messages
        self.damage = f"{salvaged.damage}; rosbags: {reason}" if salvaged.damage else reason

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def count(self, topic: str) -> Optional[int]:
        """Messages on ``topic`` as the bag's index says (None when salvaging)."""
        if self._reader is None:
            return None
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    def image_topics(self) -> Dict[str, str]:
        return {t: m for t, m in self.topics.items() if m in IMAGE_TYPES}

    def check_topic(self, topic: str, types: Tuple[str, ...], what: str) -> str:
        msgtype = self.topics.get(topic)
        if msgtype is None:
            candidates = sorted(t for t, m in self.topics.items() if m in types)
            hint = f"{what} topics in the bag: {', '.join(candidates)}" if candidates else \
                f"the bag has no {what} topic (topics: {', '.join(sorted(self.topics)) or 'none'})"
            if self.damage:
                hint += f"; the bag is truncated or damaged ({self.damage}): it may be in the part lost"
            raise TopicError(f"topic {topic!r} is not in {self.path}; {hint}")
        if msgtype not in types:
            raise TopicError(f"topic {topic!r} carries {msgtype}, expected one of {', '.join(types)}")
        return msgtype

    def raw(self, topic: str) -> Iterator[Tuple[int, bytes]]:
        """(log_ns, cdr bytes) of one topic in time order; damage raises CorruptBagError."""
        if self._salvaged is not None:
            yield from self._raw_salvaged(topic)
            return
        connections = [c for c in self._reader.connections if c.topic == topic]
        try:
            for _, log_ns, data in self._reader.messages(connections=connections):
                yield log_ns, data
        except Exception as exc:
            raise CorruptBagError(f"{self.path} is damaged ({type(exc).__name__}: {exc}); "
                                  "stopped reading there") from None

    def _raw_salvaged(self, topic: str) -> Iterator[Tuple[int, bytes]]:
        try:
            for msg in self._salvaged():
                if msg.topic == topic:
                    yield msg.log_ns, msg.data
        except SalvageStop as exc:
            known = "" if self.damage and str(exc) in self.damage else f" ({self.damage})"
            raise CorruptBagError(f"{self.path} is truncated or damaged{known}; read the intact "
                                  f"part and stopped: {exc}") from None

    def messages(self, topic: str, types: Tuple[str, ...], what: str) -> Iterator[Tuple[int, Any]]:
        msgtype = self.check_topic(topic, types, what)
        store = typestore()
        for log_ns, data in self.raw(topic):
            try:
                msg = store.deserialize_cdr(data, msgtype)
            except Exception as exc:
                raise CorruptBagError(f"cannot decode a {msgtype} message on {topic} at log time {log_ns} "
                                      f"({type(exc).__name__}: {exc}); the bag is damaged") from None
            yield log_ns, msg

    def frames(self, topic: str) -> Iterator[Frame]:
        """Frames of an Image or CompressedImage topic as RGB uint8."""
        msgtype = self.check_topic(topic, IMAGE_TYPES, "image")
        for index, (log_ns, msg) in enumerate(self.messages(topic, IMAGE_TYPES, "image")):
            yield Frame(index, header_ns(msg) or log_ns, log_ns, msg.header.frame_id,
                        _decode(msg, msgtype, topic, index))

    def boxes(self, topic: str) -> Iterator[StampedBox]:
        """Boxes of a Detection2D or Detection2DArray topic (first detection of an array)."""
        for log_ns, msg in self.messages(topic, BOX_TYPES, "Detection2D / Detection2DArray"):
            yield StampedBox(header_ns(msg) or log_ns, log_ns, first_box(msg))


def _decode(msg: Any, msgtype: str, topic: str, index: int) -> np.ndarray:
    try:
        return image_to_rgb(msg) if msgtype == IMAGE else compressed_to_rgb(msg)
    except UnsupportedEncoding as exc:
        raise EncodingError(f"{topic}: {exc}") from None
    except ValueError as exc:
        raise CorruptBagError(f"{topic}: frame {index} cannot be decoded ({exc})") from None
