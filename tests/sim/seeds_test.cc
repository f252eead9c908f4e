// Seeds are addresses, not nodes (PROTOCOL.md section 7): they may be
// unreachable, repeated, or the node itself, and a node may join long after
// the others. Over many seeds, random seed lists of that kind still give a
// converged cluster, and a late joiner is taken in within a bound.
#include <doctest/doctest.h>

#include <algorithm>

#include "support.h"

namespace simtest {
namespace {

using aiocluster::Rng;
using aiocluster::sim::Options;
using aiocluster::sim::Transport;

constexpr const char* kSeeds =
    "seeds: unreachable or repeated or own seed addresses still converge and a late joiner joins "
    "within 30 s";
constexpr Duration kConvergeBound = 40s;
constexpr Duration kJoinBound = 30s;

// Addresses where no node ever listens.
aiocluster::Address nowhere(std::uint64_t k) { return Simulator::address_of(60'000 + k); }

Problems check_seeds(std::uint64_t seed) {
  Rng rng(seed ^ 0x5eedULL);
  Options options;
  options.seed = seed;
  options.transport = rng.chance(0.5) ? Transport::kUdp : Transport::kTcp;
  options.network.loss = rng.below(6) / 100.0;
  options.network.latency = {1ms, std::chrono::milliseconds(1 + rng.below(40))};
  Simulator sim(options);
  const std::size_t n = 3 + rng.below(4);
  // One real seed node everybody can reach, plus noise in every list.
  const NodeIndex hub = rng.below(n);
  for (NodeIndex i = 0; i < n; ++i) {
    aiocluster::Config config = Simulator::make_config(i);
    for (std::uint64_t k = rng.below(3); k > 0; --k) config.seeds.push_back(nowhere(rng.below(4)));
    if (rng.chance(0.5)) config.seeds.push_back(Simulator::address_of(i));  // itself
    config.seeds.push_back(Simulator::address_of(hub));
    if (rng.chance(0.5)) config.seeds.push_back(Simulator::address_of(hub));  // repeated
    if (rng.chance(0.3)) config.seeds.push_back(Simulator::address_of(rng.below(n)));
    rng.shuffle(std::span(config.seeds));
    sim.add_node(std::move(config), {{"slot", std::to_string(i)}});
  }
  Problems problems;
  problems.check(sim.run_until_converged(sim.epoch() + kConvergeBound, 100ms).has_value(),
                 "not converged within " + std::to_string(ms(kConvergeBound)) + " ms");

  // A node that only knows unreachable seeds stays alone; nobody learns of it.
  aiocluster::Config lonely = Simulator::make_config(n);
  lonely.seeds = {nowhere(7), nowhere(8)};
  const NodeIndex lonely_slot = sim.add_node(std::move(lonely));
  sim.run_for(20s);
  problems.check(sim.node(lonely_slot).live_nodes().size() == 1,
                 "a node with dead seeds found peers");
  problems.check(sim.node(0).node_state(sim.node_id(lonely_slot)) == nullptr,
                 "the cluster learned of a node nobody could reach");
  sim.crash(lonely_slot);

  // A late joiner, seeded with one random member.
  sim.run_for(std::chrono::seconds(rng.below(30)));
  aiocluster::Config late = Simulator::make_config(n + 1);
  late.seeds = {Simulator::address_of(rng.below(n))};
  const NodeIndex late_slot = sim.add_node(std::move(late), {{"late", "yes"}});
  problems.check(
      sim.run_until_converged(sim.now() + kJoinBound, 100ms).has_value(),
      "the late joiner was not taken in within " + std::to_string(ms(kJoinBound)) + " ms");
  for (NodeIndex i = 0; i < n; ++i) {
    const auto* replica = sim.node(i).node_state(sim.node_id(late_slot));
    problems.check(replica != nullptr && replica->value("late") == "yes",
                   "node " + std::to_string(i) + " lacks the late joiner's key");
  }
  return problems;
}

TEST_SUITE("seeds") {
  TEST_CASE(kSeeds) {
    std::size_t failures = 0;
    for (std::uint64_t seed : seeds()) {
      const Problems problems = check_seeds(seed);
      if (!problems.empty()) {
        ++failures;
        FAIL_CHECK(replay(seed, kSeeds) << "\n  " << problems.joined());
        if (failures >= 3) break;
      }
    }
    CHECK(failures == 0);
  }
}

}  // namespace
}  // namespace simtest
