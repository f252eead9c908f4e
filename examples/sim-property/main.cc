// A property test of a whole cluster over many seeds, built from the public
// simulation kit alone: whatever faults a seed draws, once they heal every
// node converges within a minute of virtual time and no invariant breaks.
//
// Usage: aiocluster-sim-property   (AIOCLUSTER_SIM_SEEDS=N, AIOCLUSTER_SIM_SEED=S)
#include <aiocluster/sim/faults.h>
#include <aiocluster/sim/sweep.h>

#include <iostream>

using namespace std::chrono_literals;
namespace sim = aiocluster::sim;

std::vector<std::string> heals_and_converges(std::uint64_t seed) {
  sim::FaultOptions faults;
  faults.fault_phase = 20s;
  sim::FaultSchedule run(seed, faults);
  run.run_faults();
  run.heal();
  std::vector<std::string> problems = run.checker().violations();
  if (!run.sim().run_until_converged(run.sim().now() + 60s, 500ms)) {
    problems.push_back("no convergence: " + run.sim().convergence_gap().value_or("?"));
  }
  if (!problems.empty()) problems.insert(problems.begin(), run.describe());
  return problems;
}

int main(int, char** argv) {
  const sim::SweepResult result =
      sim::sweep(sim::seeds_from_env(500), heals_and_converges, argv[0]);
  std::cout << result.seeds_run << " seeds, " << result.failed.size() << " failed\n";
  return result.ok() ? 0 : 1;
}
