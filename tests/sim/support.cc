#include "support.h"

#include <chrono>
#include <cstdlib>
#include <stdexcept>

namespace simtest {

namespace {

std::string& program_name() {
  static std::string name = "sim_tests";
  return name;
}

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  return std::stoull(text);
}

}  // namespace

void set_program(const char* argv0) {
  if (argv0 != nullptr) program_name() = argv0;
}

std::vector<std::uint64_t> seeds() {
  if (const char* one = std::getenv("AIOCLUSTER_SIM_SEED"); one != nullptr && *one != '\0') {
    return {std::stoull(one)};
  }
  const std::uint64_t count = env_number("AIOCLUSTER_SIM_SEEDS", 200);
  const std::uint64_t first = env_number("AIOCLUSTER_SIM_FIRST_SEED", 1);
  std::vector<std::uint64_t> out;
  out.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) out.push_back(first + i);
  return out;
}

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
