// The behavioural real-socket tests every driver must pass, on 127.0.0.1
// with ephemeral ports and rounds of tens of milliseconds. Conditions are
// polled with generous timeouts; nothing asserts on timing.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <set>

#include "aiocluster/codec.h"
#include "aiocluster/common/waits.h"
#include "checks.h"
#include "harness.h"
#include "raw_socket.h"
#include "test_pki.h"

namespace aiocluster::conformance {

Config make_config(const NodeSpec& spec) {
  static std::atomic<std::uint64_t> counter{0};
  Config config;
  config.cluster_id = spec.cluster_id;
  const auto generation =
      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) +
      ++counter;
  config.node_id = NodeId{spec.name, spec.driver_generation ? 0 : generation,
                          Address{spec.host, spec.port}, spec.tls_name};
  config.max_inbound_payload_size = spec.max_inbound_payload_size;
  config.seeds = spec.seeds;
  config.gossip_interval = spec.gossip_interval;
  // A prior of a few rounds, so nodes turn live after a handful of rounds;
  // a threshold twice the default, so a loaded machine (sanitizers, parallel
  // builds) stalling the loop for a few rounds causes no false death, while
  // a silent node is still declared dead within a second or two.
  config.failure_detector.initial_interval = spec.gossip_interval * 4;
  config.failure_detector.phi_threshold = 16.0;
  config.exchange_timeout = spec.io_timeout;
  config.limits = spec.limits;
  config.marked_for_deletion_grace_period = spec.tombstone_grace;
  config.extra_liveness = spec.extra_liveness;
  config.sealing = spec.sealing;
  return config;
}

namespace {

// TLS nodes need a certificate each, named after their tls_name.
Nodes start_tls_chain(Loop& loop, TestPki& pki, std::size_t count, Transport transport) {
  Nodes nodes;
  for (std::size_t i = 0; i < count; ++i) {
    NodeSpec spec;
    spec.transport = transport;
    spec.name = "tls" + std::to_string(i + 1);
    spec.tls_name = spec.name + ".test";
    spec.tls = pki.issue(spec.name, {spec.tls_name});
    spec.key_values.emplace_back("id", spec.name);
    if (!nodes.empty()) spec.seeds = {nodes.back()->address()};
    nodes.push_back(loop.start(spec));
  }
  return nodes;
}

}  // namespace

