"""asymtrack-build-engine: build the TensorRT engines of a model before flight, or check them.

    asymtrack-build-engine models/asymtrack_t                     # build (or find) fp16 engines
    asymtrack-build-engine models/asymtrack_t --precision fp32 --cache-dir /var/cache/asymtrack
    asymtrack-build-engine models/asymtrack_t --verify            # exit 1 if any is missing or stale
    asymtrack-build-engine models/asymtrack_t --fp16-onnx         # write NAME.*.fp16.onnx (onnx package)

``--verify`` computes the cache key this machine needs (ONNX sha256, TensorRT version, GPU name,
compute capability, SM count, memory, precision, network typing) and says for each engine
whether it is up to date, missing, or stale and why (e.g. "TensorRT version changed: '8.5.2.2'
-> '10.3.0'"). It reads the cache files' headers and checksums; it builds nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from asymtrack_ros.backends.base import BackendError
from asymtrack_ros.backends.engine_cache import PRECISIONS, CacheStatus, inspect
from asymtrack_ros.backends.tensorrt_backend import EngineSpec
from asymtrack_ros.packaged import resolve_model

log = logging.getLogger("asymtrack-build-engine")


@dataclass(frozen=True)
class EngineCheck:
    role: str
    precision: str
    ok: bool
    status: CacheStatus  # the location that is up to date, else the first one's reason
    others: List[CacheStatus]


def check_specs(specs: Sequence[EngineSpec]) -> List[EngineCheck]:
    """Inspect every location of every engine."""
    checks = []
    for spec in specs:
        statuses = [inspect(path, spec.key) for path in spec.locations]
        good = next((s for s in statuses if s.ok), None)
        chosen = good or next((s for s in statuses if s.reason != "missing"), statuses[0])
        checks.append(EngineCheck(spec.role, spec.key.precision, good is not None, chosen,
                                  [s for s in statuses if s is not chosen]))
    return checks


def format_check(check: EngineCheck) -> str:
    word = "OK" if check.ok else ("MISSING" if check.status.reason == "missing" else "STALE")
    line = f"{word:<8}{check.role:<9}{check.precision:<5} {check.status.path}"
    if not check.ok:
        line += f": {check.status.reason}"
        line += "".join(f"\n{'':<23}{s.path}: {s.reason}" for s in check.others if s.reason != "missing")
    return line


def _specs(model: str, precisions: Sequence[str], cache_dir: Optional[Path], device: int) -> List[EngineSpec]:
    from asymtrack_ros.backends.cuda_memory import load_cuda
    from asymtrack_ros.backends.model_files import resolve_model_files
    from asymtrack_ros.backends.tensorrt_backend import engine_specs, import_tensorrt

    trt = import_tensorrt()
    cuda = load_cuda()
    cuda.set_device(device)
    info = cuda.device_info(device)
    files = resolve_model_files(model)
    print(f"TensorRT {trt.__version__} on {info.name} (compute {info.compute_capability[0]}."
          f"{info.compute_capability[1]}, {info.sm_count} SMs, {info.total_memory_gib} GiB)")
    return [s for p in precisions for s in engine_specs(trt, files, p, info, cache_dir)]


def verify(model: str, precisions: Sequence[str], cache_dir: Optional[Path], device: int) -> int:
    checks = check_specs(_specs(model, precisions, cache_dir, device))
    for check in checks:
        print(format_check(check))
    stale = [c for c in checks if not c.ok]
    if stale:
        print(f"{len(stale)} of {len(checks)} engines need a build: asymtrack-build-engine {model}"
              + (f" --cache-dir {cache_dir}" if cache_dir else ""))
    return 1 if stale else 0


def build(model: str, precisions: Sequence[str], cache_dir: Optional[Path], device: int, rebuild: bool,
          workspace_mb: int) -> int:
    from asymtrack_ros.backends.tensorrt_backend import TensorRTBackend

    for precision in precisions:
        with TensorRTBackend(model, precision=precision, device=device, cache_dir=cache_dir, rebuild=rebuild,
                             workspace_mb=workspace_mb) as backend:
            for role, path in backend.engine_paths.items():
                state = "built" if backend.built[role] else "up to date"
                print(f"{state:<11}{role:<9}{precision:<5} {path or '(not cached: no writable location)'}")
    return 0


def write_fp16_onnx(model: str) -> int:
    from asymtrack_ros.backends.model_files import resolve_model_files
    from asymtrack_ros.backends.tensorrt_backend import fp16_onnx_path
    from asymtrack_ros.onnx_fp16 import convert_file

    files = resolve_model_files(model)
    for path in (files.template, files.search):
        convert_file(path, fp16_onnx_path(path))
        print(f"wrote {fp16_onnx_path(path)}")
    return 0


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="asymtrack-build-engine", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="NAME, NAME.pt or one of NAME.template.onnx / NAME.search.onnx")
    p.add_argument("--precision", default=None, choices=PRECISIONS + ("both",),
                   help="engine precision (default: the node's, fp16)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="engine folder (default: beside the ONNX files; the node's engine_cache_dir)")
    p.add_argument("--verify", action="store_true", help="check the engines, build nothing; exit 1 if stale")
    p.add_argument("--rebuild", action="store_true", help="build even if an up-to-date engine exists")
    p.add_argument("--fp16-onnx", action="store_true",
                   help="write NAME.*.fp16.onnx for strongly typed TensorRT (11+) and exit")
    p.add_argument("--device", type=int, default=0, help="CUDA device index")
    p.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT builder workspace")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from asymtrack_ros.backends.engine_cache import DEFAULT_PRECISION

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    precision = args.precision or DEFAULT_PRECISION
    precisions = list(PRECISIONS) if precision == "both" else [precision]
    try:
        model = str(resolve_model(args.model, use_env=False))  # the file the node finds for that name
        if args.fp16_onnx:
            return write_fp16_onnx(model)
        if args.verify:
            return verify(model, precisions, args.cache_dir, args.device)
        return build(model, precisions, args.cache_dir, args.device, args.rebuild, args.workspace_mb)
    except (BackendError, ImportError) as exc:
        print(f"asymtrack-build-engine: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
