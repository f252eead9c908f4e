// Heap held by replicated state, counted by the replaced operator new
// (heap_counter.cc), reported as counters; the time column is only the time
// to build the state.
//   BM_MemoryPerKey/<nodes>/<keys_per_node>: a node replicating that many
//     small key-values (applied as deltas): heap bytes per key-value, and the
//     overhead beyond the key and value bytes themselves.
//   BM_MemoryPerNode/<nodes>: a Node that hears about that many nodes through
//     digests: heap bytes per known node, once new and once its failure
//     detector window is full (sampling_window_size arrivals; the per-node
//     cost does not depend on the count, and 1,000 nodes would take 1,000
//     rounds of 1,000-node digests to fill).
#include <benchmark/benchmark.h>

#include <vector>

#include "fixtures.h"
#include "heap_counter.h"

namespace bench {
namespace {

Delta replica_delta(std::size_t nodes, std::size_t kpn) {
  Delta delta;
  for (std::size_t i = 1; i <= nodes; ++i) {
    NodeDelta nd{node_id(i), 0, 0, {}, kpn};
    nd.key_values.reserve(kpn);
    for (std::size_t k = 0; k < kpn; ++k) {
      nd.key_values.push_back(KeyValueUpdate{key_name(k), value_of(k), k + 1, KeyStatus::kSet});
    }
    delta.node_deltas.push_back(std::move(nd));
  }
  return delta;
}

std::int64_t heap_of_replica(const Delta& delta, std::size_t* kv_bytes) {
  const auto no_events = [](const NodeId&, KeyChange) {};
  const std::int64_t before = heap_stats().live_bytes;
  ClusterState cs(node_id(0));
  const ApplyReport report = cs.apply(delta, t0(), ApplyLimits{}, no_events);
  const std::int64_t held = heap_stats().live_bytes - before;
  if (kv_bytes != nullptr) {
    *kv_bytes = 0;
    for (const auto& [id, st] : cs.nodes()) {
      st.for_each(
          [&](std::string_view key, const auto& vv) { *kv_bytes += key.size() + vv.value.size(); });
    }
  }
  benchmark::DoNotOptimize(report);
  return held;
}

void BM_MemoryPerKey(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  const auto kpn = static_cast<std::size_t>(state.range(1));
  const Delta empty = replica_delta(nodes, 0);
  const Delta full = replica_delta(nodes, kpn);
  double per_key = 0;
  double kv = 0;
  std::int64_t without_keys = 0;
  std::int64_t with_keys = 0;
  for (auto _ : state) {
    std::size_t kv_bytes = 0;
    without_keys = heap_of_replica(empty, nullptr);
    with_keys = heap_of_replica(full, &kv_bytes);
    const auto keys = static_cast<double>(nodes * kpn);
    per_key = static_cast<double>(with_keys - without_keys) / keys;
    kv = static_cast<double>(kv_bytes) / keys;
  }
  // The difference of two heaps: a replica without keys that costs less
  // raises it. Both are shown.
  state.counters["heap_with_keys"] = static_cast<double>(with_keys);
  state.counters["heap_without_keys"] = static_cast<double>(without_keys);
  state.counters["heap_bytes_per_key"] = per_key;
  state.counters["key_value_bytes"] = kv;
  state.counters["overhead_bytes_per_key"] = per_key - kv;
}
BENCHMARK(BM_MemoryPerKey)
    ->Args({1, 1000})
    ->Args({1, 100'000})
    ->Args({100, 100})
    ->Args({1000, 10})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

double bytes_per_known_node(std::size_t nodes, std::size_t rounds) {
  std::int64_t held = 0;
  {
    Node node(make_config(0), t0(), 1);
    while (node.poll_event()) {
    }
    const std::int64_t empty = heap_stats().live_bytes;
    for (std::size_t r = 1; r <= rounds; ++r) {
      const Instant now = t0() + r * 1s;
      const Bytes syn = announce(1, nodes + 1, 0, r);
      benchmark::DoNotOptimize(node.handle_packet(syn, now, Inbound{Stage::kStreamOpen}));
      node.handle_timeout(now);
      while (node.poll_transmit()) {
      }
      while (node.poll_event()) {
      }
    }
    held = heap_stats().live_bytes - empty;
    if (node.cluster_state().size() != nodes + 1) return -1;
  }
  return static_cast<double>(held) / static_cast<double>(nodes);
}

void BM_MemoryPerNode(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  const std::size_t window = FailureDetectorConfig{}.sampling_window_size;
  double fresh = 0;
  double full = 0;
  for (auto _ : state) {
    fresh = bytes_per_known_node(nodes, 3);
    full = bytes_per_known_node(nodes, window + 2);
  }
  if (fresh < 0 || full < 0) state.SkipWithError("the node did not learn every node");
  state.counters["bytes_per_node_new"] = fresh;
  state.counters["bytes_per_node"] = full;
}
BENCHMARK(BM_MemoryPerNode)->Arg(100)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace bench
