// A random small cluster and a random schedule of faults, both drawn from
// one seed, for property tests in the style of TigerBeetle's VOPR: a fault
// phase (crashes, restarts, pauses, one- and two-way partitions, per-link
// loss, duplication and latency spikes, key mutations) on nodes whose clocks
// are skewed and drift, then heal() and a
// quiet phase in which the cluster must recover.
//
//   aiocluster::sim::FaultSchedule run(seed);
//   run.run_faults();
//   run.heal();
//   bool ok = run.sim().run_until_converged(run.sim().now() + 60s, 100ms).has_value();
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aiocluster/random.h"
#include "aiocluster/sim/invariants.h"
#include "aiocluster/sim/simulator.h"

namespace aiocluster::sim {

struct FaultOptions {
  // Virtual time of the fault phase.
  Duration fault_phase = std::chrono::seconds(60);
  // Fault kinds the schedule may draw.
  bool crashes = true;
  bool pauses = true;
  bool partitions = true;
  bool link_faults = true;
  bool mutations = true;
  // A dead-node grace period of 20 to 90 s, so dead nodes are scheduled for
  // deletion and removed during the run; otherwise the default (24 h).
  bool short_dead_grace = true;
  // Each node's clock off by up to clock_skew either way and running up to
  // clock_drift_ppm fast or slow (see NodeClock), drawn per node from the
  // seed; zero turns either off.
  Duration clock_skew = std::chrono::seconds(30);
  std::int64_t clock_drift_ppm = 50'000;
};

class FaultSchedule {
 public:
  // 3 to 6 nodes over UDP or TCP, the network's loss, duplication and
  // latency, grace periods, initial keys and clocks: all drawn from `seed`. The
  // InvariantChecker watches every input from the start.
  explicit FaultSchedule(std::uint64_t seed, FaultOptions options = {});

  Simulator& sim() { return *sim_; }
  const InvariantChecker& checker() const { return *checker_; }
  // The cluster and network drawn, as one line for a failure report.
  std::string describe() const;

  // Runs the fault phase: a fault drawn every 0.2 to 3 virtual seconds.
  void run_faults();
  // Heals everything: partitions, link faults, the network (no loss or
  // spikes), pauses end, crashed slots restart.
  void heal();

 private:
  void random_fault();
  NodeIndex any_slot() { return rng_.below(sim_->size()); }

  FaultOptions options_;
  Rng rng_;
  std::unique_ptr<Simulator> sim_;
  std::unique_ptr<InvariantChecker> checker_;
  std::vector<std::pair<NodeIndex, NodeIndex>> overridden_links_;
  std::vector<PartitionId> partitions_;
  std::string description_;
};

}  // namespace aiocluster::sim
