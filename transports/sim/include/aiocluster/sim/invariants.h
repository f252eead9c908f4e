// Safety checks of PROTOCOL.md section 5 that a simulation can run after
// every input any node handles:
//   - the (last_gc_version, max_version) pair of every replica never
//     decreases lexicographically while the replica exists;
//   - a replica complete up to version m, with last_gc_version g, holds
//     for each key exactly the owner's latest write at or below max(m, g)
//     (so a deleted key never comes back, whatever GC, partitions, resets or
//     reordering happened), and every key whose latest write at or below
//     max(m, g) is a set at or below m. (g > m while a reset is being
//     re-sent in several deltas: the replica then holds the owner's state
//     after that collection.)
// Costs O(known nodes x keys) per input: meant for small clusters.
//
//   aiocluster::sim::InvariantChecker checker(sim);
//   sim.run_for(10min);
//   REQUIRE(checker.violations().empty());
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "aiocluster/sim/simulator.h"

namespace aiocluster::sim {

class InvariantChecker {
 public:
  // Starts watching `sim`. The checker may be destroyed before the simulator.
  explicit InvariantChecker(Simulator& sim);
  ~InvariantChecker();
  InvariantChecker(const InvariantChecker&) = delete;
  InvariantChecker& operator=(const InvariantChecker&) = delete;

  // The first violations found (at most a few dozen), each a readable line.
  const std::vector<std::string>& violations() const;
  std::uint64_t violation_count() const;
  // How many node inputs were checked.
  std::uint64_t checks() const;

 private:
  struct State;
  std::shared_ptr<State> s_;
};

}  // namespace aiocluster::sim
