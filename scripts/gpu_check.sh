#!/usr/bin/env bash
# One command for any machine with an NVIDIA GPU (desktop or Jetson): TensorRT FP32/FP16 engines
# against ONNX Runtime on the same crops (max abs difference of boxes and corner maps), and search
# latency (median/p95) of TensorRT, PyTorch CUDA eager and ONNX Runtime's CUDA provider, whichever
# are installed, in one table (asymtrack_ros/tools/gpu_check.py). Where TensorRT is missing its
# rows say why and the CUDA paths are still measured. Bounded to 8 minutes (engine builds
# included; engines are cached in build/gpu_check/engines for a rerun).
#
#   scripts/gpu_check.sh [--model models/asymtrack_t_demo] [--json out.json] ...
#   PYTHON=/path/to/python scripts/gpu_check.sh     # the interpreter that has tensorrt/torch
#
# Without an NVIDIA GPU it says so and exits 77 (the "skipped" exit status of automake/meson).
# Exit 1 if a TensorRT engine is outside the tolerances of test_tensorrt.py.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

has_gpu() {
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    return 0
  fi
  [[ -e /dev/nvidia0 || -e /dev/nvhost-ctrl-gpu || -e /dev/nvgpu/igpu0/ctrl ]]  # desktop, Jetson
}

if ! has_gpu; then
  echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi lists none, no /dev/nvidia0 or Jetson" \
       "GPU device); nothing to check"
  exit 77
fi

if [[ -z ${PYTHON:-} ]]; then
  # The venv of scripts/setup.sh has CPU torch and no TensorRT: prefer the system interpreter
  # (JetPack's tensorrt) unless it lacks onnxruntime, the reference.
  PYTHON=python3
  if ! python3 -c 'import onnxruntime' 2>/dev/null && [[ -x $ROOT/.venv/bin/python ]]; then
    PYTHON=$ROOT/.venv/bin/python
  fi
fi
cd "$ROOT" || exit 1
mkdir -p build/gpu_check
echo "gpu_check: $("$PYTHON" --version 2>&1) ($PYTHON)"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" timeout 480 "$PYTHON" -m asymtrack_ros.tools.gpu_check "$@"
rc=$?
[[ $rc -eq 124 ]] && echo "gpu_check: stopped after 8 minutes"
exit $rc
