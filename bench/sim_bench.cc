// One simulated gossip round of a whole cluster on the deterministic
// simulator (transports/sim): every node runs its round and every exchange
// it starts completes over a UDP-like network with 1-10 ms latency and no
// loss. The cluster has converged before timing starts, so this is the cost
// of a steady-state round: each node sends gossip_count Syns.
#include <aiocluster/sim/simulator.h>
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "heap_counter.h"

namespace bench {
namespace {

using namespace std::chrono_literals;
namespace sim = aiocluster::sim;

void BM_SimRound(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  sim::Options options;
  options.seed = 1;
  sim::Simulator simulator(options);
  const std::vector<sim::NodeIndex> seeds = {0, 1, 2};
  for (std::size_t i = 0; i < nodes; ++i) {
    simulator.add_node(sim::Simulator::make_config(i, seeds),
                       {{"role", i % 3 == 0 ? "db" : "web"}, {"index", std::to_string(i)}});
  }
  const auto converged = simulator.run_until_converged(simulator.now() + 600s, 5s);
  if (!converged) {
    state.SkipWithError("the cluster did not converge within 600 simulated seconds");
    return;
  }
  const aiocluster::Duration round = sim::Simulator::make_config(0).gossip_interval;
  const sim::Counters start = simulator.counters();
  const HeapStats heap_start = heap_stats();
  for (auto _ : state) simulator.run_for(round);
  const sim::Counters& end = simulator.counters();
  const auto rounds = static_cast<double>(state.iterations());
  state.counters["messages"] = static_cast<double>(end.messages - start.messages) / rounds;
  state.counters["bytes"] = static_cast<double>(end.bytes - start.bytes) / rounds;
  state.counters["allocs"] =
      static_cast<double>(heap_stats().allocations - heap_start.allocations) / rounds;
  state.counters["converged_s"] =
      std::chrono::duration<double>(*converged - simulator.epoch()).count();
  if (end.false_deaths != 0) state.SkipWithError("a healthy node was declared dead");
}
BENCHMARK(BM_SimRound)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace bench
