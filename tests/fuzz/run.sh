#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS [BUILD_DIR]: run every fuzz target found in
# BUILD_DIR (default: build-fuzz) for SECONDS each, starting from the seed
# corpora (written into BUILD_DIR/tests/fuzz/seeds by make_seeds.py when
# absent).  Builds nothing: configure with -DKOREO_FUZZ=ON and build the
# fuzz_* targets first.  New corpus entries go to
# BUILD_DIR/tests/fuzz/corpus/<target>, crash inputs to
# BUILD_DIR/tests/fuzz/artifacts/.  Exits non-zero if any fuzzer fails.
set -u
secs=${1:?usage: run.sh SECONDS [BUILD_DIR]}
build=${2:-build-fuzz}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="$build/tests/fuzz"
if [ ! -d "$out" ]; then
  echo "run.sh: $out not found (configure with -DKOREO_FUZZ=ON and build first)" >&2
  exit 2
fi
if [ ! -d "$out/seeds" ]; then
  python3 "$here/make_seeds.py" "$out/seeds" --shared "$repo/../shared" || exit 2
fi
mkdir -p "$out/artifacts"
status=0
ran=0
for target in json yaml cel frame; do
  bin="$out/fuzz_$target"
  if [ ! -x "$bin" ]; then
    echo "run.sh: fuzz_$target not built, skipped"
    continue
  fi
  corpus="$out/corpus/$target"
  mkdir -p "$corpus" "$out/seeds/$target" # frame has no generated seeds
  echo "run.sh: fuzz_$target for ${secs}s"
  if "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$out/artifacts/fuzz_$target-" "$corpus" "$out/seeds/$target" \
      >"$out/fuzz_$target.log" 2>&1; then
    echo "run.sh: fuzz_$target ok ($(grep -E '^#[0-9]+' "$out/fuzz_$target.log" | tail -n 1))"
  else
    echo "run.sh: fuzz_$target FAILED; log: $out/fuzz_$target.log" >&2
    tail -n 40 "$out/fuzz_$target.log" >&2
    status=1
  fi
  ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || { echo "run.sh: no fuzz target found in $out" >&2; exit 2; }
exit $status
