"""Read what is intact of a truncated or damaged rosbag2 storage file, in file order.

Used when ``rosbags`` cannot open a file (an MCAP cut short by a crash or power loss has no
summary or footer; a ``.db3`` may have lost pages). ``salvage(path)`` returns the topics found,
a generator of messages that stops at the first damaged record by raising ``SalvageStop``, and
where the intact part ends. A chunk the file ends inside gives the whole records before the cut
(uncompressed, or zstd / lz4 decompressed as far as the data goes).
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import struct
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, NamedTuple, Optional, Tuple

MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK, _OP_FOOTER, _OP_DATA_END = 0x03, 0x04, 0x05, 0x06, 0x02, 0x0F


class SalvageStop(Exception):
    """The intact part has been read; the message says what stopped the scan."""


class RawMessage(NamedTuple):
    topic: str
    msgtype: str
    log_ns: int
    data: bytes


Topics = Dict[str, str]


def _zstd() -> Any:
    try:
        from compression import zstd  # novermin (Python >= 3.14; older ones fall back below)
    except ImportError:
        try:
            from backports import zstd
        except ImportError:
            import zstandard as zstd
    return zstd


def _zstd_partial(data: bytes) -> bytes:
    decompressor = _zstd().ZstdDecompressor()
    if hasattr(decompressor, "decompressobj"):  # the zstandard package
        return decompressor.decompressobj().decompress(data)
    return decompressor.decompress(data)  # streaming: what the complete blocks hold


def _decompress(data: bytes, compression: str, complete: bool) -> bytes:
    """A chunk's records; of a chunk cut short (``complete`` False), as much as its data holds."""
    if not compression:
        return data
    if compression == "zstd":
        return _zstd().decompress(data) if complete else _zstd_partial(data)
    if compression == "lz4":
        from lz4.frame import LZ4FrameDecompressor, decompress
        return decompress(data) if complete else LZ4FrameDecompressor().decompress(data)
    raise SalvageStop(f"unsupported chunk compression {compression!r}")


