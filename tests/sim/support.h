// Shared pieces of the simulation tests: which seeds a property runs over,
// the line that replays a failing seed, and small helpers to build clusters.
//
// Seeds: AIOCLUSTER_SIM_SEED=S runs the single seed S (a replay);
// otherwise AIOCLUSTER_SIM_SEEDS=N seeds (default 200) starting at
// AIOCLUSTER_SIM_FIRST_SEED (default 1). Run thousands locally with
//   AIOCLUSTER_SIM_SEEDS=5000 ctest -R sim_
#pragma once

#include <aiocluster/sim/invariants.h>
#include <aiocluster/sim/simulator.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace simtest {

using namespace std::chrono_literals;
using aiocluster::Duration;
using aiocluster::Instant;
using aiocluster::sim::NodeIndex;
using aiocluster::sim::Simulator;

// Remembers argv[0] for replay lines (set by main).
void set_program(const char* argv0);

std::vector<std::uint64_t> seeds();

// The command that reruns one seed of one test case.
std::string replay(std::uint64_t seed, std::string_view test_case);

// Milliseconds of a duration, for messages.
long long ms(Duration d);

// Failures of one seed; empty when every check passed.
struct Problems {
  std::vector<std::string> list;
  void check(bool ok, const std::string& what) {
    if (!ok) list.push_back(what);
  }
  bool empty() const { return list.empty(); }
  std::string joined() const;
};

}  // namespace simtest
