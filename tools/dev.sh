#!/usr/bin/env bash
# The project's entry point on a Debian 12 machine: installs what is missing, builds, and acts.
#
#   tools/dev.sh main    set up, build, get the book's weights, then zebra-ify the book's horse
#                        and find the nodule candidates of the book's real CT series
#   tools/dev.sh test    set up, build, then run every test (ctest)
#   tools/dev.sh parity  set up, build, then print each model's parity with PyTorch
#   tools/dev.sh bench   set up, build, get the weights, then run the speed benchmark
#   tools/dev.sh accuracy  set up, build, get the weights, then measure bfloat16 and int8
#                        against float32: CycleGAN on the book's horse and generated pictures,
#                        the nodule pipeline on the book's real CT (dlwpt-accuracy)
#   tools/dev.sh bench-serve [soak N | overload SECONDS]  dlwpt-serve under wrk load against
#                        the book's Flask server and its batching server (ported to aiohttp);
#                        or N LunaModel requests watching memory; or overload for SECONDS
#   tools/dev.sh fuzz [SECONDS [RUNS]]  build the fuzz targets with clang, ASan and UBSan,
#                        then run each for SECONDS (default 60), or until RUNS executions,
#                        from its corpus, JOBS at a time; prints executions
#   tools/dev.sh sanitize  build everything with ASan and UBSan and run the tests under them
#   tools/dev.sh setup   only install the Debian packages the project needs
#   tools/dev.sh build   set up and build
#
# Environment: BUILD_DIR (default build), DLWPT_DATA_DIR (default ../shared/dlwpt),
# CMAKE_PREFIX_PATH (another libtorch), JOBS (default: all cores).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
DATA_DIR=${DLWPT_DATA_DIR:-$ROOT/../shared/dlwpt}
JOBS=${JOBS:-$(nproc)}

# Debian packages: toolchain, libtorch with OpenBLAS (without it torch falls back to the
# reference BLAS and runs 2-40x slower) and oneDNN's headers (int8 inference), Python torch
# for the reference tools, and the libraries of the apps, the server and the tests; Slurm and
# munge for the test of ct-segment's job arrays on a local cluster (tools/slurm-local.sh
# starts it inside the test, no systemd).
PACKAGES=(
  g++ make cmake ccache git
  libtorch-dev libopenblas0-pthread libdnnl-dev
  python3 python3-torch python3-numpy python3-scipy python3-onnx python3-opencv python3-nibabel
  libgtest-dev libgmock-dev libbenchmark-dev
  cimg-dev libjpeg-dev libpng-dev libx11-dev libcxxopts-dev libopencv-dev
  libinsighttoolkit5-dev xvfb xdotool x11-apps
  libboost-dev zlib1g-dev libgoogle-perftools-dev nlohmann-json3-dev prometheus-cpp-dev python3-requests python3-pil python3-yaml curl
  slurmctld slurmd slurm-client munge
)
# Only for `bench-serve`: the load generator and the Python peers.
SERVE_BENCH_PACKAGES=(wrk gunicorn python3-flask python3-aiohttp)
# Only for `fuzz` (libFuzzer and clang's sanitizer runtimes).
FUZZ_PACKAGES=(clang libfuzzer-14-dev libclang-rt-14-dev)

log() { printf '\033[1m[dev]\033[0m %s\n' "$*"; }

missing_packages() {
  local package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
      echo "$package"
  done
}

