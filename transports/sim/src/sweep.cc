#include "aiocluster/sim/sweep.h"

#include <cstdlib>

namespace aiocluster::sim {

namespace {
std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  return std::stoull(text);
}
}  // namespace

std::vector<std::uint64_t> seeds_from_env(std::uint64_t count) {
  if (const char* one = std::getenv("AIOCLUSTER_SIM_SEED"); one != nullptr && *one != '\0') {
    return {std::stoull(one)};
  }
  const std::uint64_t n = env_number("AIOCLUSTER_SIM_SEEDS", count);
  const std::uint64_t first = env_number("AIOCLUSTER_SIM_FIRST_SEED", 1);
  std::vector<std::uint64_t> out;
  out.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) out.push_back(first + i);
  return out;
}

SweepResult sweep(const std::vector<std::uint64_t>& seeds, const Property& property,
                  std::string_view replay_command, std::ostream& out, std::size_t max_failures) {
  SweepResult result;
  for (std::uint64_t seed : seeds) {
    if (result.failed.size() >= max_failures) break;
    ++result.seeds_run;
    const std::vector<std::string> problems = property(seed);
    if (problems.empty()) continue;
    result.failed.push_back(seed);
    out << "seed " << seed << " failed:\n";
    for (const std::string& problem : problems) out << "  " << problem << "\n";
    out << "replay: AIOCLUSTER_SIM_SEED=" << seed << " " << replay_command << "\n";
  }
  return result;
}

}  // namespace aiocluster::sim
