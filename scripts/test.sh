#!/usr/bin/env bash
# The whole test suite: each libFuzzer target for FUZZ_SECONDS (default 30)
# with its seed corpus, then a build with AddressSanitizer + UBSan and every
# test (unit tests, conformance runners) under ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
SHARED=${KOREO_SHARED_DIR:-$(cd .. && pwd)/shared}

if [ "$FUZZ_SECONDS" != 0 ]; then
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKOREO_FUZZ=ON \
    -DKOREO_SHARED_DIR="$SHARED" >/dev/null
  cmake --build build-fuzz -j"$JOBS" --target fuzz_json fuzz_yaml fuzz_cel fuzz_frame
  tests/fuzz/run.sh "$FUZZ_SECONDS" build-fuzz
fi

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKOREO_SANITIZE=ON \
  -DKOREO_SHARED_DIR="$SHARED" >/dev/null
cmake --build build-asan -j"$JOBS"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd build-asan && ctest --output-on-failure -j"$JOBS"
