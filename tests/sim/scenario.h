// A random small cluster and a random schedule of faults, both drawn from
// one seed: the shape of the safety and liveness properties (TigerBeetle's
// VOPR: a safety phase with faults on, then a liveness phase with every
// fault healed).
#pragma once

#include <aiocluster/random.h>

#include <memory>
#include <string>
#include <vector>

#include "support.h"

namespace simtest {

struct ScenarioOptions {
  // Virtual time of the safety phase (faults on).
  Duration fault_phase = 60s;
  // Fault kinds the schedule may draw.
  bool crashes = true;
  bool pauses = true;
  bool partitions = true;
  bool link_faults = true;
  bool mutations = true;
  // A dead-node grace period of 20 to 90 s, so dead nodes are scheduled for
  // deletion and removed during the run; otherwise the default (24 h).
  bool short_dead_grace = true;
};

class Scenario {
 public:
  Scenario(std::uint64_t seed, ScenarioOptions options = {});

  Simulator& sim() { return *sim_; }
  const aiocluster::sim::InvariantChecker& checker() const { return *checker_; }
  std::string describe() const;

  // Runs the safety phase: faults drawn every 0.2 to 3 virtual seconds.
  void run_faults();
  // Heals everything: partitions, link faults, the network (loss, spikes),
  // pauses end, crashed slots restart.
  void heal();

 private:
  void random_fault();
  NodeIndex any_slot() { return rng_.below(sim_->size()); }

  std::uint64_t seed_;
  ScenarioOptions options_;
  aiocluster::Rng rng_;
  std::unique_ptr<Simulator> sim_;
  std::unique_ptr<aiocluster::sim::InvariantChecker> checker_;
  std::vector<std::pair<NodeIndex, NodeIndex>> overridden_links_;
  std::vector<aiocluster::sim::PartitionId> partitions_;
  std::string description_;
};

}  // namespace simtest
