// A liveness pass of the phi accrual failure detector (PROTOCOL.md section
// 6): is_live for every known node, each with a window of 100 arrivals.
#include <benchmark/benchmark.h>

#include <vector>

#include "failure_detector.h"
#include "fixtures.h"

namespace bench {
namespace {

void BM_PhiLiveness(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  FailureDetector detector{FailureDetectorConfig{}};
  std::vector<FailureDetector::Slot> ids;
  for (std::size_t i = 1; i <= nodes; ++i) ids.push_back(static_cast<FailureDetector::Slot>(i));
  Instant now = t0();
  for (int beat = 0; beat < 100; ++beat) {
    now += 1s;
    for (const auto id : ids) detector.report_heartbeat(id, now);
  }
  now += 500ms;
  std::size_t live = 0;
  for (auto _ : state) {
    live = 0;
    for (const auto id : ids) live += detector.is_live(id, now) ? 1 : 0;
    benchmark::DoNotOptimize(live);
  }
  if (live != nodes) state.SkipWithError("every node should be live");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * nodes));
}
BENCHMARK(BM_PhiLiveness)->Arg(100)->Arg(1000);

}  // namespace
}  // namespace bench
