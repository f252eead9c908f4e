#!/usr/bin/env bash
# Runs the benchmark suite once: the console table goes to the terminal and to
# RESULTS_DIR/bench.txt, the same run's JSON to RESULTS_DIR/bench.json, then
# report.py prints the issue's targets computed from that JSON.
#   bench/run.sh BUILD_DIR RESULTS_DIR [Google Benchmark flags...]
# e.g. bench/run.sh build/release build/bench-results --benchmark_filter=BM_Gossip
set -euo pipefail

if (($# < 2)); then
  echo "usage: $0 BUILD_DIR RESULTS_DIR [benchmark flags...]" >&2
  exit 2
fi
build=$1
results=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/bench/aiocluster-bench
if [ ! -x "$bin" ]; then
  echo "$bin not found: build it first (cmake --preset release && cmake --build --preset release)" >&2
  exit 1
fi

mkdir -p "$results"
json=$results/bench.json
rm -f "$json"
"$bin" --benchmark_out="$json" --benchmark_out_format=json "$@" | tee "$results/bench.txt"
if [ ! -s "$json" ]; then
  echo "no $json (was --benchmark_out overridden?): targets not computed" >&2
  exit 0
fi
echo
python3 "$here/report.py" "$json" | tee -a "$results/bench.txt"
