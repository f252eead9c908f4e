// Hostile input through the real drivers: what a broken peer, a scanner or
// an attacker can send to a node's port. After each case the node still
// answers and its cluster still converges. The core's own hostile tests
// (tests/hostile) go through every rule; these check that the drivers hand
// the core the right bytes and stages, and that their sockets stay bounded.
#include <doctest/doctest.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "aiocluster/codec.h"
#include "aiocluster/framing.h"
#include "aiocluster/random.h"
#include "checks.h"
#include "harness.h"
#include "raw_socket.h"

namespace aiocluster::conformance {

namespace {

Bytes frame_of(const Packet& packet) { return encode_frame(encode(packet)); }

Bytes random_bytes(Rng& rng, std::size_t size) {
  Bytes out(size);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng.next());
  return out;
}

// A node under attack and a friend seeded with it, converged.
struct Pair {
  std::unique_ptr<Loop> loop = make_loop();
  Nodes nodes;

  explicit Pair(NodeSpec victim, NodeSpec friend_spec = {}) {
    victim.key_values.emplace_back("id", victim.name);
    nodes.push_back(loop->start(victim));
    friend_spec.name = "friend";
    friend_spec.transport = victim.transport;
    friend_spec.cluster_id = victim.cluster_id;
    friend_spec.key_values.emplace_back("id", "friend");
    friend_spec.seeds = {nodes[0]->address()};
    nodes.push_back(loop->start(friend_spec));
    REQUIRE_MESSAGE(loop->run_until([&] { return converged(nodes); }, kPatience), describe(nodes));
  }

  TestNode& victim() { return *nodes[0]; }
  TestNode& friend_node() { return *nodes[1]; }

  // The pair still gossips both ways: a new key of each reaches the other,
  // and the victim still takes Syns as a responder.
  void still_gossips(const std::string& round) {
    const std::uint64_t syns_before = victim().node().stats().packets_in.syn;
    victim().set("after", round);
    friend_node().set("after", round);
    CHECK_MESSAGE(loop->run_until(
                      [&] {
                        return value_seen(friend_node(), victim().id().name, "after") == round &&
                               value_seen(victim(), "friend", "after") == round &&
                               victim().node().stats().packets_in.syn > syns_before &&
                               converged(nodes);
                      },
                      kPatience),
                  describe(nodes));
  }
};

NodeSpec victim_spec(Transport transport = Transport::kTcp) {
  NodeSpec spec;
  spec.name = "victim";
  spec.transport = transport;
  return spec;
}

// Half-open connections from `attacker`, reopened as the node closes them.
struct HalfOpenFlood {
  HalfOpenFlood(const Address& target, std::string attacker, int count)
      : to(target), from(std::move(attacker)) {
    for (int i = 0; i < count; ++i) {
      sockets.push_back(std::make_unique<RawSocket>(SOCK_STREAM, to, 0, from));
      ++opened;
    }
  }
  void keep_up() {
    for (auto& s : sockets) {
      if (s->closed_by_peer()) {
        s = std::make_unique<RawSocket>(SOCK_STREAM, to, 0, from);
        ++opened;
      }
    }
  }
  Address to;
  std::string from;
  std::vector<std::unique_ptr<RawSocket>> sockets;
  std::size_t opened = 0;
};

}  // namespace

