"""asymtrack-bench: template/search latency, FPS and peak memory of each backend and variant.

Each backend runs in a fresh worker process (``python -m asymtrack_ros.tools.bench --worker``) on
the same exported model and the same inputs, so that its peak RSS is its own and the ONNX Runtime
and TensorRT workers show whether torch was imported. The PyTorch eager model is measured in the
same run as the baseline for the speed-ups, at the same thread count as each CPU backend (by
default the CPUs this process may use, e.g. ``--threads 1,2`` for both). Random-weight models are
fine for timing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from asymtrack_ros.backends import BACKEND_NAMES

DEFAULT_VARIANTS = ("tiny", "small", "base")


def _percentiles(times_s: List[float]) -> Dict[str, float]:
    ms = np.asarray(times_s) * 1e3
    return {"median": float(np.median(ms)), "p95": float(np.percentile(ms, 95)), "mean": float(ms.mean())}


def _time_calls(fn: Any, arg: np.ndarray, warmup: int, iterations: int) -> List[float]:
    for _ in range(warmup):
        fn(arg)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return times


def _time_paced(fn: Any, arg: np.ndarray, rate_hz: float, iterations: int) -> Tuple[List[float], float]:
    """Call ``fn`` at ``rate_hz`` as a camera would: latencies, and the CPU this process used over
    the run in percent of one core (threads that spin between frames show up here)."""
    period = 1.0 / rate_hz
    times = []
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    deadline = wall_start
    for _ in range(iterations):
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
        deadline += period
        time.sleep(max(0.0, deadline - time.perf_counter()))
    cpu_percent = 100.0 * (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    return times, cpu_percent


def _peak_rss_mb() -> float:
    """This process's peak resident memory. ru_maxrss survives exec (a worker would report its
    parent's peak), so Linux's per-image VmHWM comes first."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def run_worker(kind: str, model: str, iterations: int, warmup: int,
               options: Dict[str, Any], rate_hz: float = 0.0) -> Dict[str, Any]:
    """Measure one backend in this process; ``options``: ``BackendOptions`` fields. Returns plain
    data (printed as JSON by --worker)."""
    from asymtrack_ros.backends import BackendOptions, open_backend

    backend = open_backend(kind, model, BackendOptions(**options))
    info = backend.info
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1, 3, info.template_size, info.template_size)).astype(np.float32)
    x = rng.standard_normal((1, 3, info.search_size, info.search_size)).astype(np.float32)
    template = _time_calls(backend.init_template, z, max(1, warmup // 4), max(3, iterations // 4))
    search = _time_calls(backend.track, x, warmup, iterations)
    result = {
        "backend": backend.name, "variant": info.variant, "options": options,
        "template_s": template, "search_s": search, "peak_rss_mb": _peak_rss_mb(),
        "torch_imported": "torch" in sys.modules, "boxes": [float(v) for v in backend.track(x).boxes],
    }
    if rate_hz > 0:
        result["paced_s"], result["paced_cpu_percent"] = _time_paced(backend.track, x, rate_hz, iterations)
    if hasattr(backend, "active_providers"):
        result["providers"] = backend.active_providers
    backend.close()
    return result


def summarise(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Pool the samples of one backend's worker runs (rounds) into one row."""
    row = {k: v for k, v in runs[0].items() if k not in ("template_s", "search_s", "paced_s")}
    template = [t for r in runs for t in r["template_s"]]
    search = [t for r in runs for t in r["search_s"]]
    row.update(template_ms=_percentiles(template), search_ms=_percentiles(search),
               peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
               torch_imported=any(r["torch_imported"] for r in runs), samples=len(search))
    row["search_fps"] = 1e3 / row["search_ms"]["median"]
    if all("paced_s" in r for r in runs):
        row["paced_ms"] = _percentiles([t for r in runs for t in r["paced_s"]])
        row["paced_cpu_percent"] = float(np.mean([r["paced_cpu_percent"] for r in runs]))
    return row


def _spawn_worker(kind: str, model: Path, options: Dict[str, Any],
                  args: argparse.Namespace) -> Dict[str, Any]:
    cmd = [sys.executable, "-m", "asymtrack_ros.tools.bench", "--worker", kind, "--model", str(model),
           "--iterations", str(args.iterations), "--warmup", str(args.warmup),
           "--rate", str(args.rate), "--options", json.dumps(options)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"backend": kind, "options": options, "error": tail}
    return json.loads(lines[-1])


def _load_or_build(variant: Optional[str], model_file: Optional[str]) -> Tuple[Any, str]:
    """``model_file``, else the published random checkpoint of ``variant`` in
    $ASYMTRACK_REFERENCE_DIR if set and there, else seeded random weights."""
    from asymtrack_ros.model import build_model, load_model, load_published

    if model_file:
        return load_model(model_file, variant=variant), model_file
    reference = os.environ.get("ASYMTRACK_REFERENCE_DIR")
    published = Path(reference) / f"official_{variant}_random.pth.tar" if reference else None
    if published is not None and published.is_file():
        return load_published(published, variant), str(published)
    import torch

    torch.manual_seed(0)
    return build_model(variant).eval(), "random weights"


def prepare_models(variants: List[str], model_file: Optional[str], workdir: Path,
                   opset: int) -> List[Dict[str, Any]]:
    """Export each variant's model once: NAME.pt (for the PyTorch worker) and the ONNX pair."""
    from asymtrack_ros.export import export_onnx
    from asymtrack_ros.model import save_deploy

    prepared = []
    for variant in ([None] if model_file else variants):
        model, source = _load_or_build(variant, model_file)
        prefix = workdir / f"asymtrack_{model.variant}"
        save_deploy(model, f"{prefix}.pt")
        export_onnx(model, prefix, opset=opset)
        prepared.append({"variant": model.variant, "prefix": prefix, "source": source})
    return prepared


def backend_available(kind: str) -> Optional[str]:
    """None if ``kind`` can run here, else the reason it cannot."""
    import importlib.util

    if kind == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed"
    if kind == "tensorrt":
        from asymtrack_ros.backends import gpu_available

        if importlib.util.find_spec("tensorrt") is None:
            return "tensorrt is not installed"
        if not gpu_available():
            return "no CUDA device (or neither cuda-python nor pycuda)"
    return None


def default_threads() -> int:
    """The CPUs this process may run on (onnxruntime's and PyTorch's defaults on a plain machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def thread_counts(spec: str) -> List[int]:
    """``--threads``: '' or '0' -> [default_threads()], else a comma list such as '1,2'."""
    counts = [int(t) for t in str(spec).split(",") if t.strip()]
    if any(t < 0 for t in counts):
        raise ValueError(f"--threads takes counts >= 0, got {spec!r}")
    counts = [t or default_threads() for t in counts] or [default_threads()]
    return list(dict.fromkeys(counts))


def spin_times(spec: str) -> List[int]:
    """``--spin-us``: a comma list of -1, 0 or microseconds."""
    try:
        times = [int(t) for t in str(spec).split(",") if t.strip()]
    except ValueError:
        times = []
    if not times or any(t < -1 for t in times):
        raise ValueError(f"--spin-us takes a comma list of -1, 0 or microseconds, got {spec!r}")
    return list(dict.fromkeys(times))


def _options(kind: str, args: argparse.Namespace) -> List[Dict[str, Any]]:
    """The ``BackendOptions`` fields of each worker of ``kind``."""
    if kind == "tensorrt":
        return [{"precision": p} for p in args.precisions.split(",")]
    if kind == "onnxruntime":
        spins = spin_times(args.spin_us)
        return [{"threads": t, "spin_us": s} for t in thread_counts(args.threads) for s in spins]
    if kind == "pytorch":
        return [{"threads": t} for t in thread_counts(args.threads)]
    return [{}]


def _label(row: Dict[str, Any]) -> str:
    opts = row.get("options") or {}
    extra = ",".join(f"{k}={v}" for k, v in opts.items())
    return f"{row['backend']}{'(' + extra + ')' if extra else ''}"


def format_table(rows: List[Dict[str, Any]], rate_hz: float = 0.0) -> str:
    head = ("variant", "backend", "template ms med/p95", "search ms med/p95", "search FPS", "vs eager",
            "peak RSS MB", "torch")
    if rate_hz > 0:
        head += (f"at {rate_hz:g} Hz: search ms med/p95", "CPU % of a core")
    lines = [" | ".join(head), " | ".join("-" * len(h) for h in head)]
    for r in rows:
        if "error" in r or "skipped" in r:
            why = f"skipped: {r['skipped']}" if "skipped" in r else f"error: {r['error']}"
            lines.append(f"{r.get('variant', '-')} | {r['backend']} | {why}")
            continue
        t, s = r["template_ms"], r["search_ms"]
        speedup = f"{r['speedup']:.2f}x" if r.get("speedup") else "-"
        line = (f"{r['variant']} | {_label(r)} | {t['median']:.2f}/{t['p95']:.2f} | "
                f"{s['median']:.2f}/{s['p95']:.2f} | {r['search_fps']:.1f} | {speedup} | "
                f"{r['peak_rss_mb']:.0f} | {'yes' if r['torch_imported'] else 'no'}")
        if "paced_ms" in r:
            paced = r["paced_ms"]
            line += f" | {paced['median']:.2f}/{paced['p95']:.2f} | {r['paced_cpu_percent']:.0f}"
        lines.append(line)
    return "\n".join(lines)


def _jobs(item: Dict[str, Any], backends: List[str], args: argparse.Namespace,
          rows: List[Dict[str, Any]]) -> List[Tuple[str, Path, Dict[str, Any]]]:
    jobs = []
    for kind in ["pytorch"] + [b for b in backends if b != "pytorch"]:
        reason = backend_available(kind)
        if reason:
            rows.append({"variant": item["variant"], "backend": kind, "skipped": reason})
            continue
        target = Path(f"{item['prefix']}.pt") if kind == "pytorch" else item["prefix"]
        jobs.extend((kind, target, options) for options in _options(kind, args))
    # Eager and onnxruntime of one thread count run next to each other (the load drifts).
    threads = thread_counts(args.threads)
    return sorted(jobs, key=lambda job: threads.index(job[2]["threads"]) if "threads" in job[2]
                  else len(threads))


def bench_variant(item: Dict[str, Any], backends: List[str],
                  args: argparse.Namespace) -> List[Dict[str, Any]]:
    """All backends of one variant, ``args.rounds`` times in alternating order (the machine's load
    drifts; alternating spreads it over the backends), samples pooled per backend."""
    rows: List[Dict[str, Any]] = []
    jobs = _jobs(item, backends, args, rows)
    runs: List[List[Dict[str, Any]]] = [[] for _ in jobs]
    errors: Dict[int, Dict[str, Any]] = {}
    for round_index in range(max(1, args.rounds)):
        order = list(range(len(jobs)))
        for i in order if round_index % 2 == 0 else order[::-1]:
            if i in errors:
                continue
            result = _spawn_worker(*jobs[i], args=args)
            if "error" in result:
                errors[i] = result
            else:
                runs[i].append(result)
    # Each CPU backend is compared with the eager model at its own thread count; GPU backends
    # with the eager model at the most threads measured.
    eager: Dict[Optional[int], float] = {}
    done = []
    for i, (kind, _, options) in enumerate(jobs):
        row = errors.get(i) or summarise(runs[i])
        row.update(variant=item["variant"], source=item["source"])
        if kind == "pytorch" and "error" not in row:
            eager[options.get("threads")] = row["search_ms"]["median"]
        done.append((kind, options, row))
    eager_pytorch = [r for k, _, r in done if k == "pytorch"]
    for _, options, row in done:
        threads = options.get("threads")
        if threads is not None:
            row["eager_threads"] = threads
        baseline = eager.get(threads) if threads is not None else (eager[max(eager)] if eager else None)
        if baseline and "error" not in row:
            row["speedup"] = baseline / row["search_ms"]["median"]
    return eager_pytorch + [r for k, _, r in done if k != "pytorch"] + rows


def backend_list(spec: str) -> List[str]:
    return [b.strip() for b in spec.split(",") if b.strip()]


def run_bench(args: argparse.Namespace) -> List[Dict[str, Any]]:
    backends = backend_list(args.backends)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="asymtrack-bench-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for item in prepare_models(variants, args.model, workdir, args.opset):
            rows.extend(bench_variant(item, backends, args))
    return rows


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="asymtrack-bench", description=__doc__)
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    p.add_argument("--backends", default=",".join(BACKEND_NAMES), help="a comma list of "
                   + ", ".join(BACKEND_NAMES))
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2,
                   help="run every backend this many times, alternating the order; samples are pooled")
    p.add_argument("--model", help="a checkpoint (.pth.tar / .pt) instead of the random-weight ones")
    p.add_argument("--json", help="write the rows to this file")
    p.add_argument("--precisions", default="fp32,fp16", help="TensorRT precisions to measure")
    p.add_argument("--threads", default="0",
                   help="intra-op threads for PyTorch and onnxruntime, both the same; a comma list "
                        "such as 1,2 measures each (0: the CPUs this process may use)")
    p.add_argument("--spin-us", default="0,-1",
                   help="how long idle onnxruntime threads spin before they sleep, microseconds; a comma "
                        "list measures each (0: never, the backend's default; -1: onnxruntime's own "
                        "policy, spinning like PyTorch's OpenMP threads)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="also run the search branch paced at this many Hz, as a camera would drive it, "
                        "and report its latency and the CPU the process used (0: off)")
    p.add_argument("--opset", type=int, default=16)
    p.add_argument("--workdir", help="keep the exported models here (default: a temporary folder)")
    p.add_argument("--worker", metavar="BACKEND", help=argparse.SUPPRESS)
    p.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        spin_times(args.spin_us)
    except ValueError as exc:
        p.error(str(exc))
    unknown = [b for b in backend_list(args.backends) if b not in BACKEND_NAMES]
    if unknown and not args.worker:
        p.error(f"--backends: unknown {', '.join(unknown)}; choose from {', '.join(BACKEND_NAMES)}")
    if args.rate < 0:
        p.error("--rate must be >= 0")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = run_worker(args.worker, args.model, args.iterations, args.warmup, json.loads(args.options),
                            args.rate)
        print(json.dumps(result))
        return 0
    rows = run_bench(args)
    counts = ",".join(str(t) for t in thread_counts(args.threads))
    print(f"threads: {counts} (PyTorch eager and ONNX Runtime run with the same intra-op thread count; "
          f"'vs eager' compares with the eager row of that count)")
    print(format_table(rows, args.rate))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
