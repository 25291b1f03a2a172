"""Rolling rates, latency percentiles and counters -> diagnostic_msgs/DiagnosticStatus.

Levels (thresholds are node parameters, see docs/NODE.md):
- ERROR: the model could not be loaded (configure failed), or every frame in the window failed in
  the tracker.
- WARN: the node is not active (unconfigured or inactive: not tracking); no image for
  ``stale_timeout`` s; dropped / received frames in the
  window above ``warn_drop_ratio``; latency p95 above ``warn_latency_ms``; bad images, bad stamps,
  image size changes, rejected init boxes or tracker errors in the window.
- OK otherwise (IDLE and LOST are tracking states, not faults: they are in the message).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Optional, Tuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

WINDOW_S = 5.0


@dataclass(frozen=True)
class Thresholds:
    warn_latency_ms: float = 100.0
    warn_drop_ratio: float = 0.25
    stale_timeout_s: float = 2.0


@dataclass
class Snapshot:
    input_hz: float
    output_hz: float
    latency_p50_ms: float
    latency_p95_ms: float
    inference_p50_ms: float
    received: int  # in the window
    dropped: int
    bad_images: int
    rejected_inits: int
    errors: int
    outputs: int
    bad_stamps: int = 0
    size_changes: int = 0
    totals: Dict[str, int] = field(default_factory=dict)
    since_input_s: Optional[float] = None
    last_problem: str = ""


class RollingStats:
    """Thread-safe event log over the last ``window_s`` seconds, plus totals since start."""

    EVENTS = ("received", "dropped", "bad_images", "rejected_inits", "errors", "outputs", "bad_stamps",
              "size_changes")

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._events: Dict[str, Deque[float]] = {name: deque() for name in self.EVENTS}
        self._totals: Dict[str, int] = dict.fromkeys(self.EVENTS, 0)
        self._timings: Deque[Tuple[float, float, float]] = deque()  # (time, latency, inference)
        self._last_input: Optional[float] = None
        self.last_problem = ""

    def count(self, event: str, problem: str = "") -> None:
        now = self._clock()
        with self._lock:
            self._events[event].append(now)
            self._totals[event] += 1
            if event == "received":
                self._last_input = now
            if problem:
                self.last_problem = problem

    def output(self, latency_ms: float, inference_ms: float) -> None:
        now = self._clock()
        with self._lock:
            self._events["outputs"].append(now)
            self._totals["outputs"] += 1
            self._timings.append((now, latency_ms, inference_ms))

    def snapshot(self) -> Snapshot:
        now = self._clock()
        with self._lock:
            cutoff = now - self.window_s
            for times in self._events.values():
                while times and times[0] < cutoff:
                    times.popleft()
            while self._timings and self._timings[0][0] < cutoff:
                self._timings.popleft()
            counts = {name: len(times) for name, times in self._events.items()}
            timings = np.array([t[1:] for t in self._timings], np.float64).reshape(-1, 2)
            totals = dict(self._totals)
            since_input = None if self._last_input is None else now - self._last_input
        span = max(1e-6, min(self.window_s, now - self._start))
        p50, p95 = np.percentile(timings[:, 0], [50, 95]) if len(timings) else (0.0, 0.0)
        inference = float(np.median(timings[:, 1])) if len(timings) else 0.0
        return Snapshot(input_hz=counts["received"] / span, output_hz=counts["outputs"] / span,
                        latency_p50_ms=float(p50), latency_p95_ms=float(p95), inference_p50_ms=inference,
                        totals=totals, since_input_s=since_input, last_problem=self.last_problem, **counts)


def assess(snap: Snapshot, thresholds: Thresholds, lifecycle: str, load_error: str) -> Tuple[int, List[str]]:
    """(level, reasons): 0 OK, 1 WARN, 2 ERROR. ``lifecycle``: the node's lifecycle state label."""
    if load_error:
        return 2, [f"model not loaded: {load_error}"]
    if snap.errors and not snap.outputs:
        return 2, [f"tracker failing: {snap.last_problem}"]
    if lifecycle != "active":
        return 1, [f"node {lifecycle}: not tracking (configure and activate it)"]
    reasons: List[str] = []
    if snap.since_input_s is None:
        reasons.append("no image received yet")
    elif snap.since_input_s > thresholds.stale_timeout_s:
        reasons.append(f"no image for {snap.since_input_s:.1f} s")
    if snap.received and snap.dropped / snap.received > thresholds.warn_drop_ratio:
        reasons.append(f"dropping {snap.dropped}/{snap.received} frames (inference slower than input)")
    if snap.latency_p95_ms > thresholds.warn_latency_ms:
        reasons.append(f"latency p95 {snap.latency_p95_ms:.1f} ms > {thresholds.warn_latency_ms:g} ms")
    bad = [(snap.bad_images, "bad images"), (snap.bad_stamps, "bad image stamps"),
           (snap.size_changes, "image size changes"), (snap.rejected_inits, "rejected init boxes"),
           (snap.errors, "tracker errors")]
    problems = [f"{n} {what}" for n, what in bad if n]
    if problems:
        reasons.append(", ".join(problems) + f" (last: {snap.last_problem})")
    return (1 if reasons else 0), reasons


def diagnostic_status(name: str, hardware_id: str, snap: Snapshot, thresholds: Thresholds, lifecycle: str,
                      load_error: str, info: Dict[str, str]) -> DiagnosticStatus:
    """The node's one DiagnosticStatus; ``info`` adds key/values such as state, backend, model."""
    level, reasons = assess(snap, thresholds, lifecycle, load_error)
    state = info.get("state", "")
    status = DiagnosticStatus(name=name, hardware_id=hardware_id)
    status.level = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR)[level]
    status.message = "; ".join([state] + reasons) if state else "; ".join(reasons)
    values = dict(info)
    values.update({
        "input_rate_hz": f"{snap.input_hz:.2f}",
        "output_rate_hz": f"{snap.output_hz:.2f}",
        "latency_p50_ms": f"{snap.latency_p50_ms:.2f}",
        "latency_p95_ms": f"{snap.latency_p95_ms:.2f}",
        "inference_p50_ms": f"{snap.inference_p50_ms:.2f}",
        "dropped_frames": str(snap.totals.get("dropped", 0)),
        "dropped_frames_window": str(snap.dropped),
        "received_frames": str(snap.totals.get("received", 0)),
        "bad_images": str(snap.totals.get("bad_images", 0)),
        "bad_stamps": str(snap.totals.get("bad_stamps", 0)),
        "image_size_changes": str(snap.totals.get("size_changes", 0)),
        "rejected_init_boxes": str(snap.totals.get("rejected_inits", 0)),
        "tracker_errors": str(snap.totals.get("errors", 0)),
        "last_problem": snap.last_problem,
        "window_s": f"{WINDOW_S:g}",
    })
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    return status