TEST_SUITE("hostile") {
  TEST_CASE("hostile: frames cut short, random streams and wrong-shape protobuf") {
    Pair pair(victim_spec());
    TestNode& v = pair.victim();
    Loop& loop = *pair.loop;
    const std::string& cluster = v.node().config().cluster_id;

    // A prefix announcing 1,000 bytes, 10 sent, then the peer goes away.
    const std::uint64_t io_errors = v.transport_counters().io_errors;
    {
      RawSocket cut(SOCK_STREAM, v.address());
      REQUIRE(loop.run_until(
          [&] {
            return cut.send({0, 0, 0x03, 0xe8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
          },
          kPatience));
    }
    CHECK(loop.run_until([&] { return v.transport_counters().io_errors > io_errors; }, kPatience));
    // Random streams: each is either a bad length or a frame of garbage.
    Rng rng(2026);
    std::vector<std::unique_ptr<RawSocket>> noise;
    for (int i = 0; i < 20; ++i) {
      noise.push_back(std::make_unique<RawSocket>(SOCK_STREAM, v.address()));
      const Bytes bytes = random_bytes(rng, 16 + rng.below(2000));
      REQUIRE(loop.run_until([&] { return noise.back()->send(bytes); }, kPatience));
    }
    // Well-formed packets out of place: a SynAck, an Ack and a BadCluster
    // opening a connection; a oneof member no version knows.
    std::vector<Bytes> wrong_shape = {
        frame_of(Packet{cluster, SynAck{}}),
        frame_of(Packet{cluster, Ack{}}),
        frame_of(Packet{cluster, BadCluster{}}),
        encode_frame(Bytes{0x0a, 0x01, 'x', 0x32, 0x00}),
    };
    std::vector<std::unique_ptr<RawSocket>> shaped;
    for (const Bytes& frame : wrong_shape) {
      shaped.push_back(std::make_unique<RawSocket>(SOCK_STREAM, v.address()));
      REQUIRE(loop.run_until([&] { return shaped.back()->send(frame); }, kPatience));
    }
    CHECK(loop.run_until([&] { return v.node().stats().dropped_out_of_place >= 3; }, kPatience));
    CHECK(loop.run_until([&] { return v.node().stats().dropped_unknown_message >= 1; }, kPatience));
    CHECK(loop.run_until(
        [&] {
          return std::all_of(noise.begin(), noise.end(),
                             [](const auto& s) { return s->closed_by_peer(); }) &&
                 std::all_of(shaped.begin(), shaped.end(),
                             [](const auto& s) { return s->closed_by_peer(); });
        },
        kPatience));
    CHECK(v.transport_counters().framing_errors + v.node().stats().dropped_malformed +
              v.node().stats().dropped_unknown_message >=
          1);
    pair.still_gossips("1");
  }

  TEST_CASE("hostile: a Syn of another cluster is answered with BadCluster and changes nothing") {
    Pair pair(victim_spec());
    TestNode& v = pair.victim();
    const std::size_t known = v.node().cluster_state().size();
    const NodeId stranger{"stranger", 1, Address{"127.0.0.1", 9}, ""};
    RawSocket raw(SOCK_STREAM, v.address());
    const Bytes syn =
        frame_of(Packet{"another-cluster", Syn{Digest{{NodeDigest{stranger, 5, 0, 3}}}}});
    REQUIRE(pair.loop->run_until([&] { return raw.send(syn); }, kPatience));
    std::optional<Bytes> reply;
    REQUIRE(
        pair.loop->run_until([&] { return (reply = raw.read_frame()).has_value(); }, kPatience));
    const DecodeResult decoded = decode(*reply);
    REQUIRE(std::holds_alternative<Packet>(decoded));
    CHECK(std::holds_alternative<BadCluster>(std::get<Packet>(decoded).message));
    CHECK(v.node().stats().dropped_wrong_cluster == 1);
    CHECK(v.node().cluster_state().size() == known);
    pair.still_gossips("1");
  }

  TEST_CASE(
      "hostile: a peer claiming to be us, or sending a delta from the future, changes nothing") {
    Pair pair(victim_spec());
    TestNode& v = pair.victim();
    const std::string& cluster = v.node().config().cluster_id;
    const NodeId self = v.id();
    const NodeId friend_id = pair.friend_node().id();
    const std::uint64_t friend_max = v.node().cluster_state().find(friend_id)->max_version();

    RawSocket raw(SOCK_STREAM, v.address());
    // Our id in the digest, far ahead of us.
    const Digest digest{{NodeDigest{self, 1'000'000, 1'000'000, 1'000'000}}};
    REQUIRE(pair.loop->run_until(
        [&] {
          return raw.send(frame_of(Packet{cluster, Syn{digest}}));
        },
        kPatience));
    std::optional<Bytes> synack;
    REQUIRE(
        pair.loop->run_until([&] { return (synack = raw.read_frame()).has_value(); }, kPatience));
    const DecodeResult decoded = decode(*synack);
    REQUIRE(std::holds_alternative<Packet>(decoded));
    REQUIRE(std::holds_alternative<SynAck>(std::get<Packet>(decoded).message));
    // The Ack: writes in our name, and the friend's state from a version
    // nobody has reached.
    const std::uint64_t future = friend_max + 1'000;
    const Delta delta{{
        NodeDelta{self, 0, 0, {{"id", "forged", 999'999, KeyStatus::kSet}}, 999'999},
        NodeDelta{
            friend_id, future, 0, {{"id", "forged", future + 1, KeyStatus::kSet}}, future + 1},
    }};
    REQUIRE(pair.loop->run_until(
        [&] {
          return raw.send(frame_of(Packet{cluster, Ack{delta}}));
        },
        kPatience));
    CHECK(pair.loop->run_until([&] { return v.node().stats().rejected_gap >= 1; }, kPatience));
    CHECK(pair.loop->run_until([&] { return raw.closed_by_peer(); }, kPatience));
    CHECK(v.node().get("id") == "victim");
    CHECK(value_seen(v, "friend", "id") == "friend");
    CHECK(v.node().cluster_state().find(friend_id)->max_version() < future);
    pair.still_gossips("1");
  }

  TEST_CASE("hostile: thousands of fake nodes are capped at max_nodes") {
    NodeSpec spec = victim_spec();
    spec.limits.max_nodes = 100;
    Pair pair(spec);
    TestNode& v = pair.victim();
    const std::string& cluster = v.node().config().cluster_id;
    std::vector<std::unique_ptr<RawSocket>> peers;
    std::uint16_t port = 1;
    for (int packet = 0; packet < 5; ++packet) {
      Digest digest;
      for (int i = 0; i < 1'000; ++i, ++port) {
        digest.node_digests.push_back(NodeDigest{
            NodeId{"fake-" + std::to_string(port), 1, Address{"10.9.9.9", port}, ""}, 1, 0, 0});
      }
      peers.push_back(std::make_unique<RawSocket>(SOCK_STREAM, v.address()));
      const Bytes syn = frame_of(Packet{cluster, Syn{digest}});
      REQUIRE(pair.loop->run_until([&] { return peers.back()->send(syn); }, kPatience));
    }
    // 98 places were free: every other entry is refused, none is held.
    CHECK(pair.loop->run_until([&] { return v.node().stats().nodes_refused >= 4'902; }, kPatience));
    CHECK(v.node().cluster_state().size() == 100);
    pair.still_gossips("1");
  }

  TEST_CASE(
      "hostile: a flood of half-open connections from another host does not keep gossip out") {
    NodeSpec spec = victim_spec();
    spec.max_inbound_connections = 16;
    spec.max_waiting_per_host = 4;
    Pair pair(spec);
    TestNode& v = pair.victim();
    HalfOpenFlood flood(v.address(), "127.0.0.2", 200);
    const std::uint64_t syns_before = v.node().stats().packets_in.syn;
    v.set("during", "flood");
    pair.friend_node().set("during", "flood");
    CHECK_MESSAGE(pair.loop->run_until(
                      [&] {
                        flood.keep_up();
                        return value_seen(v, "friend", "during") == "flood" &&
                               value_seen(pair.friend_node(), "victim", "during") == "flood" &&
                               v.node().stats().packets_in.syn >= syns_before + 5;
                      },
                      kPatience),
                  describe(pair.nodes));
    // The flooding host never held more than its share: it pushed out its
    // own connections, never a peer's, and nobody was refused.
    CHECK(v.transport_counters().connections_evicted >= 100);
    CHECK(v.transport_counters().connections_refused == 0);
    MESSAGE("half-open connections from another host: "
            << flood.opened << ", evicted: " << v.transport_counters().connections_evicted);
    flood.sockets.clear();
    pair.still_gossips("1");
  }

  TEST_CASE("hostile: idle connections from the peers' own host give way to gossip") {
    // From the same host nothing tells a peer's connection from an
    // attacker's but the frame it sends: 200 idle connections, not reopened
    // (a flood from elsewhere, reopened as fast as they close, is the case
    // above; from the peers' own host, a reconnecting flood can only be
    // told apart by time).
    NodeSpec spec = victim_spec();
    spec.max_inbound_connections = 16;
    Pair pair(spec);
    TestNode& v = pair.victim();
    std::vector<std::unique_ptr<RawSocket>> idle;
    for (int i = 0; i < 200; ++i)
      idle.push_back(std::make_unique<RawSocket>(SOCK_STREAM, v.address()));
    const std::uint64_t syns_before = v.node().stats().packets_in.syn;
    v.set("during", "idle");
    pair.friend_node().set("during", "idle");
    CHECK_MESSAGE(pair.loop->run_until(
                      [&] {
                        return value_seen(v, "friend", "during") == "idle" &&
                               value_seen(pair.friend_node(), "victim", "during") == "idle" &&
                               v.node().stats().packets_in.syn >= syns_before + 5;
                      },
                      kPatience),
                  describe(pair.nodes));
    CHECK(v.transport_counters().connections_evicted >= 184);
    idle.clear();
    pair.still_gossips("1");
  }

  TEST_CASE("hostile: a slow writer is cut off when its frame is not whole within read_timeout") {
    NodeSpec spec = victim_spec();
    spec.io_timeout = 500ms;
    Pair pair(spec);
    TestNode& v = pair.victim();
    const Bytes syn = frame_of(Packet{v.node().config().cluster_id, Syn{}});
    const std::uint64_t timeouts_before = v.transport_counters().timeouts;
    RawSocket raw(SOCK_STREAM, v.address());
    // One byte every 100 ms: each arrives well within the timeout, the whole
    // frame would take seconds.
    std::size_t sent = 0;
    bool cut_off = false;
    const auto started = std::chrono::steady_clock::now();
    while (!cut_off && std::chrono::steady_clock::now() - started < kPatience) {
      if (sent < syn.size() && raw.send({syn[sent]})) ++sent;
      pair.loop->run_until([&] { return raw.closed_by_peer(); }, 100ms);
      cut_off = raw.closed_by_peer();
    }
    CHECK(cut_off);
    CHECK(sent < syn.size());
    CHECK(pair.loop->run_until([&] { return v.transport_counters().timeouts > timeouts_before; },
                               kPatience));
    pair.still_gossips("1");
  }

  TEST_CASE("hostile: a slow reader is cut off and the node keeps gossiping") {
    NodeSpec spec = victim_spec();
    spec.io_timeout = 500ms;
    // Enough state that the SynAck cannot fit a small receive window.
    for (int i = 0; i < 3; ++i)
      spec.key_values.emplace_back("bulk" + std::to_string(i), std::string(16'000, 'x'));
    Pair pair(spec);
    TestNode& v = pair.victim();
    const std::uint64_t timeouts_before = v.transport_counters().timeouts;
    RawSocket raw(SOCK_STREAM, v.address(), 1024);
    REQUIRE(pair.loop->run_until(
        [&] {
          return raw.send(frame_of(Packet{v.node().config().cluster_id, Syn{}}));
        },
        kPatience));
    // Never read: the node's write or its wait for the Ack runs out of time.
    CHECK(pair.loop->run_until([&] { return v.transport_counters().timeouts > timeouts_before; },
                               kPatience));
    pair.still_gossips("1");
  }

  TEST_CASE("hostile: a flood of datagram Syns from one source is rate limited") {
    Pair pair(victim_spec(Transport::kUdp));
    TestNode& v = pair.victim();
    const Limits& limits = v.node().config().limits;
    RawSocket raw(SOCK_DGRAM, v.address());
    const Bytes syn = encode(Packet{v.node().config().cluster_id, Syn{}});
    for (int i = 0; i < 200; ++i) REQUIRE(raw.send(syn));
    CHECK(pair.loop->run_until([&] { return v.node().stats().dropped_rate_limited >= 100; },
                               kPatience));
    std::size_t replies = 0;
    pair.loop->run_until([] { return false; }, 200ms);
    while (raw.read_datagram()) ++replies;
    // The burst, plus what the bucket refilled while the flood was read.
    CHECK(replies >= limits.datagram_syn_burst);
    CHECK(replies < 100);
    MESSAGE("200 datagram Syns from one source drew " << replies << " SynAcks");
    pair.still_gossips("1");
  }

  TEST_CASE("hostile: garbage datagrams of every size are dropped") {
    Pair pair(victim_spec(Transport::kUdp));
    TestNode& v = pair.victim();
    Rng rng(7);
    RawSocket raw(SOCK_DGRAM, v.address());
    std::size_t sent = 0;
    for (int i = 0; i < 500; ++i) {
      if (raw.send(random_bytes(rng, rng.below(1'500)))) ++sent;
    }
    CHECK(pair.loop->run_until(
        [&] {
          return v.node().stats().packets_dropped() + v.node().stats().packets_in.syn >= sent / 2;
        },
        kPatience));
    pair.still_gossips("1");
  }

}  // TEST_SUITE

}  // namespace aiocluster::conformance
