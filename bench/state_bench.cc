// Scuttlebutt reconciliation on a ClusterState: digests, deltas and applying
// them (PROTOCOL.md section 5), without the codec.
#include <benchmark/benchmark.h>

#include <memory>

#include "fixtures.h"
#include "heap_counter.h"
#include "profiled.h"

namespace bench {
namespace {

void report_allocations(benchmark::State& state, const HeapStats& before) {
  state.counters["allocs"] =
      benchmark::Counter(static_cast<double>(heap_stats().allocations - before.allocations),
                         benchmark::Counter::kAvgIterations);
}

std::size_t key_values(const Delta& delta) {
  std::size_t n = 0;
  for (const auto& nd : delta.node_deltas) n += nd.key_values.size();
  return n;
}

void BM_Digest(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  const ClusterState cs = make_cluster(nodes, 10);
  Rng rng(7);
  std::size_t entries = 0;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    Digest digest = profiled::digest(cs, kMaxPayload - 64, rng);
    entries = digest.node_digests.size();
    benchmark::DoNotOptimize(digest);
  }
  report_allocations(state, before);
  if (entries != nodes) state.SkipWithError("the digest left nodes out");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * entries));
}
BENCHMARK(BM_Digest)->Arg(100)->Arg(1000);

void BM_DeltaFull(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  const auto kpn = static_cast<std::size_t>(state.range(1));
  const ClusterState cs = make_cluster(nodes, kpn);
  const Digest empty;
  const PacketSizeForDelta size = ack_size();
  Rng rng(7);
  std::size_t kvs = 0;
  std::size_t bytes = 0;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    Delta delta = profiled::delta(cs, empty, size, rng);
    kvs = key_values(delta);
    bytes = size(wire_size::delta(delta));
    benchmark::DoNotOptimize(delta);
  }
  report_allocations(state, before);
  if (bytes > kMaxPayload || bytes < kMaxPayload * 9 / 10)
    state.SkipWithError("delta not filled to the budget");
  state.counters["key_values"] = static_cast<double>(kvs);
  state.counters["packet_bytes"] = static_cast<double>(bytes);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kvs));
}
BENCHMARK(BM_DeltaFull)->Args({100, 100})->Args({1000, 10});

// One node holding many keys; the peer is 10 versions behind. The work must
// follow what is stale, not what is stored.
void BM_DeltaFewStale(benchmark::State& state) {
  const auto total = static_cast<std::size_t>(state.range(0));
  const ClusterState cs = make_cluster(1, total);
  const NodeState& self = cs.self();
  Digest peer;
  peer.node_digests.push_back(
      NodeDigest{self.id(), self.heartbeat(), self.last_gc_version(), self.max_version() - 10});
  const PacketSizeForDelta size = ack_size();
  Rng rng(7);
  std::size_t kvs = 0;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    Delta delta = profiled::delta(cs, peer, size, rng);
    kvs = key_values(delta);
    benchmark::DoNotOptimize(delta);
  }
  report_allocations(state, before);
  if (kvs != 10) state.SkipWithError("expected exactly 10 stale key-values");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kvs));
}
BENCHMARK(BM_DeltaFewStale)->Arg(1000)->Arg(10'000)->Arg(100'000);

// The full delta of BM_DeltaFull applied to a node that knows nothing.
void BM_ApplyDelta(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  const auto kpn = static_cast<std::size_t>(state.range(1));
  Delta delta;
  {
    const ClusterState cs = make_cluster(nodes, kpn);
    Rng rng(7);
    delta = cs.delta_for(Digest{}, ack_size(), kMaxPayload, rng);
  }
  const NodeId observer = node_id(nodes + 1);
  std::size_t applied = 0;
  std::size_t changes = 0;
  const std::function<void(const NodeId&, KeyChange)> on_change = [&](const NodeId&,
                                                                      KeyChange change) {
    ++changes;
    benchmark::DoNotOptimize(change);
  };
  std::unique_ptr<ClusterState> cs;
  const HeapStats before = heap_stats();
  std::uint64_t untimed_allocs = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::uint64_t mark = heap_stats().allocations;
    cs.reset();
    cs = std::make_unique<ClusterState>(observer);
    untimed_allocs += heap_stats().allocations - mark;
    state.ResumeTiming();
    changes = 0;
    const ApplyReport report = profiled::apply(*cs, delta, on_change);
    applied = report.key_values;
  }
  state.counters["allocs"] = benchmark::Counter(
      static_cast<double>(heap_stats().allocations - before.allocations - untimed_allocs),
      benchmark::Counter::kAvgIterations);
  if (applied != key_values(delta) || changes != applied)
    state.SkipWithError("not every key-value applied");
  state.counters["key_values"] = static_cast<double>(applied);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * applied));
}
BENCHMARK(BM_ApplyDelta)->Args({100, 100})->Args({1000, 10});

}  // namespace
}  // namespace bench
