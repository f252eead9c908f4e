// Pauses of a node's own process and detection stated in seconds, over many
// seeds:
//   - a node paused for several detection times declares nobody dead when
//     it resumes (its own silence counts against no one), and the same run
//     without pause awareness does: the check can fail; every clock skewed
//     and drifting;
//   - a node that really crashed while an observer slept is still convicted
//     once the observer has had a detection time of its own;
//   - a crash is seen dead by every survivor within about the stated
//     failure_detector.detection_time, with either phi model.
#include <doctest/doctest.h>

#include <algorithm>

#include "support.h"

namespace simtest {
namespace {

using aiocluster::PhiModel;
using aiocluster::Rng;
using aiocluster::sim::Options;
using aiocluster::sim::Transport;

constexpr const char* kPausedBlameNobody =
    "pauses: a node paused for 5 detection times declares nobody dead when it resumes";
constexpr const char* kCrashDuringPause =
    "pauses: a crash during an observer's pause is convicted a detection time after it resumes";
constexpr const char* kStatedDetection =
    "pauses: a crash is seen dead everywhere within 1.3 s of a stated 1 s detection time";

constexpr Duration kInterval = 100ms;
constexpr Duration kDetection = 1s;

// At most 12 seeds: each runs a 10-node cluster at 10 rounds a second for
// tens of virtual seconds.
std::vector<std::uint64_t> few_seeds() {
  std::vector<std::uint64_t> all = seeds();
  if (all.size() > 12) all.resize(12);
  return all;
}

Simulator make_cluster(std::uint64_t seed, Rng& rng, PhiModel model, bool pause_aware) {
  Options options;
  options.seed = seed;
  options.transport = rng.chance(0.5) ? Transport::kUdp : Transport::kTcp;
  options.network.latency = {1ms, std::chrono::milliseconds(2 + rng.below(8))};
  options.boot_jitter = kInterval;
  // A resumed node runs its timer before it reads its socket (what arrived
  // meanwhile is lost): it judges its peers on what it knew before it slept.
  options.pause_buffer = 0;
  Simulator sim(options);
  const std::vector<NodeIndex> seeds = {0, 1};
  for (NodeIndex i = 0; i < 10; ++i) {
    aiocluster::Config config = Simulator::make_config(i, seeds);
    config.gossip_interval = kInterval;
    config.failure_detector.model = model;
    config.failure_detector.detection_time = kDetection;
    if (!pause_aware) config.failure_detector.local_pause_threshold = Duration::max();
    sim.add_node(std::move(config), {{"slot", std::to_string(i)}});
  }
  return sim;
}

PhiModel model_of(std::uint64_t seed) { return seed % 2 ? PhiModel::kLinear : PhiModel::kNormal; }

// Pauses two nodes for 5 s once the cluster settled, and runs on 20 s.
// Every node's clock is off by up to 30 s and up to 5% fast or slow (as
// FaultSchedule draws them): a pause lasts its true time, and the paused node
// notices it by the gap its own clock shows.
struct PauseRun {
  aiocluster::sim::Counters counters;
  std::uint64_t local_pauses = 0;
  std::uint64_t deferred = 0;
  bool paused_seen_dead = false;
  bool converged = false;
};

PauseRun run_pauses(std::uint64_t seed, bool pause_aware) {
  Rng rng(seed ^ 0x9a05eULL);
  Simulator sim = make_cluster(seed, rng, model_of(seed), pause_aware);
  Rng clocks(seed ^ 0xc10c4ULL);  // apart, so the other draws stay as they were
  for (NodeIndex i = 0; i < sim.size(); ++i) {
    const auto skew = std::chrono::milliseconds(clocks.below(60'001)) - 30s;
    sim.set_clock(i, {skew, static_cast<std::int64_t>(clocks.below(100'001)) - 50'000});
  }
  sim.run_until_converged(sim.epoch() + 10s, kInterval);
  sim.run_for(5s);
  const NodeIndex a = rng.below(sim.size());
  const NodeIndex b = (a + 1 + rng.below(sim.size() - 1)) % sim.size();
  sim.pause(a, 5s);
  sim.pause(b, 5s);
  PauseRun run;
  sim.run_for(4s);
  run.paused_seen_dead = sim.seen_dead_by_all(sim.node_id(a));
  sim.run_for(8s);
  run.counters = sim.counters();
  for (NodeIndex i : {a, b}) {
    run.local_pauses += sim.node(i).stats().local_pauses;
    run.deferred += sim.node(i).stats().convictions_deferred;
  }
  run.converged = sim.converged();
  return run;
}

Problems check_paused_blame_nobody(std::uint64_t seed) {
  Problems problems;
  const PauseRun aware = run_pauses(seed, true);
  problems.check(aware.counters.false_deaths_by_paused == 0,
                 std::to_string(aware.counters.false_deaths_by_paused) +
                     " healthy nodes declared dead by a paused one");
  problems.check(aware.counters.false_deaths == 0,
                 std::to_string(aware.counters.false_deaths) + " false deaths by healthy nodes");
  problems.check(
      aware.local_pauses == 2,
      "the paused nodes noticed " + std::to_string(aware.local_pauses) + " local pauses, not 2");
  problems.check(aware.deferred > 0, "no conviction was deferred");
  problems.check(aware.paused_seen_dead, "the others did not see a paused node dead");
  problems.check(aware.converged, "not converged 7 s after the pauses");
  const PauseRun unaware = run_pauses(seed, false);
  problems.check(unaware.counters.false_deaths_by_paused > 0,
                 "without pause awareness the paused nodes blamed nobody either: the scenario "
                 "does not test anything");
  return problems;
}

Problems check_crash_during_pause(std::uint64_t seed) {
  Rng rng(seed ^ 0xc4a5ULL);
  Simulator sim = make_cluster(seed, rng, model_of(seed), true);
  sim.run_until_converged(sim.epoch() + 10s, kInterval);
  sim.run_for(5s);
  const NodeIndex observer = rng.below(sim.size());
  const NodeIndex victim = (observer + 1 + rng.below(sim.size() - 1)) % sim.size();
  const aiocluster::NodeId victim_id = sim.node_id(victim);
  sim.pause(observer, 5s);
  sim.run_for(1s);
  sim.crash(victim);
  sim.run_for(4s);  // the observer resumes now
  Problems problems;
  problems.check(sim.node(observer).is_live(victim_id),
                 "the observer convicted the victim at once on resuming");
  sim.run_for(kDetection + 500ms);
  problems.check(!sim.node(observer).is_live(victim_id),
                 "the victim still live for the observer 1.5 s after it resumed");
  problems.check(sim.counters().false_deaths_by_paused == 0, "the observer blamed a healthy node");
  return problems;
}

Problems check_stated_detection(std::uint64_t seed, PhiModel model, Duration& detect) {
  Rng rng(seed ^ 0xde7ecULL);
  Simulator sim = make_cluster(seed, rng, model, true);
  sim.run_until_converged(sim.epoch() + 10s, kInterval);
  sim.run_for(std::chrono::seconds(5 + rng.below(10)));
  sim.crash(rng.below(sim.size()));
  const Instant crashed = sim.now();
  sim.run_for(3s);
  Problems problems;
  const auto& report = sim.crashes().back();
  problems.check(report.detected_at.has_value(), "the crash was not detected within 3 s");
  if (report.detected_at) {
    detect = *report.detected_at - crashed;
    problems.check(detect <= 1300ms, "detected after " + std::to_string(ms(detect)) + " ms");
  }
  problems.check(sim.counters().false_deaths == 0, "a healthy node was declared dead");
  return problems;
}

template <class Check>
void sweep(const char* name, Check check) {
  std::size_t failures = 0;
  for (std::uint64_t seed : few_seeds()) {
    const Problems problems = check(seed);
    if (!problems.empty()) {
      ++failures;
      FAIL_CHECK(replay(seed, name) << "\n  " << problems.joined());
      if (failures >= 3) break;
    }
  }
  CHECK(failures == 0);
}

TEST_SUITE("pauses") {
  TEST_CASE(kPausedBlameNobody) { sweep(kPausedBlameNobody, check_paused_blame_nobody); }

  TEST_CASE(kCrashDuringPause) { sweep(kCrashDuringPause, check_crash_during_pause); }

  TEST_CASE(kStatedDetection) {
    for (PhiModel model : {PhiModel::kLinear, PhiModel::kNormal}) {
      std::vector<long long> detect_ms;
      sweep(kStatedDetection, [&](std::uint64_t seed) {
        Duration detect{};
        Problems problems = check_stated_detection(seed, model, detect);
        detect_ms.push_back(ms(detect));
        return problems;
      });
      std::sort(detect_ms.begin(), detect_ms.end());
      MESSAGE((model == PhiModel::kLinear ? "linear" : "normal")
              << " phi, stated 1 s: seen dead by all after median "
              << detect_ms[detect_ms.size() / 2] << " ms, max " << detect_ms.back() << " ms");
    }
  }
}

}  // namespace
}  // namespace simtest
