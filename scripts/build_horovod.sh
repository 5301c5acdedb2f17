#!/usr/bin/env bash
# Builds Horovod 0.28.1 from source for the pinned torch + tensorflow-cpu (Keras 3) in .venv/
# and installs it, with the TensorFlow and PyTorch extensions and the Gloo controller (no MPI).
#
# Horovod 0.28.1 does not build against torch >= 2.1 / TF >= 2.16 as released. Three changes:
#   * C++17 instead of C++14 in CMakeLists.txt and horovod/torch/CMakeLists.txt (torch needs it);
#   * C++17 instead of C++11 in third_party/gloo/CMakeLists.txt;
#   * drop horovod/tensorflow/xla_mpi_ops.cc from horovod/tensorflow/CMakeLists.txt (it uses
#     XLA APIs that TensorFlow removed).
#
# The built wheel is cached in
# ${T9K_EM_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/t9k-em/wheels}/<key>/, keyed by the
# horovod, torch and tensorflow versions and the python tag, and reused instead of rebuilding.
# Idempotent: does nothing when this exact build is already installed and importable.
#
# Environment: VENV (default .venv), HOROVOD_BUILD_JOBS (default: number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."

HOROVOD_VERSION=0.28.1
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)
STAMP="$VENV/.t9k-em-horovod"

log() { echo "build_horovod: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -x "$PY" ] || die "$PY not found; create the venv first (scripts/setup.sh)"
versions=$("$PY" - <<'EOF'
"""Installed torch and tensorflow versions (read from metadata, without importing them)."""
import platform, sys
from importlib.metadata import PackageNotFoundError, version

def installed(*names):
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            pass
    sys.exit(f"{names[0]} must be installed before Horovod is built")

print(installed("torch"), installed("tensorflow", "tensorflow-cpu"),
      f"cp{sys.version_info.major}{sys.version_info.minor}-{platform.machine()}")
EOF
) || die "cannot read the torch / tensorflow versions"
read -r TORCH_VERSION TF_VERSION PY_TAG <<<"$versions"
KEY="horovod-${HOROVOD_VERSION}_torch-${TORCH_VERSION}_tf-${TF_VERSION}_${PY_TAG}"
CACHE_DIR="${T9K_EM_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/t9k-em/wheels}/$KEY"

horovod_ok() {
  [ "$(cat "$STAMP" 2>/dev/null)" = "$KEY" ] && "$PY" - <<EOF >/dev/null 2>&1
import horovod
assert horovod.__version__ == "$HOROVOD_VERSION", horovod.__version__
import horovod.torch, horovod.tensorflow  # loads both native extensions
EOF
}

check_build() {
  local out
  out=$("$VENV/bin/horovodrun" --check-build) || die "horovodrun --check-build failed"
  echo "$out"
  for feature in TensorFlow PyTorch Gloo; do
    grep -q "\[X\] $feature\$" <<<"$out" || die "horovodrun --check-build does not show $feature"
  done
}

if horovod_ok; then
  log "horovod $HOROVOD_VERSION for $KEY already installed"
  exit 0
fi

# Runtime dependencies of horovod; with --no-build-isolation setup.py also needs them at build time.
"${PIP[@]}" cloudpickle psutil pyyaml packaging 'cffi>=1.4.0'

wheel=$(ls "$CACHE_DIR"/horovod-"$HOROVOD_VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  log "building horovod $HOROVOD_VERSION for $KEY (a few minutes)"
  if ! cmake --version 2>/dev/null | "$PY" -c '
import re, sys
m = re.search(r"version (\d+)\.(\d+)", sys.stdin.read())
sys.exit(0 if m and (3, 13) <= (int(m[1]), int(m[2])) < (4, 0) else 1)'; then
    log "cmake missing or outside [3.13, 4); installing one into $VENV"
    # Gloo's CMakeLists.txt declares cmake_minimum_required(2.8.12), which cmake 4 rejects.
    "${PIP[@]}" 'cmake>=3.18,<4'
    export HOROVOD_CMAKE="$PWD/$VENV/bin/cmake"
  fi
  work=$(mktemp -d "${TMPDIR:-/tmp}/t9k-em-horovod.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
    "horovod==$HOROVOD_VERSION" -d "$work"
  tar -xzf "$work/horovod-$HOROVOD_VERSION.tar.gz" -C "$work"
  src="$work/horovod-$HOROVOD_VERSION"
  "$PY" - "$src" <<'EOF'
"""Applies the three source changes; fails if any expected text is missing."""
import pathlib, sys

src = pathlib.Path(sys.argv[1])
XLA = 'list(APPEND TF_SOURCES "${PROJECT_SOURCE_DIR}/horovod/tensorflow/xla_mpi_ops.cc")\n'
PATCHES = [
    ("CMakeLists.txt", "set(CMAKE_CXX_STANDARD 14)", "set(CMAKE_CXX_STANDARD 17)"),
    ("horovod/torch/CMakeLists.txt", "set(CMAKE_CXX_STANDARD 14)", "set(CMAKE_CXX_STANDARD 17)"),
    ("third_party/gloo/CMakeLists.txt", "-std=c++11 -fPIC", "-std=c++17 -fPIC"),
    ("horovod/tensorflow/CMakeLists.txt", XLA, ""),
]
for name, old, new in PATCHES:
    path = src / name
    text = path.read_text()
    count = text.count(old)
    if count != 1:
        sys.exit(f"patch {name}: expected exactly one {old.strip()!r}, found {count}")
    path.write_text(text.replace(old, new))
    print(f"build_horovod: patched {name}", file=sys.stderr)
EOF
  mkdir -p "$work/dist"
  HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 \
  HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_MXNET=1 \
  MAKEFLAGS="-j${HOROVOD_BUILD_JOBS:-$(nproc)}" \
    "$PY" -m pip wheel --disable-pip-version-check --no-deps --no-build-isolation \
      -w "$work/dist" "$src"
  built=$(ls "$work"/dist/horovod-"$HOROVOD_VERSION"-*.whl) || die "pip wheel produced no wheel"
  mkdir -p "$CACHE_DIR"
  cp "$built" "$CACHE_DIR/"
  wheel="$CACHE_DIR/$(basename "$built")"
  log "cached $wheel"
else
  log "reusing cached $wheel"
fi

"${PIP[@]}" --no-deps --force-reinstall "$wheel"
echo "$KEY" > "$STAMP"
horovod_ok || { rm -f "$STAMP"; die "horovod installed from $wheel but does not import"; }
check_build
log "horovod $HOROVOD_VERSION installed"