# Installs the named packages (default: PACKAGES) that are missing.
setup() {
  local missing
  if [ $# -eq 0 ]; then set -- "${PACKAGES[@]}"; fi
  missing=$(missing_packages "$@")
  if [ -z "$missing" ]; then
    log "all Debian packages present"
  else
    log "installing:" $missing
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null || { echo "not root and no sudo: install $missing" >&2; exit 1; }
      sudo=sudo
    fi
    $sudo apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
  fi
  if ! update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null |
      grep -q '^Value: .*openblas'; then
    log "warning: the system BLAS is not OpenBLAS; libtorch will run much slower"
  fi
}

build() {
  setup
  log "configuring $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -DDLWPT_DATA_DIR="$DATA_DIR" >/dev/null
  log "building with $JOBS jobs"
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

run_tests() {
  build
  log "running the tests"
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
}

python_with_torch() {
  sed -n 's/^DLWPT_PYTHON:FILEPATH=//p' "$BUILD_DIR/CMakeCache.txt"
}

run_parity() {
  build
  log "writing the PyTorch reference outputs"
  "$(python_with_torch)" "$ROOT/tools/testing/export_reference.py" --out "$BUILD_DIR/references" --dlwpt "$DATA_DIR"
  log "native C++ and traced models against PyTorch"
  "$BUILD_DIR/apps/dlwpt-parity" "$BUILD_DIR/references"
}

# Gets the book's files (from the local mirror when there is one) and converts its
# checkpoints into pretrained/; what cannot be had is reported, and the demo goes on without it.
fetch_weights() {
  local python
  python=$(python_with_torch)
  if [ -d "$DATA_DIR/data" ]; then
    log "taking the book's files from $DATA_DIR"
    "$python" "$ROOT/tools/fetch.py" --from "$DATA_DIR" || true
  else
    log "downloading the book's files"
    "$python" "$ROOT/tools/fetch.py" || true
  fi
}

run_bench() {
  build
  fetch_weights
  log "benchmark: native C++, TorchScript in C++, Python eager, OpenCV DNN"
  "$(python_with_torch)" "$ROOT/tools/testing/benchmark.py" --build "$BUILD_DIR" --dlwpt "$DATA_DIR"
}

# bfloat16 and int8 against float32 on the book's inputs. int8 CycleGAN scales come from
# generated pictures, not from the pictures measured.
run_accuracy() {
  build
  fetch_weights
  local python pictures="$BUILD_DIR/accuracy" series horse
  python=$(python_with_torch)
  mkdir -p "$pictures/calibration" "$pictures/measured"
  "$python" "$ROOT/tools/testing/sample_image.py" "$pictures/calibration/sample_480x320.png" 480 320
  "$python" "$ROOT/tools/testing/sample_image.py" "$pictures/calibration/sample_256x256.png" 256 256
  "$python" "$ROOT/tools/testing/sample_image.py" "$pictures/measured/sample_320x480.png" 320 480
  local args=(--pictures "$pictures/measured" --calibration-pictures "$pictures/calibration")
  horse=$(ls "$DATA_DIR/data/p1ch2/horse.jpg" 2>/dev/null || true)
  [ -n "$horse" ] && args+=(--pictures "$horse")
  series=$(ls -d "$DATA_DIR/data/p1ch4/volumetric-dicom/"*/ 2>/dev/null | head -1 || true)
  if [ -n "$series" ] && [ -f "$ROOT/pretrained/segmentation.pt" ] && [ -f "$ROOT/pretrained/classifier.pt" ]; then
    args+=(--scan "$series")
  else
    log "no book CT series or trained CT checkpoints: measuring CycleGAN only"
  fi
  "$BUILD_DIR/apps/dlwpt-accuracy" "${args[@]}"
}

run_bench_serve() {
  setup "${PACKAGES[@]}" "${SERVE_BENCH_PACKAGES[@]}"
  build
  ctest --test-dir "$BUILD_DIR" -R '^export_references$' >/dev/null  # the archives served
  local mode=()
  case "${1:-}" in
    soak) mode=(--soak "${2:-100000}") ;;
    overload) mode=(--overload "${2:-60}") ;;
  esac
  "$(python_with_torch)" "$ROOT/tools/testing/bench_serve.py" --build "$BUILD_DIR" --dlwpt "$DATA_DIR" "${mode[@]}"
}

