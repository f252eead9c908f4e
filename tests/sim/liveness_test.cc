// Liveness over many seeds: after a minute of random faults (partitions,
// per-link faults, loss, duplication, latency spikes, crashes, restarts,
// pauses, mutations), every fault is healed and the cluster must converge
// within a stated bound: every running node sees every running node live,
// with exactly its owner's keys.
#include <doctest/doctest.h>

#include <algorithm>

#include "scenario.h"

namespace simtest {
namespace {

constexpr const char* kLiveness = "liveness: after faults heal the cluster converges within 20 s";

// The bound, in virtual time after the last fault healed and the last pause
// ended. A node needs three heartbeats from a peer (its first sighting, then
// two arrivals) before phi makes it live, and a restarted node must first be
// found at its address: a few gossip intervals, with a wide margin.
constexpr Duration kBound = 20s;

Problems check_liveness(std::uint64_t seed, Duration& took) {
  ScenarioOptions options;
  options.short_dead_grace = false;  // dead nodes stay known: no removal in the way
  Scenario scenario(seed, options);
  scenario.run_faults();
  scenario.heal();
  Simulator& sim = scenario.sim();
  const Instant healed = sim.now();
  const auto converged = sim.run_until_converged(healed + kBound, 100ms);
  Problems problems;
  problems.check(converged.has_value(), "not converged " + std::to_string(ms(kBound)) +
                                            " ms after healing (" + scenario.describe() +
                                            "): " + sim.convergence_gap().value_or(""));
  if (!converged) return problems;
  took = *converged - healed;
  // Converged means equal max_versions; the values must agree too.
  for (NodeIndex o = 0; o < sim.size(); ++o) {
    for (NodeIndex s = 0; s < sim.size(); ++s) {
      const aiocluster::NodeState& owner = sim.node(s).cluster_state().self();
      const aiocluster::NodeState* replica = sim.node(o).node_state(owner.id());
      if (o == s || replica == nullptr) continue;
      owner.for_each([&](std::string_view key, const aiocluster::VersionedValue& vv) {
        const std::optional<aiocluster::VersionedValue> held = replica->find(key);
        // A tombstone (DELETED or DELETE_AFTER_TTL) is collected by each node
        // on its own clock, so a replica may have dropped it a round before
        // its owner; anything else must be identical.
        const bool ok = held ? *held == vv : vv.is_tombstone();
        problems.check(ok, "node " + std::to_string(o) + " holds " +
                               (held ? std::string(key) + "@" + std::to_string(held->version)
                                     : "no " + std::string(key)) +
                               " of node " + std::to_string(s) + ", whose own is " +
                               std::string(key) + "@" + std::to_string(vv.version) + " status " +
                               std::to_string(static_cast<int>(vv.status)));
      });
    }
  }
  for (const auto& v : scenario.checker().violations()) problems.check(false, v);
  return problems;
}

TEST_SUITE("liveness") {
  TEST_CASE(kLiveness) {
    std::size_t failures = 0;
    std::vector<long long> took_ms;
    for (std::uint64_t seed : seeds()) {
      Duration took{};
      const Problems problems = check_liveness(seed, took);
      if (!problems.empty()) {
        ++failures;
        FAIL_CHECK(replay(seed, kLiveness) << "\n  " << problems.joined());
        if (failures >= 3) break;
        continue;
      }
      took_ms.push_back(ms(took));
    }
    CHECK(failures == 0);
    if (!took_ms.empty()) {
      std::sort(took_ms.begin(), took_ms.end());
      MESSAGE("converged after healing: median " << took_ms[took_ms.size() / 2] << " ms, max "
                                                 << took_ms.back() << " ms over " << took_ms.size()
                                                 << " seeds (bound " << ms(kBound) << " ms)");
    }
  }
}

}  // namespace
}  // namespace simtest
