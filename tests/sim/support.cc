#include "support.h"

#include <aiocluster/sim/sweep.h>

#include <chrono>
#include <stdexcept>

namespace simtest {

namespace {

std::string& program_name() {
  static std::string name = "sim_tests";
  return name;
}

}  // namespace

void set_program(const char* argv0) {
  if (argv0 != nullptr) program_name() = argv0;
}

std::vector<std::uint64_t> seeds() { return aiocluster::sim::seeds_from_env(200); }

std::string replay(std::uint64_t seed, std::string_view test_case) {
  // --test-case takes a comma-separated list of patterns: a name must have
  // no comma (nor a quote, for the shell) to be replayed by this line.
  if (test_case.find_first_of(",'") != std::string_view::npos) {
    throw std::logic_error("test case name unfit for a replay line: " + std::string(test_case));
  }
  return "replay: AIOCLUSTER_SIM_SEED=" + std::to_string(seed) + " " + program_name() +
         " --test-case='" + std::string(test_case) + "'";
}

long long ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

std::string Problems::joined() const {
  std::string out;
  for (const auto& p : list) {
    if (!out.empty()) out += "\n  ";
    out += p;
  }
  return out;
}

}  // namespace simtest
