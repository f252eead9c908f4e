// The simulator's own mechanics: determinism, each fault, and the helpers a
// user asserts with.
#include <aiocluster/sim/sweep.h>
#include <aiocluster/sim/trace_hash.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "support.h"

namespace simtest {
namespace {

using aiocluster::Config;
using aiocluster::KeyValues;
using aiocluster::NodeId;
using aiocluster::sim::LinkFaults;
using aiocluster::sim::Options;
using aiocluster::sim::Transport;

Options seeded(std::uint64_t seed) {
  Options options;
  options.seed = seed;
  return options;
}

// n nodes, each seeded with node 0, one key each.
void add_cluster(Simulator& sim, std::size_t n) {
  const std::vector<NodeIndex> seeds = {0};
  for (std::size_t i = 0; i < n; ++i) {
    sim.add_node(Simulator::make_config(i, seeds), {{"index", std::to_string(i)}});
  }
}

struct Summary {
  std::uint64_t hash;
  aiocluster::sim::Counters counters;
  std::optional<Instant> converged;
};

Summary run_faulty(std::uint64_t seed, Transport transport) {
  Options options;
  options.seed = seed;
  options.transport = transport;
  options.network.loss = 0.05;
  options.network.duplicate = 0.05;
  options.network.latency = {1ms, 30ms, 0.02, 2s};
  Simulator sim(options);
  add_cluster(sim, 5);
  const auto converged = sim.run_until_converged(sim.epoch() + 60s, 100ms);
  sim.partition({0, 1}, {2, 3, 4});
  sim.run_for(20s);
  sim.heal_all();
  sim.crash(4);
  sim.pause(2, 5s);
  sim.update(1, [](aiocluster::Node& n) { n.set("late", "value"); });
  sim.run_for(20s);
  sim.restart(4);
  sim.run_for(20s);
  return {sim.trace_hash(), sim.counters(), converged};
}

TEST_SUITE("simulator") {
  TEST_CASE("the same seed replays bit for bit; another seed differs") {
    for (Transport transport : {Transport::kUdp, Transport::kTcp}) {
      CAPTURE(static_cast<int>(transport));
      const Summary a = run_faulty(11, transport);
      const Summary b = run_faulty(11, transport);
      const Summary c = run_faulty(12, transport);
      CHECK(a.hash == b.hash);
      CHECK(a.counters.messages == b.counters.messages);
      CHECK(a.counters.bytes == b.counters.bytes);
      CHECK(a.counters.lost == b.counters.lost);
      CHECK(a.converged == b.converged);
      CHECK(a.hash != c.hash);
      CHECK(a.counters.lost > 0);
      CHECK(a.counters.delivered > 0);
    }
  }

  TEST_CASE("a small cluster converges and every packet is a real exchange") {
    Simulator sim(seeded(3));
    add_cluster(sim, 4);
    CHECK_FALSE(sim.converged());  // nothing has booted yet
    const auto at = sim.run_until_converged(sim.epoch() + 30s, 100ms);
    REQUIRE(at.has_value());
    CHECK(*at - sim.epoch() < 15s);
    for (NodeIndex i = 0; i < 4; ++i) {
      REQUIRE(sim.is_running(i));
      CHECK(sim.node(i).live_nodes().size() == 4);
      for (NodeIndex j = 0; j < 4; ++j) {
        const auto* replica = sim.node(i).node_state(sim.node_id(j));
        REQUIRE(replica != nullptr);
        CHECK(replica->value("index") == std::to_string(j));
      }
    }
    const auto& c = sim.counters();
    CHECK(c.messages > 0);
    CHECK(c.lost == 0);
    CHECK(c.max_packet_bytes > 0);
    CHECK(c.oversized_packets == 0);
    // Each node counted what it received, so the packets really were decoded.
    std::uint64_t received = 0;
    for (NodeIndex i = 0; i < 4; ++i) received += sim.node(i).stats().bytes_in;
    CHECK(received > 0);
  }

  TEST_CASE("total loss delivers nothing") {
    Options options;
    options.seed = 5;
    options.network.loss = 1.0;
    Simulator sim(options);
    add_cluster(sim, 3);
    sim.run_for(20s);
    const auto& c = sim.counters();
    CHECK(c.messages > 0);
    CHECK(c.lost == c.messages);
    CHECK(c.delivered == 0);
    CHECK_FALSE(sim.converged());
  }

  TEST_CASE("duplication delivers datagrams twice; the core drops the spare copies") {
    Options options;
    options.seed = 6;
    options.network.duplicate = 1.0;
    Simulator sim(options);
    add_cluster(sim, 3);
    REQUIRE(sim.run_until_converged(sim.epoch() + 30s, 100ms));
    const auto& c = sim.counters();
    CHECK(c.duplicated == c.messages);
    CHECK(c.delivered + c.undeliverable == 2 * c.duplicated);  // some reached nodes still booting
    std::uint64_t out_of_place = 0;
    for (NodeIndex i = 0; i < 3; ++i) out_of_place += sim.node(i).stats().dropped_out_of_place;
    CHECK(out_of_place > 0);
  }

  TEST_CASE("latency: every packet takes its drawn delay within the bounds") {
    Options options;
    options.seed = 7;
    options.boot_jitter = 0s;
    options.network.latency = {40ms, 40ms};
    Simulator sim(options);
    sim.add_node(Simulator::make_config(0));  // knows nobody: never starts an exchange
    const std::vector<NodeIndex> seed = {0};
    sim.add_node(Simulator::make_config(1, seed));  // sends its Syn to node 0 at boot, t = 0
    sim.run_until(sim.epoch() + 39ms);
    CHECK(sim.node(0).stats().packets_in.syn == 0);
    sim.run_until(sim.epoch() + 40ms);
    CHECK(sim.node(0).stats().packets_in.syn == 1);
    sim.run_until(sim.epoch() + 79ms);
    CHECK(sim.node(1).stats().packets_in.synack == 0);
    sim.run_until(sim.epoch() + 80ms);
    CHECK(sim.node(1).stats().packets_in.synack == 1);

    // A range: each seed draws its own delay inside it.
    std::set<long long> arrivals;
    for (std::uint64_t s = 1; s <= 20; ++s) {
      options.seed = s;
      options.network.latency = {10ms, 50ms};
      Simulator ranged(options);
      ranged.add_node(Simulator::make_config(0));
      ranged.add_node(Simulator::make_config(1, seed));
      long long arrived = -1;
      for (int t = 0; t <= 60 && arrived < 0; ++t) {
        ranged.run_until(ranged.epoch() + std::chrono::milliseconds(t));
        if (ranged.node(0).stats().packets_in.syn > 0) arrived = t;
      }
      CHECK(arrived >= 10);
      CHECK(arrived <= 50);
      arrivals.insert(arrived);
    }
    CHECK(arrivals.size() > 5);
  }

  TEST_CASE("a two-way partition makes each side see the other dead; healing brings it back") {
    Simulator sim(seeded(8));
    add_cluster(sim, 4);
    REQUIRE(sim.run_until_converged(sim.epoch() + 30s, 100ms));
    const auto id = sim.partition({0, 1}, {2, 3});
    sim.run_for(60s);
    CHECK(sim.counters().blocked > 0);
    CHECK_FALSE(sim.node(0).is_live(sim.node_id(2)));
    CHECK_FALSE(sim.node(3).is_live(sim.node_id(1)));
    CHECK(sim.node(0).is_live(sim.node_id(1)));
    CHECK(sim.node(2).is_live(sim.node_id(3)));
    sim.heal(id);
    CHECK(sim.run_until_converged(sim.now() + 30s, 100ms).has_value());
    CHECK_FALSE(sim.is_healthy(0));
    CHECK(sim.counters().false_deaths == 0);  // partitioned nodes are not healthy
  }

  TEST_CASE("a one-way partition blocks a single direction") {
    Simulator sim(seeded(9));
    add_cluster(sim, 2);
    REQUIRE(sim.run_until_converged(sim.epoch() + 30s, 100ms));
    sim.partition({0}, {1}, /*one_way=*/true);
    const auto blocked_before = sim.counters().blocked;
    sim.run_for(60s);
    CHECK(sim.counters().blocked > blocked_before);
    // Node 1 hears nothing from 0 (every exchange 0 starts is blocked and
    // every reply 0 sends is blocked): 0 is dead to 1 and 1 to 0.
    CHECK_FALSE(sim.node(1).is_live(sim.node_id(0)));
  }

  TEST_CASE("a crash is detected and a restart is a new generation at the same address") {
    Simulator sim(seeded(10));
    add_cluster(sim, 4);
    REQUIRE(sim.run_until_converged(sim.epoch() + 30s, 100ms));
    const NodeId old_id = sim.node_id(3);
    sim.crash(3);
    CHECK_FALSE(sim.is_up(3));
    CHECK_THROWS_AS(sim.node(3), std::logic_error);
    REQUIRE(sim.crashes().size() == 1);
    CHECK(sim.crashes()[0].id == old_id);
    CHECK_FALSE(sim.crashes()[0].detected_at.has_value());
    sim.run_for(60s);
    REQUIRE(sim.crashes()[0].detected_at.has_value());
    CHECK(sim.seen_dead_by_all(old_id));
    sim.restart(3);
    const NodeId new_id = sim.node_id(3);
    CHECK(new_id.name == old_id.name);
    CHECK(new_id.gossip_advertise_addr == old_id.gossip_advertise_addr);
    CHECK(new_id.generation_id > old_id.generation_id);
    CHECK(sim.slot_of(old_id) == NodeIndex{3});
    CHECK(sim.slot_of(new_id) == NodeIndex{3});
    CHECK(sim.run_until_converged(sim.now() + 30s, 100ms).has_value());
    CHECK(sim.node(0).is_live(new_id));
    CHECK_FALSE(sim.node(0).is_live(old_id));
  }

  TEST_CASE("a paused node freezes and buffers what arrives and catches up") {
    Options options;
    options.seed = 12;
    options.pause_buffer = 2;
    Simulator sim(options);
    add_cluster(sim, 3);
    REQUIRE(sim.run_until_converged(sim.epoch() + 30s, 100ms));
    const auto heartbeat = sim.node(1).cluster_state().self().heartbeat();
    sim.pause(1, 40s);
    CHECK(sim.is_paused(1));
    CHECK_FALSE(sim.is_running(1));
    sim.run_for(39s);
    CHECK(sim.node(1).cluster_state().self().heartbeat() == heartbeat);
    CHECK(sim.counters().overflowed > 0);              // two packets fit, the rest were dropped
    CHECK_FALSE(sim.node(0).is_live(sim.node_id(1)));  // 39 s of silence
    sim.run_for(2s);
    CHECK_FALSE(sim.is_paused(1));
    CHECK(sim.node(1).cluster_state().self().heartbeat() > heartbeat);
    CHECK(sim.run_until_converged(sim.now() + 30s, 100ms).has_value());
  }

  TEST_CASE("tcp: exchanges run on connections that can be cut or time out") {
    Options options;
    options.seed = 13;
    options.transport = Transport::kTcp;
    options.network.loss = 0.2;
    Simulator sim(options);
    add_cluster(sim, 3);
    sim.run_for(30s);
    const auto& c = sim.counters();
    CHECK(c.streams_opened > 0);
    CHECK(c.streams_cut > 0);
    CHECK(c.lost == c.streams_cut);

    // A link slower than the connection timeout: replies arrive too late.
    sim.set_network(LinkFaults{{2s, 2s}, 0.0, 0.0});
    const auto timed_out = c.timed_out;
    sim.run_for(30s);
    CHECK(sim.counters().timed_out > timed_out);
  }

  TEST_CASE("tcp: a connection to a node that restarted is reset") {
    Options options;
    options.seed = 14;
    options.transport = Transport::kTcp;
    options.network.latency = {300ms, 300ms};
    Simulator sim(options);
    add_cluster(sim, 3);
    REQUIRE(sim.run_until_converged(sim.epoch() + 60s, 100ms));
    const auto undeliverable = sim.counters().undeliverable;
    // Restart node 1 every 400 ms: exchanges in flight to or from it break.
    for (int i = 0; i < 10; ++i) {
      sim.restart(1);
      sim.run_for(400ms);
    }
    CHECK(sim.counters().undeliverable > undeliverable);
  }

  TEST_CASE("per-link faults override the network for one direction") {
    Simulator sim(seeded(15));
    add_cluster(sim, 2);
    REQUIRE(sim.run_until_converged(sim.epoch() + 30s, 100ms));
    // The link is not partitioned, so both nodes stay healthy: when they
    // lose each other, that counts as a false death.
    sim.set_link(0, 1, LinkFaults{{1ms, 1ms}, 1.0, 0.0});
    sim.set_link(1, 0, LinkFaults{{1ms, 1ms}, 1.0, 0.0});
    sim.run_for(60s);
    CHECK(sim.is_healthy(0));
    CHECK(sim.counters().false_deaths > 0);
    sim.clear_link(0, 1);
    sim.clear_link(1, 0);
    CHECK(sim.run_until_converged(sim.now() + 30s, 100ms).has_value());
  }

  TEST_CASE("scheduled actions run at their time and in order") {
    Simulator sim(seeded(16));
    add_cluster(sim, 2);
    std::vector<std::pair<int, Instant>> ran;
    sim.at(sim.epoch() + 5s, [&](Simulator& s) { ran.emplace_back(2, s.now()); });
    sim.at(sim.epoch() + 2s, [&](Simulator& s) { ran.emplace_back(1, s.now()); });
    sim.at(sim.epoch() + 5s, [&](Simulator& s) { ran.emplace_back(3, s.now()); });
    sim.run_for(10s);
    REQUIRE(ran.size() == 3);
    CHECK(ran[0] == std::pair{1, sim.epoch() + 2s});
    CHECK(ran[1] == std::pair{2, sim.epoch() + 5s});
    CHECK(ran[2] == std::pair{3, sim.epoch() + 5s});
  }

  TEST_CASE("hooks see every event and every input") {
    Simulator sim(seeded(17));
    std::uint64_t events = 0;
    std::uint64_t inputs = 0;
    std::set<NodeIndex> joined_at;
    sim.on_event([&](NodeIndex i, const aiocluster::Event& ev) {
      ++events;
      if (std::holds_alternative<aiocluster::NodeJoined>(ev)) joined_at.insert(i);
    });
    sim.on_input([&](NodeIndex) { ++inputs; });
    add_cluster(sim, 3);
    REQUIRE(sim.run_until_converged(sim.epoch() + 30s, 100ms));
    CHECK(events == sim.counters().events);
    CHECK(inputs >= sim.counters().delivered);
    CHECK(joined_at == std::set<NodeIndex>{0, 1, 2});
  }

  TEST_CASE("a probe after convergence sees an observer lose a node") {
    // Probes remember which observers they found converged: a node declared
    // dead, with nothing else changed (same nodes running, same versions),
    // must still show.
    Simulator sim(seeded(26));
    add_cluster(sim, 6);
    REQUIRE(sim.run_until_converged(sim.epoch() + 30s, 100ms));
    CHECK(sim.converged());
    sim.partition({5}, {0, 1, 2, 3, 4});
    sim.run_for(30s);
    CHECK_FALSE(sim.converged());
    sim.heal_all();
    CHECK(sim.run_until_converged(sim.now() + 30s, 100ms));
  }

  TEST_CASE("threads change nothing: a run on several is the run on one") {
    struct Run {
      std::uint64_t hash;
      aiocluster::sim::Counters counters;
      std::optional<Instant> converged;
      std::vector<std::optional<Instant>> detected;
      std::uint64_t events;  // every event hook call: who, what, when
    };
    auto run = [](Transport transport, std::size_t threads) {
      Options options;
      options.seed = 23;
      options.transport = transport;
      options.threads = threads;
      options.network.loss = 0.03;
      options.network.duplicate = 0.03;
      options.network.latency = {2ms, 30ms, 0.02, 1s};
      Simulator sim(options);
      aiocluster::sim::TraceHash events;
      sim.on_event([&](NodeIndex i, const aiocluster::Event& ev) {
        events.add(i);
        events.add(ev.index());
        events.add(static_cast<std::uint64_t>(sim.now().time_since_epoch().count()));
      });
      const std::vector<NodeIndex> seeds = {0, 1};
      for (std::size_t i = 0; i < 40; ++i) {
        Config config = Simulator::make_config(i, seeds);
        config.gossip_interval = 200ms;
        sim.add_node(config, {{"index", std::to_string(i)}});
        if (i % 7 == 3) sim.set_clock(i, {std::chrono::milliseconds(i), 2000});
      }
      sim.set_link(5, 6, LinkFaults{{1ms, 3ms}, 0.0, 0.0});  // the fastest link sets the batches
      const auto converged = sim.run_until_converged(sim.epoch() + 60s, 100ms);
      sim.partition({0, 1, 2}, {20, 21});
      sim.crash(30);
      sim.crash(31);
      sim.pause(12, 3s);
      sim.update(8, [](aiocluster::Node& n) { n.set("late", "value"); });
      sim.run_for(20s);
      sim.heal_all();
      sim.restart(30);
      sim.run_for(20s);
      std::vector<std::optional<Instant>> detected;
      for (const auto& c : sim.crashes()) detected.push_back(c.detected_at);
      return Run{sim.trace_hash(), sim.counters(), converged, detected, events.value()};
    };
    for (Transport transport : {Transport::kUdp, Transport::kTcp}) {
      CAPTURE(static_cast<int>(transport));
      const Run one = run(transport, 1);
      const Run three = run(transport, 3);
      CHECK(one.counters.batched_inputs == 0);
      // Over UDP most inputs ran alongside others; over TCP only timers do
      // (frames go one at a time).
      CHECK(three.counters.batched_inputs >
            (transport == Transport::kUdp ? three.counters.delivered / 2 : 0));
      CHECK(one.hash == three.hash);
      CHECK(one.events == three.events);
      CHECK(one.converged == three.converged);
      CHECK(one.detected == three.detected);
      CHECK(one.detected.size() == 2);
      CHECK(one.detected[1].has_value());
      CHECK(one.counters.messages == three.counters.messages);
      CHECK(one.counters.bytes == three.counters.bytes);
      CHECK(one.counters.lost == three.counters.lost);
      CHECK(one.counters.false_deaths == three.counters.false_deaths);
    }
  }

  TEST_CASE("threads: a convergence probe on several answers as on one, reason included") {
    // With several threads a probe walks runs of observers at once; its
    // answer, and the observer and node it names when not converged, are
    // those of a walk in order.
    auto probes = [](std::size_t threads) {
      Options options;
      options.seed = 11;
      options.threads = threads;
      Simulator sim(options);
      const std::vector<NodeIndex> seeds = {0, 1};
      for (std::size_t i = 0; i < 100; ++i) {
        Config config = Simulator::make_config(i, seeds);
        config.gossip_interval = 200ms;
        sim.add_node(config, {{"index", std::to_string(i)}});
      }
      std::vector<std::string> answers;
      auto probe = [&] {
        sim.run_for(50ms);
        answers.push_back(sim.convergence_gap().value_or("converged"));
      };
      for (int i = 0; i < 80; ++i) probe();
      // A node's change makes every observer out of step again.
      sim.update(57, [](aiocluster::Node& n) { n.set("late", "value"); });
      for (int i = 0; i < 40; ++i) probe();
      return answers;
    };
    const std::vector<std::string> one = probes(1);
    const std::vector<std::string> three = probes(3);
    CHECK(one == three);
    CHECK(one.front() != "converged");
    CHECK(std::count(one.begin(), one.begin() + 80, "converged") > 0);
    CHECK(one[80] != "converged");
    CHECK(one.back() == "converged");
  }

  TEST_CASE("threads: a crash is detected when the last survivor sees it, not sooner") {
    // Rounds within 1.5 ms of one another and packets slower than that:
    // survivors convict the crashed node one after another in one batch.
    auto detected = [](std::size_t threads) {
      Options options = seeded(25);
      options.threads = threads;
      options.boot_jitter = std::chrono::microseconds(1500);
      options.network.latency = {5ms, 8ms};
      Simulator sim(options);
      const std::vector<NodeIndex> seeds = {0};
      for (std::size_t i = 0; i < 24; ++i) {
        Config config = Simulator::make_config(i, seeds);
        config.failure_detector.detection_time = 3s;
        sim.add_node(config);
      }
      REQUIRE(sim.run_until_converged(sim.epoch() + 30s, 100ms));
      sim.crash(23);
      sim.run_for(20s);
      return std::pair{sim.crashes().at(0).detected_at, sim.counters().batched_inputs};
    };
    const auto [one, none] = detected(1);
    const auto [two, batched] = detected(2);
    REQUIRE(one.has_value());
    CHECK(one == two);
    CHECK(none == 0);
    CHECK(batched > 0);
  }

  TEST_CASE("with a packet filter, inputs run one at a time") {
    Options options = seeded(24);
    options.threads = 2;
    Simulator sim(options);
    std::uint64_t seen = 0;
    sim.filter_packets([&](const aiocluster::sim::Arrival&) { return ++seen > 0; });
    add_cluster(sim, 10);
    REQUIRE(sim.run_until_converged(sim.epoch() + 30s, 100ms));
    CHECK(seen == sim.counters().delivered);
    CHECK(sim.counters().batched_inputs == 0);
  }

  TEST_CASE("the README example runs as written") {
    Options options;
    options.seed = 42;
    options.network.latency = {1ms, 20ms};
    options.network.loss = 0.05;
    Simulator cluster(options);
    const std::vector<NodeIndex> seeds = {0};
    for (NodeIndex i = 0; i < 5; ++i) {
      aiocluster::Config config = Simulator::make_config(i, seeds);
      config.dead_node_grace_period = 2min;
      cluster.add_node(config, {{"role", i == 0 ? "leader" : "follower"}});
    }
    aiocluster::sim::InvariantChecker checker(cluster);
    REQUIRE(cluster.run_until_converged(cluster.epoch() + 60s, 100ms));
    cluster.partition({0, 1}, {2, 3, 4});
    cluster.run_for(30s);
    cluster.heal_all();
    cluster.crash(4);
    cluster.run_for(60s);
    CHECK(cluster.crashes().back().detected_at.has_value());
    cluster.restart(4);
    CHECK(cluster.run_until_converged(cluster.now() + 30s, 100ms).has_value());
    cluster.update(2, [](aiocluster::Node& n) { n.set("load", "0.7"); });
    cluster.at(cluster.now() + 5s, [](Simulator& s) { s.pause(1, 12s); });
    cluster.run_for(30s);
    CHECK(cluster.node(3).node_state(cluster.node_id(2))->value("load") == "0.7");
    CHECK(checker.violations().empty());
    CHECK(cluster.counters().false_deaths == 0);
  }

  TEST_CASE("bad use is refused") {
    Simulator sim(seeded(18));
    sim.add_node(Simulator::make_config(0));
    CHECK_THROWS_AS(sim.add_node(Simulator::make_config(0)), std::invalid_argument);
    Config bad = Simulator::make_config(1);
    bad.cluster_id.clear();
    CHECK_THROWS_AS(sim.add_node(bad), aiocluster::ConfigError);
    CHECK_THROWS_AS(sim.run_until_converged(sim.now() + 1s, 0ms), std::invalid_argument);
    CHECK_THROWS_AS(sim.update(0, [](aiocluster::Node&) {}), std::logic_error);  // not booted yet
  }

  TEST_CASE("a packet filter sees every message by kind and drops what it refuses") {
    for (Transport transport : {Transport::kUdp, Transport::kTcp}) {
      CAPTURE(static_cast<int>(transport));
      Options options = seeded(5);
      options.transport = transport;
      Simulator sim(options);
      add_cluster(sim, 3);
      std::map<aiocluster::sim::MessageKind, int> seen;
      sim.filter_packets([&](const aiocluster::sim::Arrival& arrival) {
        ++seen[arrival.message];
        CHECK(arrival.from != arrival.to);
        CHECK_FALSE(arrival.payload.empty());
        return true;
      });
      // Node 2 never hears anything from node 0 but its Syns.
      sim.filter_packets([](const aiocluster::sim::Arrival& arrival) {
        return !(arrival.from == 0 && arrival.to == 2 &&
                 arrival.message != aiocluster::sim::MessageKind::kSyn);
      });
      sim.run_for(20s);
      using aiocluster::sim::MessageKind;
      CHECK(seen[MessageKind::kSyn] > 0);
      CHECK(seen[MessageKind::kSynAck] > 0);
      CHECK(seen[MessageKind::kAck] > 0);
      CHECK(seen[MessageKind::kUnreadable] == 0);
      CHECK(sim.counters().filtered > 0);
      // Node 2 still learns node 0's key, from node 1.
      const auto* replica = sim.node(2).node_state(sim.node_id(0));
      REQUIRE(replica != nullptr);
      CHECK(replica->value("index") == "0");
    }
  }

  TEST_CASE("sweep runs a property over seeds and prints the line that replays a failure") {
    std::ostringstream out;
    std::vector<std::uint64_t> seen;
    const auto result = aiocluster::sim::sweep(
        {4, 5, 6, 7, 8},
        [&](std::uint64_t seed) {
          seen.push_back(seed);
          return seed % 2 == 1 ? std::vector<std::string>{"odd"} : std::vector<std::string>{};
        },
        "./my_test", out, 1);
    CHECK(seen == std::vector<std::uint64_t>{4, 5});  // stops at max_failures
    CHECK(result.seeds_run == 2);
    CHECK(result.failed == std::vector<std::uint64_t>{5});
    CHECK_FALSE(result.ok());
    CHECK(out.str() == "seed 5 failed:\n  odd\nreplay: AIOCLUSTER_SIM_SEED=5 ./my_test\n");
  }
}

}  // namespace
}  // namespace simtest
