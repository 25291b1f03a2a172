"""GPU check (scripts/gpu_check.sh): every GPU path that is installed, on the same crops, in one table.

Reference: ONNX Runtime's CPU provider on the float32 graphs. Then TensorRT FP32 and FP16 engines,
PyTorch CUDA eager and ONNX Runtime's CUDA provider, each where it is installed (a missing one is
a row saying why, never an error): max abs difference of the boxes and of the corner maps against
the reference, and the search branch's latency (median, p95; crop in, outputs back). TensorRT rows
are PASS/FAIL against the tolerances of test_tensorrt.py. Crops come from the seeded demo
sequence, so every machine measures the same inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from asymtrack_ros.backends import BackendError, create_backend
from asymtrack_ros.backends.model_files import resolve_model_files
from asymtrack_ros.model_info import ModelInfo

TOLERANCE = {"fp32": 2e-4, "fp16": 2e-2}  # boxes, as test_tensorrt.py
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "asymtrack_t_demo"


@dataclass
class Row:
    path: str
    precision: str
    boxes_diff: Optional[float] = None
    maps_diff: Optional[float] = None
    median_ms: Optional[float] = None
    p95_ms: Optional[float] = None
    verdict: str = ""
    note: str = ""


def demo_crops(info: ModelInfo, count: int) -> Tuple[np.ndarray, List[np.ndarray]]:
    """The template crop of frame 0 and search crops of the next ``count`` frames (true boxes)."""
    from asymtrack_ros.demo_data import demo_sequence
    from asymtrack_ros.tracking.crop import crop, preprocess

    seq = demo_sequence(frames=count + 1)
    z = preprocess(crop(seq.frames[0], seq.boxes[0], info.template_factor, info.template_size)[0],
                   info.mean, info.std)
    xs = [preprocess(crop(f, b, info.search_factor, info.search_size)[0], info.mean, info.std)
          for f, b in zip(seq.frames[1:], seq.boxes[1:])]
    return z, xs


def outputs(backend: object, z: np.ndarray, xs: Sequence[np.ndarray]) -> List[Tuple[np.ndarray, ...]]:
    backend.init_template(z)  # type: ignore[attr-defined]
    return [tuple(np.array(a) for a in backend.track(x)) for x in xs]  # type: ignore[attr-defined]


def latency(backend: object, xs: Sequence[np.ndarray], seconds: float, most: int) -> Tuple[float, float]:
    for x in xs[:5]:
        backend.track(x)  # type: ignore[attr-defined]
    times: List[float] = []
    end = time.perf_counter() + seconds
    while len(times) < most and (len(times) < 20 or time.perf_counter() < end):
        x = xs[len(times) % len(xs)]
        start = time.perf_counter()
        backend.track(x)  # type: ignore[attr-defined]
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 95))


def measure(row: Row, make: Callable[[], object], z: np.ndarray, xs: Sequence[np.ndarray],
            reference: List[Tuple[np.ndarray, ...]], seconds: float, most: int) -> Row:
    try:
        backend = make()
    except (BackendError, ImportError, RuntimeError, ValueError) as exc:
        row.note = f"skipped: {exc}"[:300]
        return row
    try:
        got = outputs(backend, z, xs)
        row.boxes_diff = max(float(np.abs(g[0] - r[0]).max()) for g, r in zip(got, reference))
        row.maps_diff = max(float(np.abs(g[i] - r[i]).max()) for g, r in zip(got, reference) for i in (1, 2))
        row.median_ms, row.p95_ms = latency(backend, xs, seconds, most)
    except Exception as exc:  # a path that starts but fails to run is a finding, not the end of the check
        row.note = f"failed: {type(exc).__name__}: {exc}"[:300]
        row.verdict = "FAIL" if row.path.startswith("TensorRT") else ""
        return row
    finally:
        backend.close()  # type: ignore[attr-defined]
    if row.path.startswith("TensorRT"):
        row.verdict = "PASS" if row.boxes_diff <= TOLERANCE[row.precision] else "FAIL"
    return row


def _torch_cuda(model: Path) -> object:
    import torch

    if not torch.cuda.is_available():
        raise BackendError(f"torch {torch.__version__} sees no CUDA device")
    checkpoint = next((p for p in (Path(f"{model}.pt"), Path(f"{model}.pth.tar")) if p.is_file()), None)
    if checkpoint is None:
        raise BackendError(f"no checkpoint {model}.pt for the PyTorch path")
    return create_backend("pytorch", checkpoint, device="cuda")


def _ort_cuda(model: Path) -> object:
    from asymtrack_ros.backends.onnxruntime_backend import available_providers

    if "CUDAExecutionProvider" not in available_providers():
        raise BackendError(f"onnxruntime has no CUDA provider here ({', '.join(available_providers())})")
    return create_backend("onnxruntime", model, providers="cuda")


def run(model: Path, crops: int, seconds: float, most: int, cache_dir: Path) -> List[Row]:
    files = resolve_model_files(model)
    z, xs = demo_crops(files.info, crops)
    cpu = create_backend("onnxruntime", files.prefix)
    reference = outputs(cpu, z, xs)
    cpu.close()
    rows = []
    for precision in ("fp32", "fp16"):
        rows.append(measure(Row("TensorRT", precision),
                            lambda p=precision: create_backend("tensorrt", files.prefix, precision=p,
                                                               cache_dir=cache_dir),
                            z, xs, reference, seconds, most))
    for name, make in (("PyTorch CUDA eager", _torch_cuda), ("ONNX Runtime CUDA", _ort_cuda)):
        rows.append(measure(Row(name, "fp32"), lambda make=make: make(files.prefix), z, xs, reference,  # type: ignore[misc]
                            seconds, most))
    return rows


def _fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: Sequence[Row]) -> str:
    lines = ["| path | precision | max abs diff boxes | max abs diff corner maps | search ms median | p95 | "
             "verdict / note |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r.path, r.precision, _fmt(r.boxes_diff, ".2e"), _fmt(r.maps_diff, ".2e"),
                 _fmt(r.median_ms, ".2f"), _fmt(r.p95_ms, ".2f"), f"{r.verdict} {r.note}".strip()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                   help="model prefix (NAME of NAME.search.onnx)")
    p.add_argument("--crops", type=int, default=16, help="search crops compared")
    p.add_argument("--seconds", type=float, default=20.0, help="latency time per path")
    p.add_argument("--iterations", type=int, default=500, help="at most this many timed frames per path")
    p.add_argument("--cache-dir", type=Path, default=Path("build/gpu_check/engines"), help="TensorRT engines")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    rows = run(args.model, args.crops, args.seconds, args.iterations, args.cache_dir)
    print(f"model {args.model}, {args.crops} demo crops, reference: ONNX Runtime CPU fp32")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 1 if any(r.verdict == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