TEST_SUITE("conformance") {
  TEST_CASE("four nodes converge over TCP") {
    auto loop = make_loop();
    NodeSpec base;
    base.name = "tcp";
    Nodes nodes = start_chain(*loop, 4, base);
    INFO(describe(nodes));
    CHECK(loop->run_until([&] { return converged(nodes); }, kPatience));
  }

  TEST_CASE("four nodes converge over UDP") {
    auto loop = make_loop();
    NodeSpec base;
    base.name = "udp";
    base.transport = Transport::kUdp;
    Nodes nodes = start_chain(*loop, 4, base);
    INFO(describe(nodes));
    CHECK(loop->run_until([&] { return converged(nodes); }, kPatience));
  }

  TEST_CASE("over UDP a seed given by host name works: replies match the endpoint they came from") {
    auto loop = make_loop();
    NodeSpec spec;
    spec.name = "named1";
    spec.transport = Transport::kUdp;
    spec.key_values = {{"id", spec.name}};
    Nodes nodes;
    nodes.push_back(loop->start(spec));
    spec.name = "named2";
    spec.key_values = {{"id", spec.name}};
    spec.seeds = {Address{"localhost", nodes.front()->address().port}};
    nodes.push_back(loop->start(spec));
    INFO(describe(nodes));
    CHECK(loop->run_until([&] { return converged(nodes); }, kPatience));
    // Its Syns went to the name; the SynAcks, from 127.0.0.1, answered them.
    const Stats& named = nodes.back()->node().stats();
    CHECK(named.packets_in.synack > 0);
    CHECK(named.dropped_out_of_place == 0);
  }

  TEST_CASE("over UDP on IPv6 three nodes seeded by [::1] literals converge and exchange keys") {
    auto loop = make_loop();
    NodeSpec spec;
    spec.transport = Transport::kUdp;
    spec.host = "::1";
    Nodes nodes;
    for (int i = 1; i <= 3; ++i) {
      spec.name = "six" + std::to_string(i);
      spec.key_values = {{"id", spec.name}};
      // Each seed as a user writes it, "[::1]:port", parsed like a config file's.
      if (!nodes.empty()) {
        const auto seed = Address::parse("[::1]:" + std::to_string(nodes.back()->address().port));
        REQUIRE(seed.has_value());
        spec.seeds = {*seed};
      }
      nodes.push_back(loop->start(spec));
    }
    INFO(describe(nodes));
    for (const auto& n : nodes) CHECK(n->address().host == "::1");
    CHECK(loop->run_until([&] { return converged(nodes); }, kPatience));
    nodes.front()->set("written", "on six1");
    CHECK(loop->run_until([&] { return value_seen(*nodes.back(), "six1", "written") == "on six1"; },
                          kPatience));
    for (const auto& n : nodes) {
      CHECK(n->node().stats().packets_in.synack > 0);
      CHECK(n->node().stats().dropped_out_of_place == 0);
    }
  }

  TEST_CASE("over UDP on dual-stack IPv6 sockets a seed given as localhost converges") {
    // Both nodes bind [::] and advertise 127.0.0.1. "localhost" resolves to
    // ::1 or to 127.0.0.1 (then sent IPv4-mapped) depending on /etc/hosts:
    // either way the seed's replies match the Syns sent to the name, and the
    // numeric IPv4 addresses learnt by gossip are reached over IPv6 sockets.
    auto loop = make_loop();
    NodeSpec spec;
    spec.transport = Transport::kUdp;
    spec.listen = Address{"::", 0};
    spec.name = "dual1";
    spec.key_values = {{"id", spec.name}};
    Nodes nodes;
    nodes.push_back(loop->start(spec));
    spec.name = "dual2";
    spec.key_values = {{"id", spec.name}};
    spec.seeds = {Address{"localhost", nodes.front()->address().port}};
    nodes.push_back(loop->start(spec));
    INFO(describe(nodes));
    CHECK(loop->run_until([&] { return converged(nodes); }, kPatience));
    for (const auto& n : nodes) {
      CHECK(n->node().stats().packets_in.synack > 0);
      CHECK(n->node().stats().dropped_out_of_place == 0);
    }
  }

  TEST_CASE("three nodes converge over TLS") {
    TestPki pki;
    auto loop = make_loop();
    Nodes nodes = start_tls_chain(*loop, pki, 3, Transport::kTls);
    INFO(describe(nodes));
    CHECK(loop->run_until([&] { return converged(nodes); }, kPatience));
  }

  TEST_CASE("three nodes converge over mutual TLS") {
    TestPki pki;
    auto loop = make_loop();
    Nodes nodes = start_tls_chain(*loop, pki, 3, Transport::kMutualTls);
    INFO(describe(nodes));
    CHECK(loop->run_until([&] { return converged(nodes); }, kPatience));
    for (const auto& n : nodes) CHECK(n->node().stats().dropped_tls_name == 0);
  }

  TEST_CASE("mutual TLS: a Syn whose digest names no node of the client certificate is dropped") {
    TestPki pki;
    auto loop = make_loop();
    NodeSpec honest;
    honest.name = "honest";
    honest.transport = Transport::kMutualTls;
    honest.tls_name = "honest.test";
    honest.tls = pki.issue("honest", {"honest.test"});
    auto h = loop->start(honest);
    // A valid certificate of the same CA, but the node claims another name.
    NodeSpec liar;
    liar.name = "liar";
    liar.transport = Transport::kMutualTls;
    liar.tls_name = "somebody-else.test";
    liar.tls = pki.issue("liar", {"liar.test"});
    liar.seeds = {h->address()};
    auto l = loop->start(liar);
    CHECK(loop->run_until([&] { return h->node().stats().dropped_tls_name >= 3; }, kPatience));
    CHECK(known_names(*h) == std::set<std::string>{"honest"});
    CHECK(known_names(*l) == std::set<std::string>{"liar"});
    CHECK(h->node().stats().packets_out.synack == 0);
  }

  TEST_CASE("TLS: a certificate from another CA is refused") {
    TestPki pki;
    TestPki other;
    auto loop = make_loop();
    NodeSpec a;
    a.name = "a";
    a.transport = Transport::kMutualTls;
    a.tls_name = "a.test";
    a.tls = pki.issue("a", {"a.test"});
    auto na = loop->start(a);
    NodeSpec b = a;
    b.name = "b";
    b.tls_name = "b.test";
    b.tls = other.issue("b", {"b.test"});
    b.seeds = {na->address()};
    auto nb = loop->start(b);
    CHECK(loop->run_until(
        [&] {
          return na->transport_counters().tls_failures >= 2 &&
                 nb->transport_counters().tls_failures >= 2;
        },
        kPatience));
    CHECK(known_names(*na) == std::set<std::string>{"a"});
    CHECK(known_names(*nb) == std::set<std::string>{"b"});
  }

  TEST_CASE(
      "TLS: the client refuses a server whose certificate does not name the host it dialled") {
    TestPki pki;
    auto loop = make_loop();
    NodeSpec server;
    server.name = "server";
    server.transport = Transport::kTls;
    server.tls_name = "server.test";
    server.tls = pki.issue("server", {"server.test"}, /*with_loopback_ip=*/false);
    auto s = loop->start(server);
    NodeSpec client;
    client.name = "client";
    client.transport = Transport::kTls;
    client.tls_name = "client.test";
    client.tls = pki.issue("client", {"client.test"});
    client.seeds = {s->address()};  // 127.0.0.1: not in the server's certificate
    auto c = loop->start(client);
    CHECK(loop->run_until([&] { return c->transport_counters().tls_failures >= 3; }, kPatience));
    CHECK(known_names(*c) == std::set<std::string>{"client"});
    CHECK(known_names(*s) == std::set<std::string>{"server"});
  }

  TEST_CASE("a node of another cluster id is rejected") {
    for (const Transport transport : {Transport::kTcp, Transport::kUdp}) {
      CAPTURE(static_cast<int>(transport));
      auto loop = make_loop();
      NodeSpec a;
      a.name = "alpha";
      a.cluster_id = "cluster-alpha";
      a.transport = transport;
      auto na = loop->start(a);
      NodeSpec b = a;
      b.name = "beta";
      b.cluster_id = "cluster-beta";
      b.seeds = {na->address()};
      auto nb = loop->start(b);
      CHECK(loop->run_until(
          [&] {
            return na->node().stats().dropped_wrong_cluster >= 3 &&
                   nb->node().stats().packets_in.bad_cluster >= 3;
          },
          kPatience));
      CHECK(known_names(*na) == std::set<std::string>{"alpha"});
      CHECK(known_names(*nb) == std::set<std::string>{"beta"});
    }
  }

  TEST_CASE("a key set on one node reaches the others, and so does its deletion") {
    for (const Transport transport : {Transport::kTcp, Transport::kUdp}) {
      CAPTURE(static_cast<int>(transport));
      auto loop = make_loop();
      NodeSpec base;
      base.name = "kv";
      base.transport = transport;
      Nodes nodes = start_chain(*loop, 3, base);
      REQUIRE(loop->run_until([&] { return converged(nodes); }, kPatience));
      nodes[0]->set("color", "blue");
      CHECK(loop->run_until(
          [&] {
            return std::all_of(nodes.begin(), nodes.end(), [](const auto& n) {
              return value_seen(*n, "kv1", "color") == "blue";
            });
          },
          kPatience));
      nodes[0]->remove("color");
      CHECK(loop->run_until(
          [&] {
            return std::all_of(nodes.begin(), nodes.end(),
                               [](const auto& n) { return !value_seen(*n, "kv1", "color"); });
          },
          kPatience));
    }
  }

  TEST_CASE("a stopped node is seen dead, and hooks report it") {
    auto loop = make_loop();
    NodeSpec base;
    base.name = "fd";
    std::vector<HookRecord> log;  // outlives the nodes, whose stop may still run hooks
    Nodes nodes = start_chain(*loop, 3, base);
    nodes[0]->record_hooks(log);
    REQUIRE(loop->run_until([&] { return converged(nodes); }, kPatience));
    const NodeId gone = nodes[2]->id();
    nodes[2]->stop();
    CHECK(loop->run_until([&] { return dead_in(*nodes[0], gone) && dead_in(*nodes[1], gone); },
                          kPatience));
    CHECK(loop->run_until(
        [&] {
          return std::any_of(log.begin(), log.end(), [&](const HookRecord& r) {
            return r.kind == HookRecord::Kind::kLeave && r.node == gone;
          });
        },
        kPatience));
  }

  TEST_CASE("hooks fire with the right arguments") {
    auto loop = make_loop();
    NodeSpec base;
    base.name = "hook";
    std::vector<HookRecord> log;  // outlives the nodes, whose stop may still run hooks
    Nodes nodes = start_chain(*loop, 3, base);
    nodes[0]->record_hooks(log);
    REQUIRE(loop->run_until([&] { return converged(nodes); }, kPatience));
    auto has = [&](auto&& pred) { return std::any_of(log.begin(), log.end(), pred); };

    // Joins name the exact ids of the other nodes, never self.
    for (std::size_t i = 1; i < nodes.size(); ++i) {
      const NodeId id = nodes[i]->id();
      CHECK(loop->run_until(
          [&] {
            return has([&](const HookRecord& r) {
              return r.kind == HookRecord::Kind::kJoin && r.node == id;
            });
          },
          kPatience));
    }
    CHECK_FALSE(has([&](const HookRecord& r) {
      return r.kind == HookRecord::Kind::kJoin && r.node == nodes[0]->id();
    }));
    // The initial key of a remote node arrives as a new key.
    const NodeId second = nodes[1]->id();
    CHECK(has([&](const HookRecord& r) {
      return r.kind == HookRecord::Kind::kKeyChange && r.node == second && r.key == "id" &&
             !r.old_value && r.new_value && r.new_value->value == "hook2";
    }));
    // A remote update carries the old and the new value.
    nodes[1]->set("id", "hook2-renamed");
    CHECK(loop->run_until(
        [&] {
          return has([&](const HookRecord& r) {
            return r.kind == HookRecord::Kind::kKeyChange && r.node == second && r.key == "id" &&
                   r.old_value && r.old_value->value == "hook2" && r.new_value &&
                   r.new_value->value == "hook2-renamed" &&
                   r.new_value->version > r.old_value->version;
          });
        },
        kPatience));
    // A local mutation is reported too, deletions with their status.
    nodes[0]->set("local", "1");
    nodes[0]->remove("local");
    CHECK(loop->run_until(
        [&] {
          return has([&](const HookRecord& r) {
            return r.kind == HookRecord::Kind::kKeyChange && r.node == nodes[0]->id() &&
                   r.key == "local" && r.new_value && r.new_value->status == KeyStatus::kDeleted &&
                   r.old_value && r.old_value->value == "1";
          });
        },
        kPatience));
    const HookCounters counters = nodes[0]->hook_counters();
    CHECK(counters.errors == 0);
    CHECK(counters.dropped == 0);
    CHECK(counters.processed == log.size());
  }

  TEST_CASE("watch: key-prefix hooks, the coalesced live set, an extra liveness predicate, waits") {
    auto loop = make_loop();
    NodeSpec base;
    base.name = "watch";
    // A node counts as live for the observer only once its "ready" is "true".
    NodeSpec observer = base;
    observer.name = "watch1";
    observer.extra_liveness = [](const NodeState& st) {
      const auto ready = st.find("ready");
      return ready && ready->visible() && ready->value == "true";
    };
    std::vector<std::string> prefixed;        // keys the "svc/" hook saw
    std::vector<std::set<std::string>> sets;  // names in each live set delivered
    std::vector<LiveSet> delivered;
    std::optional<bool> ready_wait;
    std::optional<bool> key_wait;
    Nodes nodes;
    nodes.push_back(loop->start(observer));
    NodeSpec b = base;
    b.name = "watch2";
    b.seeds = {nodes[0]->address()};
    b.key_values = {{"ready", "true"}, {"svc/port", "80"}, {"other", "x"}};
    nodes.push_back(loop->start(b));
    NodeSpec c = b;
    c.name = "watch3";
    c.key_values = {{"ready", "false"}};
    nodes.push_back(loop->start(c));
    driver::ClusterBase& a = nodes[0]->cluster();
    a.on_key_change("svc/",
                    [&](const NodeId&, const std::string& key, const std::optional<VersionedValue>&,
                        const VersionedValue&) { prefixed.push_back(key); });
    a.on_live_set([&](const LiveSet& live) {
      std::set<std::string> names;
      for (const LiveMember& m : live) names.insert(m.id.name);
      sets.push_back(names);
      delivered.push_back(live);
    });
    nodes[0]->wait(driver::live_set_matches([](const LiveSet& live) {
                     if (live.size() != 2 || live[1].id.name != "watch2") return false;
                     const auto port = live[1].key_values.find("svc/port");
                     return port != live[1].key_values.end() && port->second == "80";
                   }),
                   kPatience, [&](bool ok) { ready_wait = ok; });
    nodes[0]->wait(driver::has_key_under("watch2", "svc/"), kPatience,
                   [&](bool ok) { key_wait = ok; });
    REQUIRE(loop->run_until([&] { return ready_wait && key_wait; }, kPatience));
    CHECK(*ready_wait);
    CHECK(*key_wait);
    // watch3 is heard (it is not dead) but not ready: not live.
    CHECK(loop->run_until(
        [&] {
          return !a.node().is_live(nodes[2]->id()) && !dead_in(*nodes[0], nodes[2]->id()) &&
                 value_seen(*nodes[0], "watch3", "ready") == "false";
        },
        kPatience));
    CHECK(loop->run_until([&] { return !sets.empty() && sets.back().size() == 2; }, kPatience));
    const std::set<std::string> two = {"watch1", "watch2"};
    CHECK(sets.back() == two);
    CHECK(sets.front().count("watch1") == 1);  // first: the set at registration
    CHECK(sets.front().count("watch3") == 0);

    // watch3 turns ready: it joins the live set.
    nodes[2]->set("ready", "true");
    std::optional<bool> three;
    nodes[0]->wait(driver::live_set_matches([](const LiveSet& live) { return live.size() == 3; }),
                   kPatience, [&](bool ok) { three = ok; });
    REQUIRE(loop->run_until([&] { return three.has_value(); }, kPatience));
    CHECK(*three);
    CHECK(loop->run_until([&] { return sets.back().size() == 3; }, kPatience));
    CHECK(a.live_set().size() == 3);
    // Only keys under the prefix reached the prefix hook.
    CHECK(std::find(prefixed.begin(), prefixed.end(), "svc/port") != prefixed.end());
    CHECK(std::all_of(prefixed.begin(), prefixed.end(),
                      [](const std::string& k) { return k.starts_with("svc/"); }));
    // Coalesced: never the same set twice in a row.
    for (std::size_t i = 1; i < delivered.size(); ++i) CHECK(delivered[i] != delivered[i - 1]);
  }

  TEST_CASE("watch: a replica reset is reported to on_replica_reset") {
    // Two loops, so one node can be frozen while the other forgets
    // tombstones the frozen one never saw.
    auto loop_a = make_loop();
    auto loop_b = make_loop();
    auto run_both = [&](const std::function<bool()>& done) {
      const auto deadline = std::chrono::steady_clock::now() + kPatience;
      while (!done() && std::chrono::steady_clock::now() < deadline) {
        loop_a->run_until(done, 5ms);
        loop_b->run_until(done, 5ms);
      }
      return done();
    };
    NodeSpec spec;
    spec.name = "reset1";
    spec.tombstone_grace = 100ms;
    auto owner = loop_a->start(spec);
    spec.name = "reset2";
    spec.seeds = {owner->address()};
    auto replica = loop_b->start(spec);
    std::vector<NodeId> resets;
    replica->cluster().on_replica_reset([&](const NodeId& id) { resets.push_back(id); });
    owner->set("kept", "1");
    REQUIRE(run_both([&] { return value_seen(*replica, "reset1", "kept") == "1"; }));
    // The replica sleeps while the owner writes, deletes and collects.
    owner->set("gone", "1");
    owner->remove("gone");
    owner->set("late", "1");
    REQUIRE(loop_a->run_until(
        [&] { return owner->node().cluster_state().self().last_gc_version() > 0; }, kPatience));
    REQUIRE(run_both([&] { return !resets.empty(); }));
    CHECK(resets.front() == owner->id());
    CHECK(run_both([&] { return value_seen(*replica, "reset1", "late") == "1"; }));
    CHECK(replica->node().stats().resets_applied >= 1);
  }

  TEST_CASE("a throwing hook is counted and the loop goes on") {
    auto loop = make_loop();
    NodeSpec base;
    base.name = "throw";
    std::vector<HookRecord> log;
    Nodes nodes = start_chain(*loop, 3, base);
    nodes[0]->add_throwing_hooks();
    nodes[0]->record_hooks(log);  // registered after the throwing ones: still called
    REQUIRE(loop->run_until([&] { return converged(nodes); }, kPatience));
    REQUIRE(loop->run_until([&] { return nodes[0]->hook_counters().processed >= 3; }, kPatience));
    const HookCounters counters = nodes[0]->hook_counters();
    CHECK(counters.errors >= counters.processed);  // one throwing call per event at least
    CHECK(log.size() == counters.processed);
    // Still gossiping after the exceptions.
    nodes[1]->set("after", "yes");
    CHECK(loop->run_until(
        [&] { return value_seen(*nodes[0], nodes[1]->id().name, "after") == "yes"; }, kPatience));
  }

  TEST_CASE("the hook queue is bounded: events beyond its capacity are dropped and counted") {
    auto loop = make_loop();
    NodeSpec spec;
    spec.name = "bounded";
    spec.hook_queue_capacity = 4;
    std::vector<HookRecord> log;
    auto n = loop->start(spec);
    n->record_hooks(log);
    // Hooks run from the loop, never inside the call raising the event: all
    // twenty changes meet a queue of four before any hook runs.
    for (int i = 0; i < 20; ++i) n->set("k" + std::to_string(i), "v");
    CHECK(n->hook_counters().enqueued == 4);
    CHECK(n->hook_counters().dropped == 16);
    CHECK(loop->run_until([&] { return n->hook_counters().processed == 4; }, kPatience));
    CHECK(log.size() == 4);
    CHECK(log.front().key == "k0");
  }

  TEST_CASE("bad frames close the connection and leave the node working") {
    auto loop = make_loop();
    NodeSpec spec;
    spec.name = "victim";
    auto n = loop->start(spec);
    const std::size_t max_inbound = n->node().config().max_inbound_payload_size;
    RawSocket empty(SOCK_STREAM, n->address());
    RawSocket huge(SOCK_STREAM, n->address());
    REQUIRE(loop->run_until([&] { return empty.send({0, 0, 0, 0}); }, kPatience));
    const auto too_big = static_cast<std::uint32_t>(max_inbound + 1);
    REQUIRE(loop->run_until(
        [&] {
          return huge.send(
              {static_cast<std::uint8_t>(too_big >> 24), static_cast<std::uint8_t>(too_big >> 16),
               static_cast<std::uint8_t>(too_big >> 8), static_cast<std::uint8_t>(too_big)});
        },
        kPatience));
    CHECK(loop->run_until([&] { return n->transport_counters().framing_errors >= 2; }, kPatience));
    CHECK(loop->run_until([&] { return empty.closed_by_peer() && huge.closed_by_peer(); },
                          kPatience));
    // A well-formed frame with garbage inside is dropped by the core.
    RawSocket garbage(SOCK_STREAM, n->address());
    REQUIRE(loop->run_until(
        [&] {
          return garbage.send({0, 0, 0, 3, 0xff, 0xff, 0xff});
        },
        kPatience));
    CHECK(loop->run_until([&] { return n->node().stats().dropped_malformed >= 1; }, kPatience));
    CHECK(loop->run_until([&] { return garbage.closed_by_peer(); }, kPatience));
    // And the node still gossips.
    NodeSpec friend_spec;
    friend_spec.name = "friend";
    friend_spec.seeds = {n->address()};
    auto f = loop->start(friend_spec);
    CHECK(loop->run_until([&] { return live_names(*n).size() == 2 && live_names(*f).size() == 2; },
                          kPatience));
  }

  TEST_CASE("garbage datagrams are dropped and counted") {
    auto loop = make_loop();
    NodeSpec spec;
    spec.name = "udp-victim";
    spec.transport = Transport::kUdp;
    auto n = loop->start(spec);
    RawSocket raw(SOCK_DGRAM, n->address());
    REQUIRE(raw.send({0xff, 0xff, 0xff}));
    REQUIRE(raw.send({}));
    CHECK(loop->run_until([&] { return n->node().stats().dropped_malformed >= 1; }, kPatience));
    CHECK(
        loop->run_until([&] { return n->node().stats().dropped_unknown_message >= 1; }, kPatience));
  }

  TEST_CASE("inbound connections are capped: idle ones give way to new ones, and time out") {
    auto loop = make_loop();
    NodeSpec spec;
    spec.name = "capped";
    spec.max_inbound_connections = 2;
    spec.io_timeout = 300ms;
    auto n = loop->start(spec);
    std::vector<std::unique_ptr<RawSocket>> idle;
    for (int i = 0; i < 4; ++i)
      idle.push_back(std::make_unique<RawSocket>(SOCK_STREAM, n->address()));
    CHECK(loop->run_until([&] { return n->transport_counters().connections_evicted >= 2; },
                          kPatience));
    CHECK(loop->run_until([&] { return n->transport_counters().timeouts >= 2; }, kPatience));
    CHECK(loop->run_until(
        [&] {
          return std::all_of(idle.begin(), idle.end(),
                             [](const auto& s) { return s->closed_by_peer(); });
        },
        kPatience));
    CHECK(n->transport_counters().connections_refused == 0);
  }

  TEST_CASE("inbound connections are capped: busy ones keep their slot and new ones are refused") {
    auto loop = make_loop();
    NodeSpec spec;
    spec.name = "busy";
    spec.max_inbound_connections = 2;
    spec.io_timeout = 2s;
    auto n = loop->start(spec);
    // Two peers send a Syn and never Ack: their exchanges are under way.
    const Bytes syn = encode_frame(encode(Packet{spec.cluster_id, Syn{}}));
    RawSocket a(SOCK_STREAM, n->address());
    RawSocket b(SOCK_STREAM, n->address());
    REQUIRE(loop->run_until([&] { return a.send(syn) && b.send(syn); }, kPatience));
    REQUIRE(loop->run_until([&] { return n->node().stats().packets_in.syn >= 2; }, kPatience));
    RawSocket late(SOCK_STREAM, n->address());
    CHECK(loop->run_until([&] { return n->transport_counters().connections_refused >= 1; },
                          kPatience));
    CHECK(n->transport_counters().connections_evicted == 0);
    CHECK(loop->run_until([&] { return late.closed_by_peer(); }, kPatience));
  }

  TEST_CASE("stop is clean: the loop runs out of work") {
    TestPki pki;
    auto loop = make_loop();
    NodeSpec base;
    base.name = "stop";
    Nodes nodes = start_chain(*loop, 3, base);
    Nodes tls = start_tls_chain(*loop, pki, 2, Transport::kMutualTls);
    NodeSpec udp = base;
    udp.name = "stop-udp";
    udp.transport = Transport::kUdp;
    Nodes udps = start_chain(*loop, 2, udp);
    REQUIRE(loop->run_until([&] { return converged(nodes) && converged(tls) && converged(udps); },
                            kPatience));
    for (auto* group : {&nodes, &tls, &udps}) {
      for (auto& n : *group) n->stop();
    }
    CHECK(loop->run_until_idle(kPatience));
  }

}  // TEST_SUITE

}  // namespace aiocluster::conformance
