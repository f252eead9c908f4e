// Failure detection over many seeds:
//   - a crashed node is seen dead by every survivor within a bound, and its
//     state is removed everywhere after the dead-node grace period (not before);
//   - a restarted node (same name and address, new generation) replaces the
//     old incarnation: the new id is live everywhere, the old one dead;
//   - no healthy node is ever declared dead under 10% loss over 10 virtual
//     minutes.
#include <doctest/doctest.h>

#include <algorithm>

#include "support.h"

namespace simtest {
namespace {

using aiocluster::NodeId;
using aiocluster::Rng;
using aiocluster::sim::Options;
using aiocluster::sim::Transport;

constexpr const char* kDetection =
    "detection: a crash is seen dead by every survivor within 30 s and removed after the grace "
    "period and a restart replaces the old generation";
constexpr const char* kFalseDeaths = "false deaths: none under 10% loss over 10 virtual minutes";

// phi = time since the last heartbeat / mean interval, dead above 8: with
// heartbeats every second and the 5 s prior weighted as 5 samples, the mean
// is about 1.5 to 2 s after a minute, so about 12 to 16 s of silence.
constexpr Duration kDetectBound = 30s;
constexpr Duration kDeadGrace = 60s;
constexpr Duration kJoinBound = 30s;
// The same when some survivor joined recently: 8 x the 5 s prior, plus a round.
constexpr Duration kYoungDetectBound = 42s;

Options network_for(std::uint64_t seed, Rng& rng, double loss) {
  Options options;
  options.seed = seed;
  options.transport = rng.chance(0.5) ? Transport::kUdp : Transport::kTcp;
  options.network.latency = {1ms, std::chrono::milliseconds(1 + rng.below(30))};
  options.network.loss = loss;
  return options;
}

Problems check_detection(std::uint64_t seed, Duration& detect) {
  Rng rng(seed ^ 0xdeadULL);
  Simulator sim(network_for(seed, rng, rng.below(6) / 100.0));
  const std::size_t n = 4 + rng.below(3);
  const std::vector<NodeIndex> seeds = {0, 1};
  for (NodeIndex i = 0; i < n; ++i) {
    aiocluster::Config config = Simulator::make_config(i, seeds);
    config.dead_node_grace_period = kDeadGrace;
    sim.add_node(std::move(config), {{"slot", std::to_string(i)}});
  }
  Problems problems;
  problems.check(sim.run_until_converged(sim.epoch() + 30s, 100ms).has_value(), "never converged");
  sim.run_for(std::chrono::seconds(20 + rng.below(20)));  // let the detectors learn the interval

  // A crash: every survivor sees it dead within the bound.
  const NodeIndex victim = rng.below(n);
  const NodeId old_id = sim.node_id(victim);
  sim.crash(victim);
  const Instant crashed = sim.now();
  sim.run_for(kDetectBound);
  const auto& report = sim.crashes().back();
  problems.check(report.detected_at.has_value(), "crash of " + old_id.name +
                                                     " not detected within " +
                                                     std::to_string(ms(kDetectBound)) + " ms");
  if (report.detected_at) detect = *report.detected_at - crashed;
  problems.check(sim.seen_dead_by_all(old_id), "a survivor sees the crashed node live");
  problems.check(sim.counters().false_deaths == 0, "a healthy node was declared dead");

  // Its state stays until the grace period ends (it is only scheduled for
  // deletion at half of it), then goes everywhere.
  sim.run_until(crashed + kDeadGrace - 1s);
  problems.check(!sim.removed_everywhere(old_id), "removed before the dead-node grace period");
  sim.run_until(crashed + kDetectBound + kDeadGrace + 2s);
  problems.check(sim.removed_everywhere(old_id), "still known after the dead-node grace period");

  // A restart: same name and address, new generation, which replaces the old.
  sim.restart(victim);
  const NodeId new_id = sim.node_id(victim);
  problems.check(new_id.generation_id != old_id.generation_id, "the restart kept its generation");
  problems.check(sim.run_until_converged(sim.now() + kJoinBound, 100ms).has_value(),
                 "the restarted node was not seen live everywhere within " +
                     std::to_string(ms(kJoinBound)) + " ms");
  problems.check(sim.seen_dead_by_all(old_id), "the old generation came back");

  // A restart without a crash first: the old incarnation dies, the new joins.
  // The node restarted above is still young: its detector holds few samples,
  // so the prior (5 s, weighted as 5 samples) dominates and phi passes 8
  // only after up to 40 s of silence.
  const NodeIndex other = (victim + 1 + rng.below(n - 1)) % n;
  const NodeId before = sim.node_id(other);
  const Instant restarted = sim.now();
  sim.restart(other);
  problems.check(
      sim.run_until_converged(sim.now() + kJoinBound, 100ms).has_value(),
      "a node restarted in place did not rejoin within " + std::to_string(ms(kJoinBound)) + " ms");
  sim.run_until(restarted + kYoungDetectBound);
  const auto& replaced = sim.crashes().back();
  problems.check(replaced.id == before && replaced.detected_at.has_value(),
                 "the replaced incarnation is still seen live " +
                     std::to_string(ms(kYoungDetectBound)) + " ms after the restart");
  return problems;
}

Problems check_false_deaths(std::uint64_t seed) {
  Rng rng(seed ^ 0xfa15eULL);
  Options options = network_for(seed, rng, 0.10);
  Simulator sim(options);
  // Mostly three nodes, to keep ten virtual minutes per seed affordable;
  // every eighth seed five.
  const std::size_t n = seed % 8 == 0 ? 5 : 3;
  const std::vector<NodeIndex> seeds = {0};
  for (NodeIndex i = 0; i < n; ++i) sim.add_node(Simulator::make_config(i, seeds), {{"k", "v"}});
  std::uint64_t left = 0;
  sim.on_event([&](NodeIndex, const aiocluster::Event& ev) {
    left += std::holds_alternative<aiocluster::NodeLeft>(ev) ? 1 : 0;
  });
  sim.run_for(10min);
  Problems problems;
  problems.check(sim.counters().false_deaths == 0,
                 std::to_string(sim.counters().false_deaths) + " false deaths (" +
                     (options.transport == Transport::kUdp ? "udp" : "tcp") + ", " +
                     std::to_string(n) + " nodes)");
  problems.check(left == 0, std::to_string(left) + " NodeLeft events among healthy nodes");
  problems.check(sim.converged(), "not converged at the end");
  problems.check(sim.counters().lost > 0, "no packet was lost: the loss did not apply");
  return problems;
}

TEST_SUITE("detection") {
  TEST_CASE(kDetection) {
    std::size_t failures = 0;
    std::vector<long long> detect_ms;
    for (std::uint64_t seed : seeds()) {
      Duration detect{};
      const Problems problems = check_detection(seed, detect);
      if (!problems.empty()) {
        ++failures;
        FAIL_CHECK(replay(seed, kDetection) << "\n  " << problems.joined());
        if (failures >= 3) break;
        continue;
      }
      detect_ms.push_back(ms(detect));
    }
    CHECK(failures == 0);
    if (!detect_ms.empty()) {
      std::sort(detect_ms.begin(), detect_ms.end());
      MESSAGE("crash seen dead by every survivor after: min "
              << detect_ms.front() << " ms, median " << detect_ms[detect_ms.size() / 2]
              << " ms, max " << detect_ms.back() << " ms");
    }
  }
}

TEST_SUITE("false_deaths") {
  TEST_CASE(kFalseDeaths) {
    std::size_t failures = 0;
    for (std::uint64_t seed : seeds()) {
      const Problems problems = check_false_deaths(seed);
      if (!problems.empty()) {
        ++failures;
        FAIL_CHECK(replay(seed, kFalseDeaths) << "\n  " << problems.joined());
        if (failures >= 3) break;
      }
    }
    CHECK(failures == 0);
  }
}

}  // namespace
}  // namespace simtest
