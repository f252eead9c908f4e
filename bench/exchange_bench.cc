// One whole gossip exchange between two in-memory Nodes: node 0 runs a round
// (handle_timeout), its Syn goes to node 1 over a stream, node 1 answers a
// SynAck, node 0 an Ack; every packet is encoded and decoded, and both nodes'
// events are drained, as a driver would.
//   BM_GossipExchange/<nodes>/<keys_per_node>               nothing new
//   BM_GossipExchange/<nodes>/<keys_per_node>/fresh_keys:10  node 0 updates 10
//       of its keys before each exchange (untimed), the Ack carries them
// The other nodes are live: every 10 exchanges (untimed) a third party brings
// both nodes their newer heartbeats, as gossip from the rest of the cluster
// would.
#include <benchmark/benchmark.h>

#include <string>

#include "fixtures.h"
#include "heap_counter.h"
#include "profiled.h"

namespace bench {
namespace {

constexpr std::size_t kFreshKeys = 10;

void run_exchange(benchmark::State& state, std::size_t nodes, std::size_t kpn, std::size_t fresh) {
  NodePair pair(nodes, kpn);
  std::size_t bytes = 0;
  std::uint64_t round = 0;
  std::uint64_t untimed_allocs = 0;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    if (fresh > 0 || pair.others_due()) {
      state.PauseTiming();
      const std::uint64_t mark = heap_stats().allocations;
      if (pair.others_due()) pair.refresh_others();
      if (fresh > 0) {
        ++round;
        for (std::size_t j = 0; j < fresh; ++j) {
          const std::size_t k = (round * fresh + j) % kpn;
          pair.a().set(key_name(k), value_of(k, round));
        }
      }
      untimed_allocs += heap_stats().allocations - mark;
      state.ResumeTiming();
    }
    bytes = profiled::exchange(pair);
    if (bytes == 0) {
      state.SkipWithError("the exchange broke off");
      break;
    }
  }
  const HeapStats after = heap_stats();
  state.counters["allocs"] = benchmark::Counter(
      static_cast<double>(after.allocations - before.allocations - untimed_allocs),
      benchmark::Counter::kAvgIterations);
  state.counters["bytes"] = static_cast<double>(bytes);
  // Node 1 must hold node 0's state as of the last exchange.
  const NodeState* a_at_b = pair.b().node_state(pair.a().self_id());
  if (a_at_b == nullptr || a_at_b->max_version() != pair.a().cluster_state().self().max_version() ||
      (fresh > 0 && pair.b().stats().key_values_applied < round * fresh)) {
    state.SkipWithError("node 1 did not receive node 0's updates");
  }
  if (pair.a().live_nodes().size() != nodes - 1)
    state.SkipWithError("node 0 should see every node but 1 live");
}

const bool kRegistered = [] {
  const std::pair<std::size_t, std::size_t> shapes[] = {{10, 10}, {100, 10}, {1000, 10}};
  for (const auto& [nodes, kpn] : shapes) {
    const std::string base =
        "BM_GossipExchange/" + std::to_string(nodes) + "/" + std::to_string(kpn);
    benchmark::RegisterBenchmark(base.c_str(), [nodes = nodes, kpn = kpn](benchmark::State& s) {
      run_exchange(s, nodes, kpn, 0);
    });
    benchmark::RegisterBenchmark((base + "/fresh_keys:" + std::to_string(kFreshKeys)).c_str(),
                                 [nodes = nodes, kpn = kpn](benchmark::State& s) {
                                   run_exchange(s, nodes, kpn, kFreshKeys);
                                 });
  }
  return true;
}();

}  // namespace
}  // namespace bench