class _Buf:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise SalvageStop(f"record cut short at byte {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return self.take(self.u32()).decode("utf-8")

    def done(self) -> bool:
        return self.pos >= len(self.data)


class _McapScan:
    def __init__(self, data: bytes):
        self.buf = _Buf(data)
        self.schemas: Dict[int, str] = {}
        self.channels: Dict[int, Tuple[str, str]] = {}

    def records(self, buf: _Buf, nested: bool) -> Iterator[RawMessage]:
        while not buf.done():
            start = buf.pos
            if not nested and len(buf.data) - start < 9:
                raise SalvageStop(f"truncated: the file ends at byte {len(buf.data)} inside a record header")
            op = buf.take(1)[0]
            length = buf.u64()
            if not nested and buf.pos + length > len(buf.data):
                if op == _OP_CHUNK:
                    yield from self.cut_chunk(_Buf(buf.take(len(buf.data) - buf.pos)), start, length)
                raise SalvageStop(f"truncated: the file ends at byte {len(buf.data)} inside a record "
                                  f"(op 0x{op:02x}) that starts at byte {start} and needs {length} bytes")
            body = _Buf(buf.take(length))
            if op in (_OP_FOOTER, _OP_DATA_END) and not nested:
                return
            if op == _OP_SCHEMA:
                key = body.u16()
                self.schemas[key] = body.string()
            elif op == _OP_CHANNEL:
                key, schema = body.u16(), body.u16()
                self.channels[key] = (body.string(), self.schemas.get(schema, ""))
            elif op == _OP_MESSAGE:
                channel, _, log_ns, _ = struct.unpack("<HIQQ", body.take(22))
                if channel in self.channels:
                    topic, msgtype = self.channels[channel]
                    yield RawMessage(topic, msgtype, log_ns, body.data[body.pos:])
            elif op == _OP_CHUNK and not nested:
                yield from self.records(_Buf(self.chunk_records(body, complete=True)), nested=True)

    @staticmethod
    def chunk_records(body: _Buf, complete: bool) -> bytes:
        """The decompressed records of a chunk; of a cut chunk, those its intact bytes hold."""
        body.take(16)  # message start and end time
        size, _ = body.u64(), body.u32()
        compression = body.string()
        length = body.u64()
        data = body.take(length) if complete else body.data[body.pos:body.pos + length]
        raw = _decompress(data, compression, complete)
        if complete and len(raw) != size:
            raise SalvageStop("chunk size mismatch")
        return raw

    def cut_chunk(self, body: _Buf, start: int, length: int) -> Iterator[RawMessage]:
        """The whole records of a chunk the file ends inside; then a SalvageStop saying so."""
        count = 0
        try:
            for message in self.records(_Buf(self.chunk_records(body, complete=False)), nested=True):
                count += 1
                yield message
        except SalvageStop:
            pass  # the record the cut falls in
        raise SalvageStop(f"truncated: the file ends at byte {start + 9 + len(body.data)} inside the chunk "
                          f"that starts at byte {start} ({len(body.data)} of its {length} bytes); read the "
                          f"{count} whole messages before the cut")

    def __iter__(self) -> Iterator[RawMessage]:
        if self.buf.take(8) != MCAP_MAGIC:
            raise SalvageStop("not an MCAP file (bad magic)")
        try:
            yield from self.records(self.buf, nested=False)
        except SalvageStop:
            raise
        except Exception as exc:  # any parse failure ends the intact part
            raise SalvageStop(f"damaged record: {exc}") from None
        raise SalvageStop(f"truncated: the file ends at byte {len(self.buf.data)} without an MCAP footer")


class Salvaged(NamedTuple):
    topics: Topics
    messages: Callable[[], Iterator[RawMessage]]  # a fresh generator per call
    damage: str = ""  # where and why the intact part ends, when known before reading


def _mcap(path: Path) -> Salvaged:
    data = path.read_bytes()
    probe = _McapScan(data)
    damage = ""
    try:
        for _ in probe:
            pass
    except SalvageStop as exc:
        damage = str(exc)
    topics = {topic: msgtype for topic, msgtype in probe.channels.values()}
    return Salvaged(topics, lambda: iter(_McapScan(data)), damage)


def _sqlite_repaired(path: Path) -> Path:
    """A copy cut to whole pages with the header's page count fixed (SQLite refuses a short file)."""
    folder = Path(tempfile.mkdtemp(prefix="asymtrack_salvage_"))
    atexit.register(shutil.rmtree, folder, True)
    copy = folder / path.name
    shutil.copyfile(path, copy)
    with copy.open("r+b") as f:
        header = f.read(100)
        page_size = struct.unpack(">H", header[16:18])[0] or 65536
        page_size = 65536 if page_size == 1 else page_size
        pages = copy.stat().st_size // page_size
        f.truncate(pages * page_size)
        f.seek(28)
        f.write(struct.pack(">I", pages))
    return copy


def _sqlite_topics(path: Path) -> Tuple[sqlite3.Connection, Dict[int, Tuple[str, str]]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = db.execute("SELECT id, name, type FROM topics").fetchall()
    return db, {row[0]: (row[1], row[2]) for row in rows}


def _sqlite(path: Path) -> Salvaged:
    try:
        db, by_id = _sqlite_topics(path)
    except sqlite3.DatabaseError:
        try:
            db, by_id = _sqlite_topics(_sqlite_repaired(path))
        except sqlite3.DatabaseError as exc:
            raise SalvageStop(f"cannot read the topics table: {exc}") from None

    def messages() -> Iterator[RawMessage]:
        try:
            rows = db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id")
            for topic_id, log_ns, data in rows:
                if topic_id in by_id:
                    yield RawMessage(by_id[topic_id][0], by_id[topic_id][1], int(log_ns), bytes(data))
        except sqlite3.DatabaseError as exc:
            raise SalvageStop(f"damaged database: {exc}") from None
        raise SalvageStop("read every intact row")

    return Salvaged({name: msgtype for name, msgtype in by_id.values()}, messages)


def storage_files(path: Path) -> list:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".mcap", ".db3"))
    return [path]


def salvage(path: Path) -> Salvaged:
    """Topics, a message-generator factory and what is known of the damage, for ``path``'s first file."""
    files = storage_files(path)
    if not files:
        raise SalvageStop(f"{path} holds no .mcap or .db3 file")
    first: Optional[Path] = files[0]
    head = first.read_bytes()[:16] if first.is_file() else b""
    if head.startswith(MCAP_MAGIC):
        return _mcap(first)
    if head.startswith(b"SQLite format 3"):
        return _sqlite(first)
    raise SalvageStop(f"{first} is neither MCAP nor SQLite")
