"""A MAVLink 2 link (UDP or serial) with pymavlink's ``common`` dialect, robust to bad input.

UDP is a plain socket here: ``udpin:HOST:PORT`` listens and answers the last address that sent a
valid MAVLink packet (random bytes from elsewhere do not redirect it); ``udpout:HOST:PORT`` sends
to that address. A serial device (any other URL, e.g. /dev/ttyUSB0) goes through pymavlink's
mavutil. Each link has its own MAVLink 2 encoder/decoder, leaving mavutil's process-wide dialect
and protocol version alone. Reading never raises for bad bytes: they are counted and dropped.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any, List, Optional, Tuple

from pymavlink.dialects.v20 import common

UDP_MAX = 65535


class _Udp:
    """Datagram transport: a MAVLink packet never spans two datagrams."""

    def __init__(self, url: str):
        kind, host, port = url.split(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.peer: Optional[Tuple[str, int]] = None
        if kind == "udpin":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, int(port)))
        else:
            self.peer = (socket.gethostbyname(host), int(port))

    def recv(self) -> Tuple[bytes, Any]:
        try:
            return self.sock.recvfrom(UDP_MAX)
        except (BlockingIOError, InterruptedError):
            return b"", None
        except ConnectionRefusedError:  # an ICMP error left by an earlier send: nothing to read
            return b"", None

    def write(self, data: bytes) -> None:
        if self.peer is not None:
            with contextlib.suppress(OSError):  # the peer went away; a valid packet sets a new one
                self.sock.sendto(bytes(data), self.peer)

    def close(self) -> None:
        self.sock.close()


class _Serial:
    """A serial device through mavutil (which needs pyserial)."""

    def __init__(self, url: str, baud: int):
        from pymavlink import mavutil

        self.conn = mavutil.mavlink_connection(url, baud=baud, autoreconnect=True)
        self.peer = None

    def recv(self) -> Tuple[bytes, Any]:
        return bytes(self.conn.recv(256) or b""), None

    def write(self, data: bytes) -> None:
        self.conn.write(data)

    def close(self) -> None:
        self.conn.close()


class MavlinkLink:
    """``url``: udpin:HOST:PORT, udpout:HOST:PORT or a serial device (``baud``)."""

    def __init__(self, url: str, system_id: int, component_id: int, baud: int = 57600):
        self.url = url
        self.datagrams = url.startswith(("udpin:", "udpout:"))
        if self.datagrams and url.count(":") != 2:
            raise ValueError(f"MAVLink URL {url!r}: expected udpin:HOST:PORT or udpout:HOST:PORT")
        self.port: Any = _Udp(url) if self.datagrams else _Serial(url, baud)
        self.mav = common.MAVLink(self.port, srcSystem=system_id, srcComponent=component_id)
        self.mav.robust_parsing = True
        self.bad_packets = 0
        self.last_problem = ""

    def receive(self, limit: int = 200) -> List[Any]:
        """The messages waiting now (reads at most ``limit`` chunks), without blocking."""
        messages: List[Any] = []
        for _ in range(limit):
            try:
                data, sender = self.port.recv()
            except OSError as exc:
                self._bad(f"{type(exc).__name__}: {exc}")
                break
            if not data:
                break
            try:
                parsed = self.mav.parse_buffer(data) or []
            except Exception as exc:  # pymavlink raises various errors for malformed input
                self._bad(f"{type(exc).__name__}: {exc}")
                parsed = []
            valid = self._keep_valid(parsed)
            if valid and sender is not None:
                self.port.peer = sender
            messages += valid
            if self.datagrams and self.mav.buf_len():
                self._bad("a datagram ended inside a packet")
                self._reset_parser()
        return messages

    def _keep_valid(self, parsed: List[Any]) -> List[Any]:
        valid = []
        for msg in parsed:
            kind = msg.get_type()
            if kind == "BAD_DATA" or kind.startswith("UNKNOWN"):
                self._bad(str(getattr(msg, "reason", "") or f"{kind}: unknown message id"))
            else:
                valid.append(msg)
        return valid

    def _reset_parser(self) -> None:
        # What is left at the end of a datagram is garbage; kept, it would swallow the start of the
        # next datagram's packets.
        self.mav.buf = bytearray()
        self.mav.buf_index = 0
        self.mav.expected_length = common.HEADER_LEN_V1 + 2

    def _bad(self, problem: str) -> None:
        self.bad_packets += 1
        self.last_problem = problem

    def write(self, data: bytes) -> None:
        """Raw bytes to the peer (tests use it to send malformed packets)."""
        self.port.write(data)

    def close(self) -> None:
        self.port.close()


def text_field(text: str, length: int) -> List[int]:
    """A fixed-size uint8[length] MAVLink text field (zero padded)."""
    data = text.encode("utf-8")[:length]
    return list(data) + [0] * (length - len(data))
