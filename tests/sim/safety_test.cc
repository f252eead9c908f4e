// Safety over many seeds: random small clusters under random faults (loss,
// duplication, reordering latency with spikes, one- and two-way partitions,
// per-link faults, crashes, restarts, pauses, key mutations with short
// tombstone and dead-node grace periods), checked after every input:
//   - the (last_gc_version, max_version) pair of every replica never decreases;
//   - a replica complete up to version m holds exactly its owner's writes up
//     to m, so a deleted key never comes back (after GC, partitions, resets);
//   - no packet exceeds max_payload_size.
#include <doctest/doctest.h>

#include "scenario.h"

namespace simtest {
namespace {

constexpr const char* kSafety =
    "safety: replicas never regress and deleted keys never return and packets fit";

// What the faults made the nodes do, summed over seeds: evidence that the
// paths the invariants guard were exercised.
struct Exercised {
  std::uint64_t tombstones_removed = 0;
  std::uint64_t resets = 0;
  std::uint64_t nodes_removed = 0;
  std::uint64_t rejected = 0;
  std::uint64_t checks = 0;
};

Problems check_safety(std::uint64_t seed, Exercised& exercised) {
  Scenario scenario(seed);
  scenario.run_faults();
  // A quiet phase too: healing and catching up exercise resets and GC.
  scenario.heal();
  scenario.sim().run_for(20s);
  Problems problems;
  const auto& checker = scenario.checker();
  for (const auto& v : checker.violations()) problems.check(false, v);
  problems.check(checker.checks() > 100,
                 "the checker saw only " + std::to_string(checker.checks()) + " inputs");
  const Simulator& sim = scenario.sim();
  const auto& c = sim.counters();
  problems.check(c.oversized_packets == 0,
                 std::to_string(c.oversized_packets) + " packets exceeded max_payload_size");
  exercised.checks += checker.checks();
  for (NodeIndex i = 0; i < sim.size(); ++i) {
    if (!sim.is_up(i)) continue;
    const auto& stats = sim.node(i).stats();
    exercised.tombstones_removed += stats.tombstones_removed;
    exercised.resets += stats.resets_applied;
    exercised.nodes_removed += stats.nodes_removed;
    exercised.rejected += stats.rejected_gap + stats.rejected_reset + stats.rejected_stale;
  }
  if (!problems.empty()) problems.list.insert(problems.list.begin(), scenario.describe());
  return problems;
}

TEST_SUITE("safety") {
  TEST_CASE(kSafety) {
    std::size_t failures = 0;
    Exercised exercised;
    const auto all = seeds();
    for (std::uint64_t seed : all) {
      const Problems problems = check_safety(seed, exercised);
      if (!problems.empty()) {
        ++failures;
        FAIL_CHECK(replay(seed, kSafety) << "\n  " << problems.joined());
        if (failures >= 3) break;
      }
    }
    CHECK(failures == 0);
    MESSAGE(all.size() << " seeds, " << exercised.checks << " node inputs checked; "
                       << exercised.tombstones_removed << " tombstones collected, "
                       << exercised.resets << " replica resets, " << exercised.nodes_removed
                       << " dead nodes removed, " << exercised.rejected
                       << " deltas rejected (gap or reset)");
    if (all.size() >= 50) {
      // Over many seeds, every guarded path must have run.
      CHECK(exercised.tombstones_removed > 0);
      CHECK(exercised.resets > 0);
      CHECK(exercised.nodes_removed > 0);
    }
  }
}

}  // namespace
}  // namespace simtest
