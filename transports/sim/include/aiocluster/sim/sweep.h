// Runs a property over many seeds and prints, for each seed that breaks it,
// what went wrong and the one line that replays that seed alone.
//
//   auto result = aiocluster::sim::sweep(aiocluster::sim::seeds_from_env(500),
//                                        my_property, "./my_sim_test");
//   return result.ok() ? 0 : 1;
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace aiocluster::sim {

// The seeds to run: AIOCLUSTER_SIM_SEED=S runs S alone (a replay); otherwise
// AIOCLUSTER_SIM_SEEDS=N (default `count`) seeds from AIOCLUSTER_SIM_FIRST_SEED
// (default 1).
std::vector<std::uint64_t> seeds_from_env(std::uint64_t count);

// What one seed broke; empty when the property held.
using Property = std::function<std::vector<std::string>(std::uint64_t seed)>;

struct SweepResult {
  std::size_t seeds_run = 0;
  std::vector<std::uint64_t> failed;
  bool ok() const { return failed.empty(); }
};

// Runs `property` for each seed, in order, until `max_failures` seeds have
// failed. Each failure goes to `out` with the line that replays it:
//   replay: AIOCLUSTER_SIM_SEED=17 <replay_command>
SweepResult sweep(const std::vector<std::uint64_t>& seeds, const Property& property,
                  std::string_view replay_command, std::ostream& out = std::cerr,
                  std::size_t max_failures = 3);

}  // namespace aiocluster::sim
