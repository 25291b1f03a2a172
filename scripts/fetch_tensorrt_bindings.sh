#!/usr/bin/env bash
# Download the TensorRT Python bindings of each supported version (the extension module only,
# about 1 MB a wheel, no libnvinfer) into build/tensorrt_bindings/VERSION, for
# test/test_tensorrt_bindings.py, which checks the backend's use of the TensorRT API against them
# on machines without TensorRT or a GPU. Idempotent (a stamp per version); never fatal: without
# network, pip, a C compiler or nm the test skips and says why.
#
# The extension links libnvinfer/libnvonnxparser/libnvinfer_plugin. To load it without them, a
# loader stub with each library's soname is built whose functions abort() if ever called; the
# test only reads the bindings' classes, enums and signatures (defined in the extension itself),
# never calls into TensorRT.
#
#   --cuda-python   also fetch cuda-python 12.3.0 and cuda-bindings 12.9.4 (36 MB, opt-in) into
#                   build/cuda_python, for test_cuda_errors.py: what each says without a driver.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${ASYMTRACK_TRT_BINDINGS_DIR:-$ROOT/build/tensorrt_bindings}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[[ -x $PYTHON ]] || PYTHON=python3
# version=package==pin: 8.6 (JetPack 6.0 desktop counterpart), 10.3 (JetPack 6.1/6.2),
# 10.16 (last 10.x, FP16 flag deprecated), 11.4 (no FP16 flag: strongly typed).
VERSIONS=(
  "8.6.1=tensorrt-bindings==8.6.1"
  "10.3.0=tensorrt-cu12-bindings==10.3.0"
  "10.16.1=tensorrt-cu12-bindings==10.16.1.11"
  "11.4.0=tensorrt-cu12-bindings==11.4.0.106"
)

log() { printf '[trt-bindings] %s\n' "$*"; }

for tool in gcc nm objdump; do
  command -v "$tool" >/dev/null || { log "no $tool: skipped (test_tensorrt_bindings.py will skip)"; exit 0; }
done

fetch() {  # version, requirement
  local version=$1 requirement=$2 dir=$DEST/$1
  [[ -f $dir/ok ]] && return 0
  rm -rf "$dir" && mkdir -p "$dir/wheel" "$dir/pkg" "$dir/stubs"
  if ! "$PYTHON" -m pip --disable-pip-version-check -q download --no-deps --only-binary=:all: \
      --retries 1 --timeout 30 -d "$dir/wheel" "$requirement" >"$dir/pip.log" 2>&1; then
    log "$requirement: download failed (see $dir/pip.log); skipped"
    return 0
  fi
  "$PYTHON" -m zipfile -e "$dir"/wheel/*.whl "$dir/pkg" || { log "$requirement: bad wheel"; return 0; }
  local so
  so=$(find "$dir/pkg" -name 'tensorrt*.so' -path '*tensorrt_bindings*' | head -n 1)
  [[ -n $so ]] || { log "$requirement: no extension module in the wheel"; return 0; }
  # Functions the extension takes from TensorRT's libraries (unversioned, not Python's).
  nm -D --undefined-only "$so" | awk '{print $2}' | grep -v '@' \
    | grep -Ev '^(_?Py|_ITM_|__gmon_start__|__pthread|pthread_|dl(open|sym|close|error)$)' \
    | awk '{printf "void %s(void) { abort(); }\n", $1}' >"$dir/stubs/symbols.inc"
  { echo '#include <stdlib.h>'; cat "$dir/stubs/symbols.inc"; } >"$dir/stubs/stub.c"
  local lib
  for lib in $(objdump -p "$so" | awk '/NEEDED/ && $2 ~ /^libnv/ {print $2}'); do
    gcc -shared -fPIC -Wl,-soname,"$lib" -o "$dir/stubs/$lib" "$dir/stubs/stub.c" \
      || { log "$requirement: building the loader stub failed"; return 0; }
  done
  echo "$requirement" >"$dir/ok"
  log "$requirement -> $dir"
}

fetch_cuda_python() {  # name, requirement...
  local dir=$ROOT/build/cuda_python/$1; shift
  [[ -f $dir/ok ]] && return 0
  rm -rf "$dir" && mkdir -p "$dir/wheel" "$dir/pkg"
  "$PYTHON" -m pip --disable-pip-version-check -q download --no-deps --only-binary=:all: \
      --retries 1 --timeout 30 -d "$dir/wheel" "$@" >"$dir/pip.log" 2>&1 \
    || { log "$*: download failed (see $dir/pip.log)"; return 0; }
  local wheel
  for wheel in "$dir"/wheel/*.whl; do "$PYTHON" -m zipfile -e "$wheel" "$dir/pkg" || return 0; done
  echo "$*" >"$dir/ok"
  log "$* -> $dir"
}

mkdir -p "$DEST"
for entry in "${VERSIONS[@]}"; do
  fetch "${entry%%=*}" "${entry#*=}"
done
if [[ ${1:-} == --cuda-python ]]; then
  fetch_cuda_python 12.3.0 cuda-python==12.3.0
  fetch_cuda_python 12.9.4 cuda-bindings==12.9.4 cuda-pathfinder==1.9.1
fi
exit 0
