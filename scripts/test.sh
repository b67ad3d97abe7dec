#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite twice: an optimized build, then a
# debug build with AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Tests run one at a time: each already uses every core (OpenMP), and oversubscribed OpenMP spins.
jobs="$(nproc)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure)
if [ "${SDPAL_SKIP_SANITIZE:-0}" != 1 ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSDPAL_SANITIZE=ON -DSDPAL_BUILD_BENCH=OFF \
        -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" >/dev/null
  cmake --build build-asan -j"$jobs"
  # oneDNN's JIT and OpenMP runtime are not instrumented; leak checking covers our code only.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure)
fi
