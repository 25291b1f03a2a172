"""A MAVLink 2 connection (UDP or serial) through pymavlink, with the common dialect.

pymavlink's mavutil picks its dialect and protocol version from process-wide state (the
MAVLINK20 environment variable, set_dialect); this module leaves that alone and gives each
connection its own MAVLink 2 ``common`` encoder/decoder instead. Reading never raises for bad
bytes: undecodable data is counted and dropped.
"""

from __future__ import annotations

from typing import Any, List, Optional

from pymavlink import mavutil
from pymavlink.dialects.v20 import common


class MavlinkLink:
    """``url``: udpin:HOST:PORT (listen; replies go to the last sender), udpout:HOST:PORT, or a
    serial device (``baud``)."""

    def __init__(self, url: str, system_id: int, component_id: int, baud: int = 57600):
        self.url = url
        self.conn = mavutil.mavlink_connection(url, baud=baud, source_system=system_id,
                                               source_component=component_id, autoreconnect=True)
        self.conn.mav = common.MAVLink(self.conn, srcSystem=system_id, srcComponent=component_id)
        self.conn.mav.robust_parsing = True
        self.conn.first_byte = False  # no switch of mavutil's global protocol version
        self.conn.WIRE_PROTOCOL_VERSION = "2.0"
        self.bad_packets = 0
        self.last_problem = ""

    @property
    def mav(self) -> Any:
        """The encoder: ``link.mav.heartbeat_send(...)`` etc. (pymavlink.dialects.v20.common)."""
        return self.conn.mav

    def receive(self, limit: int = 100) -> List[Any]:
        """The messages waiting now (at most ``limit``), without blocking; bad data is counted."""
        messages: List[Any] = []
        for _ in range(limit):
            try:
                msg = self.conn.recv_msg()
            except Exception as exc:  # pymavlink raises various errors for malformed input
                self._bad(f"{type(exc).__name__}: {exc}")
                continue
            if msg is None:
                break
            kind = msg.get_type()
            if kind == "BAD_DATA" or kind.startswith("UNKNOWN"):
                self._bad(str(getattr(msg, "reason", "") or f"{kind}: unknown message id"))
                continue
            messages.append(msg)
        return messages

    def _bad(self, problem: str) -> None:
        self.bad_packets += 1
        self.last_problem = problem

    def write(self, data: bytes) -> None:
        self.conn.write(data)

    def close(self) -> None:
        self.conn.close()


def connect(url: str, system_id: int, component_id: int, baud: int = 57600) -> MavlinkLink:
    return MavlinkLink(url, system_id, component_id, baud)


def text_field(text: str, length: int) -> List[int]:
    """A fixed-size uint8[length] MAVLink text field (zero padded)."""
    data = text.encode("utf-8")[:length]
    return list(data) + [0] * (length - len(data))


def message_name(msg_id: int) -> Optional[str]:
    cls = common.mavlink_map.get(int(msg_id))
    return None if cls is None else cls.msgname
