#include <doctest/doctest.h>

#include "harness.h"

using namespace testing;

namespace {

// Two converged nodes; the tests throw bad input at node 0.
struct Fixture {
  MemCluster c = MemCluster::ring(2);
  Fixture() {
    c.run(10s);
    c.drain(0);
  }
  Node& target() { return *c.nodes[0]; }
  const Address peer = Address{"127.0.0.1", 7001};

  // Bytes of every replica's state: equal before and after means "nothing changed".
  std::string fingerprint() {
    std::string out;
    for (const auto& ns : target().snapshot().nodes) {
      out += ns.id.name + ":" + std::to_string(ns.heartbeat) + ":" +
             std::to_string(ns.max_version) + ":" + std::to_string(ns.last_gc_version) + ":" +
             std::to_string(ns.key_values.size()) + ";";
    }
    return out;
  }

  Bytes valid_syn() {
    Rng rng(1);
    return encode(Packet{"test-cluster", Syn{c.nodes[1]->cluster_state().digest(65507, rng)}});
  }
};

}  // namespace

TEST_CASE("truncated, random and oversized bytes are dropped and counted") {
  Fixture f;
  const std::string before = f.fingerprint();
  const Bytes syn = f.valid_syn();
  for (std::size_t cut = 1; cut < syn.size(); cut += 7) {
    Bytes truncated(syn.begin(), syn.begin() + static_cast<std::ptrdiff_t>(cut));
    CHECK_FALSE(f.target().handle_packet(truncated, f.c.now, {f.peer, Stage::kStreamOpen}));
  }
  Rng rng(7);
  for (int i = 0; i < 200; ++i) {
    Bytes noise(rng.below(300) + 1);
    for (auto& b : noise) b = static_cast<std::uint8_t>(rng.next());
    for (Stage stage :
         {Stage::kDatagram, Stage::kStreamOpen, Stage::kStreamAck, Stage::kStreamReply}) {
      CHECK_NOTHROW(f.target().handle_packet(noise, f.c.now, {f.peer, stage}));
    }
  }
  // Above max_payload_size but within max_inbound_payload_size: read (and
  // counted), then dropped as malformed; above the inbound limit: not read.
  const Bytes large(70'000, 0x0a);
  CHECK_FALSE(f.target().handle_packet(large, f.c.now, {f.peer, Stage::kStreamOpen}));
  CHECK(f.target().stats().packets_in_above_max_payload == 1);
  CHECK(f.target().stats().dropped_oversized == 0);
  const Bytes huge(f.target().config().max_inbound_payload_size + 1, 0x0a);
  CHECK_FALSE(f.target().handle_packet(huge, f.c.now, {f.peer, Stage::kStreamOpen}));
  CHECK(f.target().stats().dropped_oversized == 1);
  CHECK(f.target().stats().dropped_malformed > 0);
  CHECK(f.fingerprint() == before);
  CHECK_FALSE(f.target().poll_event());
}

TEST_CASE("a packet with no known message is dropped") {
  Fixture f;
  const Bytes unknown_oneof = {
      0x0a, 0x0c, 't', 'e', 's', 't', '-',  'c',
      'l',  'u',  's', 't', 'e', 'r', 0x52, 0x00};  // field 10: a message kind from the future
  CHECK_FALSE(f.target().handle_packet(unknown_oneof, f.c.now, {f.peer, Stage::kStreamOpen}));
  CHECK(f.target().stats().dropped_unknown_message == 1);
}

TEST_CASE("a wrong cluster id is answered with BadCluster and changes nothing") {
  Fixture f;
  const std::string before = f.fingerprint();
  Digest digest{{NodeDigest{NodeId{"intruder", 1, Address{"10.1.1.1", 1}, ""}, 50, 0, 9}}};
  auto reply = f.target().handle_packet(encode(Packet{"other-cluster", Syn{digest}}), f.c.now,
                                        {f.peer, Stage::kStreamOpen});
  REQUIRE(reply);
  CHECK_FALSE(reply->awaits_ack);
  const Packet answer = std::get<Packet>(decode(reply->payload));
  CHECK(answer.cluster_id == "test-cluster");
  CHECK(std::holds_alternative<BadCluster>(answer.message));
  CHECK(f.target().stats().dropped_wrong_cluster == 1);
  // An Ack from another cluster is dropped without an answer.
  Delta delta{
      {NodeDelta{NodeId{"intruder", 1, Address{"10.1.1.1", 1}, ""}, 0, 0, {{"k", "v", 1, {}}}, 1}}};
  CHECK_FALSE(f.target().handle_packet(encode(Packet{"other-cluster", Ack{delta}}), f.c.now,
                                       {f.peer, Stage::kStreamAck}));
  CHECK(f.target().stats().dropped_wrong_cluster == 2);
  CHECK(f.fingerprint() == before);
}

TEST_CASE("messages out of place are dropped and counted") {
  Fixture f;
  const std::string before = f.fingerprint();
  const Bytes syn = f.valid_syn();
  const Bytes ack = encode(Packet{"test-cluster", Ack{}});
  const Bytes synack = encode(Packet{"test-cluster", SynAck{}});
  const Bytes bad = encode(Packet{"x", BadCluster{}});
  const auto& s = f.target().stats();
  // A Syn as a reply or in place of an Ack.
  CHECK_FALSE(f.target().handle_packet(syn, f.c.now, {f.peer, Stage::kStreamReply}));
  CHECK_FALSE(f.target().handle_packet(syn, f.c.now, {f.peer, Stage::kStreamAck}));
  // An Ack or SynAck opening a connection.
  CHECK_FALSE(f.target().handle_packet(ack, f.c.now, {f.peer, Stage::kStreamOpen}));
  CHECK_FALSE(f.target().handle_packet(synack, f.c.now, {f.peer, Stage::kStreamOpen}));
  // Datagrams from an address with no exchange pending.
  const Address stranger{"127.0.0.1", 7999};
  CHECK_FALSE(f.target().handle_packet(ack, f.c.now, {stranger, Stage::kDatagram}));
  CHECK_FALSE(f.target().handle_packet(synack, f.c.now, {stranger, Stage::kDatagram}));
  CHECK_FALSE(f.target().handle_packet(bad, f.c.now, {stranger, Stage::kDatagram}));
  CHECK(s.dropped_out_of_place == 7);
  CHECK(f.fingerprint() == before);
}

TEST_CASE("a datagram reply after the exchange timeout is out of place") {
  Node a(make_config(0, {1}), t0(), 1);
  Node b(make_config(1), t0(), 2);
  a.handle_timeout(t0());
  auto tx = a.poll_transmit();
  REQUIRE(tx);
  auto synack =
      b.handle_packet(tx->payload, t0(), {a.self_id().gossip_advertise_addr, Stage::kDatagram});
  REQUIRE(synack);
  CHECK_FALSE(a.handle_packet(synack->payload, t0() + 4s, {tx->to, Stage::kDatagram}));
  CHECK(a.stats().dropped_out_of_place == 1);
  // And a reply from an address we never wrote to is out of place too.
  CHECK_FALSE(
      a.handle_packet(synack->payload, t0() + 4s, {Address{"127.0.0.1", 9}, Stage::kDatagram}));
  CHECK(a.stats().dropped_out_of_place == 2);
}

TEST_CASE("a delta with a gap is rejected and counted, the rest applies") {
  Fixture f;
  const NodeId stranger{"stranger", 1, Address{"127.0.0.1", 7555}, ""};
  const NodeId other{"other", 1, Address{"127.0.0.1", 7556}, ""};
  Delta delta{{NodeDelta{stranger, 5, 0, {{"k", "v", 6, {}}}, 6},
               NodeDelta{other, 0, 0, {{"k", "v", 1, {}}}, 1}}};
  // Delivered as the Ack of an exchange node 0 answered.
  auto synack = f.target().handle_packet(f.valid_syn(), f.c.now, {f.peer, Stage::kStreamOpen});
  REQUIRE(synack);
  CHECK_FALSE(f.target().handle_packet(encode(Packet{"test-cluster", Ack{delta}}), f.c.now,
                                       {f.peer, Stage::kStreamAck}));
  CHECK(f.target().stats().rejected_gap == 1);
  CHECK(f.target().node_state(stranger) == nullptr);
  REQUIRE(f.target().node_state(other) != nullptr);
  CHECK(f.target().node_state(other)->value("k") == "v");
}

TEST_CASE("datagram Syns are rate limited per source; streams and other sources are not") {
  Fixture f;
  const Limits& limits = f.target().config().limits;
  const Duration interval = f.target().config().gossip_interval;
  const Bytes syn = f.valid_syn();
  const Address flooder{"10.0.0.1", 5000};
  std::size_t answered = 0;
  for (int i = 0; i < 100; ++i) {
    if (f.target().handle_packet(syn, f.c.now, {flooder, Stage::kDatagram})) ++answered;
  }
  CHECK(answered == limits.datagram_syn_burst);
  CHECK(f.target().stats().dropped_rate_limited == 100 - limits.datagram_syn_burst);
  // Another source, and the same source over a stream, are still answered.
  CHECK(f.target().handle_packet(syn, f.c.now, {Address{"10.0.0.1", 5001}, Stage::kDatagram}));
  CHECK(f.target().handle_packet(syn, f.c.now, {flooder, Stage::kStreamOpen}));
  // One round later the flooder has datagram_syns_per_round more.
  answered = 0;
  for (int i = 0; i < 100; ++i) {
    if (f.target().handle_packet(syn, f.c.now + interval, {flooder, Stage::kDatagram})) ++answered;
  }
  CHECK(answered == limits.datagram_syns_per_round);
}

TEST_CASE("forged sources cannot grow the rate limiter beyond max_rate_limited_sources") {
  SourceRateLimiter limiter(250ms, 2, 16);
  const Instant now = t0();
  for (std::uint16_t port = 1; port <= 1000; ++port) {
    // Every new source gets its burst: forgetting one only forgives it.
    CHECK(limiter.admit(Address{"10.0.0.2", port}, now));
    CHECK(limiter.sources() <= 16);
  }
  const Address busy{"10.0.0.3", 1};
  CHECK(limiter.admit(busy, now));
  CHECK(limiter.admit(busy, now));
  CHECK_FALSE(limiter.admit(busy, now));
  CHECK(limiter.admit(busy, now + 250ms));
  CHECK_FALSE(limiter.admit(busy, now + 250ms));
  // Zeros are read as one: one source, one admission at once.
  SourceRateLimiter tiny(1s, 0, 0);
  CHECK(tiny.admit(busy, now));
  CHECK_FALSE(tiny.admit(busy, now));
  CHECK(tiny.admit(Address{"10.0.0.4", 1}, now));
  CHECK(tiny.sources() == 1);
}
