#!/usr/bin/env bash
# The main job on its built-in default (README.md): set up, then track the bundled demo sequence
# with the demo model on the CPU (ONNX Runtime) and print accuracy, FPS and latency.
# Extra arguments go to asymtrack-demo, e.g. scripts/demo.sh --via replay --backend pytorch
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
# shellcheck source=/dev/null
source "$ROOT/build/env.sh"
cd "$ROOT"
exec asymtrack-demo "$@"