run_main() {
  build
  fetch_weights
  local input output="$BUILD_DIR/demo/zebra.png"
  input=$(ls "$DATA_DIR/data/p1ch2/horse.jpg" "$ROOT/data/data/p1ch2/horse.jpg" 2>/dev/null | head -1 || true)
  if [ -z "$input" ]; then
    input="$BUILD_DIR/demo/sample.png"
    mkdir -p "$BUILD_DIR/demo"
    "$(python_with_torch)" "$ROOT/tools/testing/sample_image.py" "$input"
    log "no horse.jpg: zebra-ifying a generated picture"
  fi
  log "zebra-ifying $input"
  "$BUILD_DIR/apps/zebraify" "$input" -o "$output"
  log "done: $output (view it with: $BUILD_DIR/apps/zebraify --view $input)"
  analyse_book_ct
}

# The book's real lung CT through its trained U-Net and classifier: what a CT researcher sees
# first. Needs the mirror's (or a download's) DICOM series and the converted checkpoints.
analyse_book_ct() {
  local series results="$BUILD_DIR/demo/ct"
  series=$(ls -d "$DATA_DIR/data/p1ch4/volumetric-dicom/"*/ "$ROOT/data/data/p1ch4/volumetric-dicom/"*/ \
             2>/dev/null | head -1 || true)
  if [ -z "$series" ] || [ ! -f "$ROOT/pretrained/segmentation.pt" ] || [ ! -f "$ROOT/pretrained/classifier.pt" ]; then
    log "no book CT series or trained CT checkpoints: skipping the nodule analysis demo"
    return 0
  fi
  log "finding nodule candidates in the book's CT series $series"
  "$BUILD_DIR/apps/ct-segment" "$series" -o "$results" --previews 5
  log "done: $results (mask.mhd opens in ITK-SNAP or 3D Slicer; previews/ shows the 5 most probable candidates)"
}

# The whole build under ASan + UBSan, without the precompiled header (so it also proves that
# every file includes what it uses), then the tests: all, or those matching SANITIZE_TESTS.
run_sanitize() {
  setup
  local dir=${SANITIZE_BUILD_DIR:-$ROOT/build-sanitize}
  log "configuring $dir (ASan + UBSan, no precompiled header)"
  cmake -S "$ROOT" -B "$dir" -DDLWPT_DATA_DIR="$DATA_DIR" -DDLWPT_SANITIZE=address,undefined \
        -DDLWPT_USE_PCH=OFF -DDLWPT_BUILD_BENCHMARK=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$dir" -j "$JOBS"
  log "running the tests under ASan + UBSan${SANITIZE_TESTS:+ (those matching $SANITIZE_TESTS)}"
  ctest --test-dir "$dir" --output-on-failure -j "$JOBS" ${SANITIZE_TESTS:+-R "$SANITIZE_TESTS"}
}

run_fuzz() {
  local seconds=${1:-60} runs=${2:--1}
  setup "${PACKAGES[@]}" "${FUZZ_PACKAGES[@]}"
  local dir=${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
  log "configuring $dir (clang, libFuzzer, ASan + UBSan)"
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$dir" -DDLWPT_BUILD_FUZZERS=ON -DDLWPT_BUILD_TESTS=OFF -DDLWPT_BUILD_APPS=OFF \
        -DDLWPT_BUILD_BENCHMARK=OFF -DDLWPT_INSTALL=OFF \
        -DDLWPT_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$dir" -j "$JOBS"
  python3 "$ROOT/tools/testing/fuzz.py" --build "$dir" --source "$ROOT" --seconds "$seconds" --runs "$runs" --jobs "$JOBS"
}

case "${1:-}" in
  main) run_main ;;
  test) run_tests ;;
  parity) run_parity ;;
  bench) run_bench ;;
  accuracy) run_accuracy ;;
  bench-serve) run_bench_serve "${2:-}" "${3:-}" ;;
  fuzz) run_fuzz "${2:-60}" "${3:--1}" ;;
  sanitize) run_sanitize ;;
  setup) setup ;;
  build) build ;;
  *) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
