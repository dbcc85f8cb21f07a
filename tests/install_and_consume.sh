#!/usr/bin/env bash
# Installs the build into a temporary prefix, then configures, builds and runs
# tests/consumer against it: what `find_package(dlwpt)` gives a project outside this one.
# usage: install_and_consume.sh BUILD_DIR SOURCE_DIR LUNA_ARCHIVE [FLAGS [LINK_FLAGS]]
# FLAGS: what a consumer must compile with too (a sanitizer build's -fsanitize=...);
# LINK_FLAGS (default FLAGS): what it must link with.
# With DLWPT_FROM_DEB=1 the installation is the Debian package `cpack -G DEB` makes, unpacked.
set -euo pipefail
build=$1 source=$2 archive=$3 flags=${4:-} link_flags=${5:-${4:-}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "${DLWPT_FROM_DEB:-0}" = 1 ]; then
  (cd "$build" && cpack -G DEB -B "$work/package" > "$work/cpack.log") || { cat "$work/cpack.log"; exit 1; }
  deb=$(ls "$work"/package/dlwpt_*_amd64.deb)
  dpkg-deb -f "$deb" Depends | grep -q "libtorch-dev"  # what a consumer needs to build
  dpkg-deb -x "$deb" "$work/root"
  mv "$work/root/usr" "$work/prefix"
  test -x "$work/prefix/bin/ct-segment" && test -x "$work/prefix/bin/dlwpt-train"
else
  cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
fi
test -f "$work/prefix/include/dlwpt/models/unet.h"
test -f "$work/prefix/lib/cmake/dlwpt/dlwptConfig.cmake"
test ! -e "$work/prefix/include/dlwpt/weights/reference_case.h"  # the test harness stays here
cmake -S "$source/tests/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$link_flags" \
      > "$work/configure.log"
# Asking for a component the package does not have must fail at configure time.
mkdir "$work/bad" && printf 'cmake_minimum_required(VERSION 3.18)\nproject(bad CXX)\nfind_package(dlwpt CONFIG REQUIRED COMPONENTS nonsense)\n' > "$work/bad/CMakeLists.txt"
if cmake -S "$work/bad" -B "$work/bad/build" -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/bad.log" 2>&1; then
  echo "find_package accepted an unknown component" >&2; exit 1
fi
grep -q "has no component 'nonsense'" "$work/bad.log"
cmake --build "$work/consumer" -j "${JOBS:-2}" > "$work/build.log" || { cat "$work/build.log"; exit 1; }
"$work/consumer/classify" "$archive"
(cd "$work" && "$work/consumer/segment_volume")
what=$([ "${DLWPT_FROM_DEB:-0}" = 1 ] && echo "Debian package" || echo "installed package")
echo "$what found and used: 2 passed, 0 failed"
