#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang 14 (ASan + UBSan) in
# build/fuzz and runs each for SECONDS (default 60), one after another, from
# the checked-in seeds plus whatever earlier runs found. Fails on any crash,
# leak, timeout or sanitizer report, leaving the input under
# build/fuzz/artifacts/<target>/ and the whole log under build/fuzz/logs/.
# Ends with a table of executions per second and coverage per target.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail

seconds=${1:-60}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -eq 0 ]]; then
  echo "usage: $0 [SECONDS] [TARGET...]" >&2
  exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$root/build/fuzz
all_targets=(decode handle_packet framing deltas)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")

for tool in clang-14 clang++-14 cmake ninja; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
done

CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Debug -DAIOCLUSTER_FUZZ=ON \
  -DAIOCLUSTER_BUILD_BENCH=OFF -DAIOCLUSTER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j2 --target fuzz_all

# A smaller quarantine than ASan's 256 MB: the stateful targets allocate a lot
# per input, and cycling through fresh pages cost them half their speed.
export ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=64
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

summary=()
failed=()
for target in "${targets[@]}"; do
  binary=$build/tests/fuzz/fuzz_$target
  seeds=$root/tests/fuzz/corpus/$target
  [[ -x $binary && -d $seeds ]] || { echo "fuzz: unknown target '$target'" >&2; exit 2; }
  work=$build/corpus/$target
  artifacts=$build/artifacts/$target
  log=$build/logs/$target.log
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  echo "fuzz: $target for ${seconds}s (log: $log)"
  # The stateful targets light up thousands of features per input; libFuzzer's
  # entropic scheduling then spends more time ranking them than running inputs.
  extra=()
  case $target in handle_packet|deltas) extra+=(-entropic=0) ;; esac
  status=0
  # New inputs go to the first directory, so the checked-in seeds stay as they are.
  "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -reload=0 \
    "${extra[@]}" -artifact_prefix="$artifacts/" "$work" "$seeds" >"$log" 2>&1 || status=$?

  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.*corp: \([^ ]*\).*/\1/p' <<<"$last")
  summary+=("$(printf '%-14s %10s %8s %7s %7s %12s %7s  %s' "$target" "${runs:-?}" "${speed:-?}" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$([[ $status -eq 0 ]] && echo ok || echo FAILED)")")
  if [[ $status -ne 0 ]] || grep -qE '^(==[0-9]+==ERROR|SUMMARY: (Address|Undefined|Leak)Sanitizer)|runtime error:' "$log"; then
    failed+=("$target")
    echo "fuzz: $target FAILED (exit $status); end of its log:" >&2
    tail -n 40 "$log" >&2
    ls -1 "$artifacts" >&2 || true
  fi
done

echo
echo "fuzz: ${seconds}s per target, clang-14 -fsanitize=fuzzer,address,undefined"
printf '%-14s %10s %8s %7s %7s %12s %7s  %s\n' target runs exec/s cov ft corpus rss_mb result
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: failed: ${failed[*]} (inputs under $build/artifacts/)" >&2
  exit 1
fi
