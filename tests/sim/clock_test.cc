// Per-node clocks: each node sees only its own skewed, drifting clock, and
// the cluster still converges and detects crashes without false deaths.
#include <aiocluster/sim/faults.h>
#include <doctest/doctest.h>

#include <array>
#include <map>

#include "support.h"

namespace simtest {
namespace {

using aiocluster::sim::MessageKind;
using aiocluster::sim::NodeClock;
using aiocluster::sim::Options;
using aiocluster::sim::Transport;

// Seconds apart, some behind the others, 5% fast or slow.
constexpr std::array<NodeClock, 6> kClocks = {{
    {30s, 50'000},
    {-45s, -50'000},
    {0s, 0},
    {120s, 30'000},
    {-3s, -40'000},
    {10s, 10'000},
}};

std::uint64_t heartbeat(const Simulator& sim, NodeIndex i) {
  return sim.node(i).cluster_state().self().heartbeat();
}

// How many exchanges each node started (Syns that reached their peer).
std::map<NodeIndex, std::uint64_t> count_syns(Simulator& sim) {
  auto counts = std::make_shared<std::map<NodeIndex, std::uint64_t>>();
  sim.filter_packets([counts](const aiocluster::sim::Arrival& a) {
    if (a.message == MessageKind::kSyn) ++(*counts)[a.from];
    return true;
  });
  sim.run_for(200s);
  return *counts;
}

TEST_SUITE("clocks") {
  TEST_CASE("skewed and drifting clocks: convergence, detection, no false deaths") {
    for (Transport transport : {Transport::kUdp, Transport::kTcp}) {
      CAPTURE(static_cast<int>(transport));
      Options options;
      options.seed = 31;
      options.transport = transport;
      options.network.loss = 0.05;
      options.network.latency = {1ms, 30ms};
      Simulator sim(options);
      for (NodeIndex i = 0; i < kClocks.size(); ++i) {
        sim.add_node(Simulator::make_config(i, std::vector<NodeIndex>{0}), {{"k", "v"}});
        sim.set_clock(i, kClocks[i]);
      }
      aiocluster::sim::InvariantChecker checker(sim);
      REQUIRE(sim.run_until_converged(sim.epoch() + 60s, 100ms).has_value());
      sim.run_for(10min);
      CHECK(sim.converged());
      CHECK(sim.counters().false_deaths == 0);
      sim.update(4, [](aiocluster::Node& n) { n.set("late", "x"); });
      sim.crash(2);
      sim.run_for(2min);
      REQUIRE(sim.crashes().size() == 1);
      CHECK(sim.crashes()[0].detected_at.has_value());
      CHECK(sim.converged());
      CHECK(sim.node(1).node_state(sim.node_id(4))->value("late") == "x");
      CHECK(sim.counters().false_deaths == 0);
      CHECK(checker.violations().empty());
    }
  }

  TEST_CASE("a node reads its own clock: offset and rate") {
    Options options;
    options.seed = 5;
    options.boot_jitter = 0s;
    Simulator sim(options);
    for (NodeIndex i = 0; i < 3; ++i) sim.add_node(Simulator::make_config(i, {}));
    sim.set_clock(0, {-45s, -500'000});  // half speed, behind
    sim.set_clock(1, {120s, 0});
    CHECK(sim.local_now(0) == sim.now() - 45s);
    CHECK(sim.local_now(1) == sim.now() + 120s);
    CHECK(sim.local_now(2) == sim.now());
    sim.run_for(1s);  // boots, reading the generation id off its clock
    CHECK(sim.node_id(1).generation_id - sim.node_id(2).generation_id ==
          static_cast<std::uint64_t>(Duration(120s).count()));
    CHECK(sim.node_id(2).generation_id - sim.node_id(0).generation_id ==
          static_cast<std::uint64_t>(Duration(45s).count()));
    sim.run_for(99s);
    CHECK(sim.local_now(0) == sim.now() - 45s - 50s);
    // One gossip round per second of its own clock: the slow node beats half as often.
    CHECK(heartbeat(sim, 2) >= 99);
    CHECK(heartbeat(sim, 1) == heartbeat(sim, 2));
    CHECK(heartbeat(sim, 0) * 2 <= heartbeat(sim, 2) + 2);
    CHECK(heartbeat(sim, 0) * 2 + 2 >= heartbeat(sim, 2));
    CHECK(sim.clock(0).drift_ppm == -500'000);
  }

  TEST_CASE("a slow clock gossips less per true second, a fast one more; set_clock re-times") {
    Options options;
    options.seed = 9;
    Simulator sim(options);
    const std::vector<NodeIndex> seeds = {0, 1, 2};
    for (NodeIndex i = 0; i < 3; ++i) sim.add_node(Simulator::make_config(i, seeds));
    sim.set_clock(0, {0s, -250'000});  // 25% slow
    sim.set_clock(1, {0s, 250'000});   // 25% fast
    REQUIRE(sim.run_until_converged(sim.epoch() + 30s, 100ms).has_value());
    auto syns = count_syns(sim);  // 200 true seconds: 200 rounds at the true rate
    REQUIRE(syns[2] >= 190);
    // The same Syns per round, so the rounds' ratio: 150 and 250 to 200.
    const auto percent_of_true = [&](NodeIndex i) { return syns[i] * 100 / syns[2]; };
    CHECK(percent_of_true(0) >= 72);
    CHECK(percent_of_true(0) <= 78);
    CHECK(percent_of_true(1) >= 122);
    CHECK(percent_of_true(1) <= 128);
    // Mid-run: node 0's pending round is re-timed by its new, fast clock.
    sim.set_clock(0, {sim.local_now(0) - sim.now(), 1'000'000 - 1});
    const std::uint64_t before = heartbeat(sim, 0);
    sim.run_for(10s);
    CHECK(heartbeat(sim, 0) - before >= 19);
    CHECK(sim.counters().false_deaths == 0);
  }

  TEST_CASE("clocks replay: same seed and clocks, same trace; other clocks, another") {
    auto run = [](NodeClock clock) {
      Options options;
      options.seed = 77;
      options.network.loss = 0.1;
      Simulator sim(options);
      for (NodeIndex i = 0; i < 4; ++i) {
        sim.add_node(Simulator::make_config(i, std::vector<NodeIndex>{0}));
      }
      sim.set_clock(3, clock);
      sim.run_for(60s);
      return sim.trace_hash();
    };
    CHECK(run({7s, 20'000}) == run({7s, 20'000}));
    CHECK(run({7s, 20'000}) != run({7s, 20'001}));
    CHECK(run({7s, 20'000}) != run({-7s, 20'000}));
  }

  TEST_CASE("fault schedules draw clocks from the seed, or none when told") {
    aiocluster::sim::FaultSchedule with(12);
    aiocluster::sim::FaultSchedule again(12);
    aiocluster::sim::FaultOptions none;
    none.clock_skew = Duration::zero();
    none.clock_drift_ppm = 0;
    aiocluster::sim::FaultSchedule without(12, none);
    CHECK(with.describe().find("clocks") != std::string::npos);
    CHECK(without.describe().find("clocks") == std::string::npos);
    bool skewed = false;
    for (NodeIndex i = 0; i < with.sim().size(); ++i) {
      const NodeClock c = with.sim().clock(i);
      CHECK(c.offset == again.sim().clock(i).offset);
      CHECK(c.drift_ppm == again.sim().clock(i).drift_ppm);
      CHECK(c.offset <= 30s);
      CHECK(c.offset >= -30s);
      CHECK(c.drift_ppm <= 50'000);
      CHECK(c.drift_ppm >= -50'000);
      skewed = skewed || c.offset != Duration::zero();
      CHECK(without.sim().clock(i).offset == Duration::zero());
      CHECK(without.sim().clock(i).drift_ppm == 0);
    }
    CHECK(skewed);
  }

  TEST_CASE("a clock that stops or runs backwards is refused") {
    Simulator sim;
    sim.add_node(Simulator::make_config(0));
    CHECK_THROWS_AS(sim.set_clock(0, {0s, -1'000'000}), std::invalid_argument);
    CHECK_THROWS_AS(sim.set_clock(0, {0s, 1'000'000}), std::invalid_argument);
    CHECK_THROWS_AS(sim.set_clock(1, {}), std::out_of_range);
  }
}

}  // namespace
}  // namespace simtest
