"""A short ring buffer of recent frames keyed by their stamp in nanoseconds (ROS-free).

The node keeps the last few frames so that an init box drawn on a frame that has already gone
by is applied to that frame (``nearest``) and the tracker then catches up (``frames_after``).
Stamps must increase; lookups outside the buffered span raise errors that say why. Besides a
number of frames, the buffer can be given a byte budget, so that large frames do not pile up (the
newest frame is always kept).
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Deque, Generic, List, Optional, Tuple, TypeVar

T = TypeVar("T")


class FrameBufferError(LookupError):
    """Base class: a stamp cannot be pushed or found."""


class EmptyBufferError(FrameBufferError):
    pass


class StampTooOldError(FrameBufferError):
    """The stamp is older than the oldest buffered frame (minus the tolerance)."""


class StampInFutureError(FrameBufferError):
    """The stamp is newer than the newest buffered frame (plus the tolerance): not received yet."""


class NoFrameNearError(FrameBufferError):
    """The stamp is inside the buffered span but no frame lies within the tolerance."""


class OutOfOrderError(FrameBufferError):
    """A pushed stamp is not newer than the newest buffered one."""


def _seconds(ns: int) -> str:
    return f"{ns / 1e9:.3f} s"


class FrameBuffer(Generic[T]):
    """Keeps the ``capacity`` newest ``(stamp_ns, item)`` pairs in stamp order, within ``max_bytes``."""

    def __init__(self, capacity: int, max_bytes: Optional[int] = None):
        self._stamps: Deque[int] = deque()
        self._items: Deque[T] = deque()
        self._sizes: Deque[int] = deque()
        self._nbytes = 0
        self._capacity = 1
        self._max_bytes: Optional[int] = None
        self.capacity = capacity
        self.max_bytes = max_bytes

    @property
    def capacity(self) -> int:
        return self._capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"frame buffer capacity must be an integer >= 1, got {value!r}")
        self._capacity = value
        self._trim()

    @property
    def max_bytes(self) -> Optional[int]:
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: Optional[int]) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"frame buffer max_bytes must be None or an integer >= 1, got {value!r}")
        self._max_bytes = value
        self._trim()

    @property
    def nbytes(self) -> int:
        """The sizes given to ``push`` of the frames buffered now."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def oldest(self) -> int:
        self._require_frames()
        return self._stamps[0]

    @property
    def newest(self) -> int:
        self._require_frames()
        return self._stamps[-1]

    def clear(self) -> None:
        self._stamps.clear()
        self._items.clear()
        self._sizes.clear()
        self._nbytes = 0

    def push(self, stamp_ns: int, item: T, nbytes: int = 0) -> None:
        """Append the newest frame (``nbytes`` large); the oldest fall out when the buffer is full."""
        stamp_ns = int(stamp_ns)
        if self._stamps and stamp_ns <= self._stamps[-1]:
            what = "repeats" if stamp_ns == self._stamps[-1] else "is older than"
            raise OutOfOrderError(f"frame stamp {_seconds(stamp_ns)} {what} the newest buffered frame "
                                  f"({_seconds(self._stamps[-1])})")
        self._stamps.append(stamp_ns)
        self._items.append(item)
        self._sizes.append(int(nbytes))
        self._nbytes += int(nbytes)
        self._trim()

    def nearest(self, stamp_ns: int, tolerance_ns: int = 0) -> Tuple[int, T]:
        """The buffered frame whose stamp is nearest to ``stamp_ns``, at most ``tolerance_ns`` away."""
        self._require_frames()
        stamp_ns, tolerance_ns = int(stamp_ns), max(0, int(tolerance_ns))
        oldest, newest = self._stamps[0], self._stamps[-1]
        if stamp_ns < oldest - tolerance_ns:
            raise StampTooOldError(f"stamp {_seconds(stamp_ns)} is older than the oldest buffered frame "
                                   f"({_seconds(oldest)}, {len(self)} frames buffered)")
        if stamp_ns > newest + tolerance_ns:
            raise StampInFutureError(f"stamp {_seconds(stamp_ns)} is newer than the newest buffered frame "
                                     f"({_seconds(newest)})")
        stamps = list(self._stamps)
        i = bisect.bisect_left(stamps, stamp_ns)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(stamps)]
        best = min(candidates, key=lambda j: abs(stamps[j] - stamp_ns))
        if abs(stamps[best] - stamp_ns) > tolerance_ns:
            raise NoFrameNearError(f"no buffered frame within {tolerance_ns / 1e6:.1f} ms of stamp "
                                   f"{_seconds(stamp_ns)} (nearest {_seconds(stamps[best])})")
        return stamps[best], self._items[best]

    def frames_after(self, stamp_ns: int) -> List[Tuple[int, T]]:
        """All buffered frames strictly newer than ``stamp_ns``, oldest first."""
        return [(s, item) for s, item in zip(self._stamps, self._items) if s > stamp_ns]

    def newest_item(self) -> Tuple[int, T]:
        self._require_frames()
        return self._stamps[-1], self._items[-1]

    def _require_frames(self) -> None:
        if not self._stamps:
            raise EmptyBufferError("no frames buffered yet")

    def _over_budget(self) -> bool:
        return self._max_bytes is not None and self._nbytes > self._max_bytes and len(self._stamps) > 1

    def _trim(self) -> None:
        while len(self._stamps) > self._capacity or self._over_budget():
            self._stamps.popleft()
            self._items.popleft()
            self._nbytes -= self._sizes.popleft()
