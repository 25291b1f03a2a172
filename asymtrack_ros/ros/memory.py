"""Give freed heap memory back to the operating system (glibc's malloc_trim; a no-op elsewhere).

A refused oversize frame has already been deserialised by rclpy: glibc keeps the freed pages of such a
large message in the process (its mmap threshold grows after a large block is freed), so the node's
resident memory would stay raised for good. Trimming after a refusal returns them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any, Optional

_UNSET: Any = object()
_trim: Any = _UNSET


def _malloc_trim() -> Optional[Any]:
    global _trim
    if _trim is _UNSET:
        _trim = None
        if sys.platform.startswith("linux"):
            try:
                _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
                _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
            except (OSError, AttributeError):  # musl and others have no malloc_trim
                _trim = None
    return _trim


def release_freed_memory() -> bool:
    """Return free heap pages to the OS; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
