#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "harness.h"
#include "rate_limiter.h"

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
  const PeerKey peer = PeerKey::of(Address{"127.0.0.1", 7001});

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
    CHECK(f.target().handle_packet(truncated, f.c.now, {Stage::kStreamOpen}).dropped ==
          DropReason::kMalformed);
  }
  Rng rng(7);
  for (int i = 0; i < 200; ++i) {
    Bytes noise(rng.below(300) + 1);
    for (auto& b : noise) b = static_cast<std::uint8_t>(rng.next());
    for (Stage stage :
         {Stage::kDatagram, Stage::kStreamOpen, Stage::kStreamAck, Stage::kStreamReply}) {
      CHECK_NOTHROW(f.target().handle_packet(noise, f.c.now, {stage, f.peer}));
    }
  }
  // Above max_payload_size but within max_inbound_payload_size: read (and
  // counted), then dropped as malformed; above the inbound limit: not read.
  const Bytes large(70'000, 0x0a);
  CHECK(f.target().handle_packet(large, f.c.now, {Stage::kStreamOpen}).dropped ==
        DropReason::kMalformed);
  CHECK(f.target().stats().packets_in_above_max_payload == 1);
  CHECK(f.target().stats().dropped_oversized == 0);
  const Bytes huge(f.target().config().max_inbound_payload_size + 1, 0x0a);
  CHECK(f.target().handle_packet(huge, f.c.now, {Stage::kStreamOpen}).dropped ==
        DropReason::kOversized);
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
  CHECK(f.target().handle_packet(unknown_oneof, f.c.now, {Stage::kStreamOpen}).dropped ==
        DropReason::kUnknownMessage);
  CHECK(f.target().stats().dropped_unknown_message == 1);
}

TEST_CASE("a wrong cluster id is answered with BadCluster and changes nothing") {
  Fixture f;
  const std::string before = f.fingerprint();
  Digest digest{{NodeDigest{NodeId{"intruder", 1, Address{"10.1.1.1", 1}, ""}, 50, 0, 9}}};
  const Outcome refused = f.target().handle_packet(encode(Packet{"other-cluster", Syn{digest}}),
                                                   f.c.now, {Stage::kStreamOpen});
  CHECK(refused.dropped == DropReason::kWrongCluster);
  const std::optional<Reply>& reply = refused.reply;
  REQUIRE(reply);
  CHECK_FALSE(reply->awaits_ack);
  const Packet answer = std::get<Packet>(decode(reply->payload));
  CHECK(answer.cluster_id == "test-cluster");
  CHECK(std::holds_alternative<BadCluster>(answer.message));
  CHECK(f.target().stats().dropped_wrong_cluster == 1);
  // An Ack from another cluster is dropped without an answer.
  Delta delta{
      {NodeDelta{NodeId{"intruder", 1, Address{"10.1.1.1", 1}, ""}, 0, 0, {{"k", "v", 1, {}}}, 1}}};
  const Outcome ack = f.target().handle_packet(encode(Packet{"other-cluster", Ack{delta}}), f.c.now,
                                               {Stage::kStreamAck});
  CHECK_FALSE(ack.reply);
  CHECK(ack.dropped == DropReason::kWrongCluster);
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
  auto out_of_place = [&](const Bytes& packet, const Inbound& in) {
    const Outcome outcome = f.target().handle_packet(packet, f.c.now, in);
    return !outcome.reply && outcome.dropped == DropReason::kOutOfPlace;
  };
  // A Syn as a reply or in place of an Ack.
  CHECK(out_of_place(syn, {Stage::kStreamReply}));
  CHECK(out_of_place(syn, {Stage::kStreamAck}));
  // An Ack or SynAck opening a connection.
  CHECK(out_of_place(ack, {Stage::kStreamOpen}));
  CHECK(out_of_place(synack, {Stage::kStreamOpen}));
  // Datagrams from a peer with no exchange pending.
  const Inbound stranger{Stage::kDatagram, PeerKey::of(Address{"127.0.0.1", 7999})};
  CHECK(out_of_place(ack, stranger));
  CHECK(out_of_place(synack, stranger));
  CHECK(out_of_place(bad, stranger));
  CHECK(s.dropped_out_of_place == 7);
  CHECK(f.fingerprint() == before);
}

TEST_CASE("a datagram reply after the exchange timeout is out of place") {
  Node a(make_config(0, {1}), t0(), 1);
  Node b(make_config(1), t0(), 2);
  a.handle_timeout(t0());
  auto tx = a.poll_transmit();
  REQUIRE(tx);
  a.handle_datagram_sent(PeerKey::of(tx->to));
  const Outcome synack = b.handle_packet(
      tx->payload, t0(), {Stage::kDatagram, PeerKey::of(a.self_id().gossip_advertise_addr)});
  REQUIRE(synack.reply);
  const Bytes& late = synack.reply->payload;
  CHECK(a.handle_packet(late, t0() + 4s, {Stage::kDatagram, PeerKey::of(tx->to)}).dropped ==
        DropReason::kOutOfPlace);
  CHECK(a.stats().dropped_out_of_place == 1);
  // And a reply from a peer we never wrote to is out of place too.
  CHECK(a.handle_packet(late, t0() + 4s, {Stage::kDatagram, PeerKey::of(Address{"127.0.0.1", 9})})
            .dropped == DropReason::kOutOfPlace);
  CHECK(a.stats().dropped_out_of_place == 2);
}

TEST_CASE("a datagram reply matches the peer the Syn was sent to, not its address text") {
  Node a(make_config(0, {1}), t0(), 1);
  Node b(make_config(1), t0(), 2);
  a.handle_timeout(t0());
  auto tx = a.poll_transmit();
  REQUIRE(tx);
  // The driver resolved the seed and keys the peer by its endpoint.
  const PeerKey endpoint("\x02endpoint-of-node1");
  a.handle_datagram_sent(endpoint);
  const Outcome synack = b.handle_packet(tx->payload, t0(), {Stage::kDatagram, PeerKey("a")});
  REQUIRE(synack.reply);
  const Outcome ack = a.handle_packet(synack.reply->payload, t0(), {Stage::kDatagram, endpoint});
  CHECK(ack.accepted());
  REQUIRE(ack.reply);
  CHECK(ack.finished());
  // Not sent through handle_datagram_sent: no exchange is pending.
  Node c(make_config(2, {1}), t0(), 3);
  c.handle_timeout(t0());
  REQUIRE(c.poll_transmit());
  CHECK(c.handle_packet(synack.reply->payload, t0(), {Stage::kDatagram, PeerKey::of(tx->to)})
            .dropped == DropReason::kOutOfPlace);
}

TEST_CASE("a delta with a gap is rejected and counted, the rest applies") {
  Fixture f;
  const NodeId stranger{"stranger", 1, Address{"127.0.0.1", 7555}, ""};
  const NodeId other{"other", 1, Address{"127.0.0.1", 7556}, ""};
  Delta delta{{NodeDelta{stranger, 5, 0, {{"k", "v", 6, {}}}, 6},
               NodeDelta{other, 0, 0, {{"k", "v", 1, {}}}, 1}}};
  // Delivered as the Ack of an exchange node 0 answered.
  const Outcome synack = f.target().handle_packet(f.valid_syn(), f.c.now, {Stage::kStreamOpen});
  REQUIRE(synack.reply);
  const Outcome ack = f.target().handle_packet(encode(Packet{"test-cluster", Ack{delta}}), f.c.now,
                                               {Stage::kStreamAck});
  CHECK_FALSE(ack.reply);
  CHECK(ack.finished());  // the exchange ended; one node delta of it was refused
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
  const PeerKey flooder = PeerKey::of(Address{"10.0.0.1", 5000});
  std::size_t answered = 0;
  for (int i = 0; i < 100; ++i) {
    if (f.target().handle_packet(syn, f.c.now, {Stage::kDatagram, flooder}).reply) ++answered;
  }
  CHECK(answered == limits.datagram_syn_burst);
  CHECK(f.target().stats().dropped_rate_limited == 100 - limits.datagram_syn_burst);
  // Another source, and the same source over a stream, are still answered.
  const PeerKey neighbour = PeerKey::of(Address{"10.0.0.1", 5001});
  CHECK(f.target().handle_packet(syn, f.c.now, {Stage::kDatagram, neighbour}).reply);
  CHECK(f.target().handle_packet(syn, f.c.now, {Stage::kStreamOpen}).reply);
  // One round later the flooder has datagram_syns_per_round more.
  answered = 0;
  for (int i = 0; i < 100; ++i) {
    const Outcome outcome =
        f.target().handle_packet(syn, f.c.now + interval, {Stage::kDatagram, flooder});
    if (outcome.reply) ++answered;
  }
  CHECK(answered == limits.datagram_syns_per_round);
}

TEST_CASE("forged sources cannot grow the rate limiter beyond max_rate_limited_sources") {
  SourceRateLimiter limiter(250ms, 2, 16);
  const Instant now = t0();
  for (std::uint16_t port = 1; port <= 1000; ++port) {
    // Every new source gets its burst: forgetting one only forgives it.
    CHECK(limiter.admit(PeerKey::of(Address{"10.0.0.2", port}), now));
    CHECK(limiter.sources() <= 16);
  }
  const PeerKey busy = PeerKey::of(Address{"10.0.0.3", 1});
  CHECK(limiter.admit(busy, now));
  CHECK(limiter.admit(busy, now));
  CHECK_FALSE(limiter.admit(busy, now));
  CHECK(limiter.admit(busy, now + 250ms));
  CHECK_FALSE(limiter.admit(busy, now + 250ms));
  // Zeros are read as one: one source, one admission at once.
  SourceRateLimiter tiny(1s, 0, 0);
  CHECK(tiny.admit(busy, now));
  CHECK_FALSE(tiny.admit(busy, now));
  CHECK(tiny.admit(PeerKey::of(Address{"10.0.0.4", 1}), now));
  CHECK(tiny.sources() == 1);
}

TEST_CASE("the rate limiter forgets idle sources without changing what it admits") {
  // The same generic cell rate algorithm with every source kept forever.
  struct Unforgetting {
    Duration interval;
    Duration tolerance;
    std::map<PeerKey, Instant> busy_until;
    bool admit(const PeerKey& source, Instant now) {
      const Instant start = std::max(busy_until.try_emplace(source, now).first->second, now);
      if (start - now > tolerance) return false;
      busy_until[source] = start + interval;
      return true;
    }
    std::size_t busy(Instant now) const {
      return static_cast<std::size_t>(std::count_if(busy_until.begin(), busy_until.end(),
                                                    [&](const auto& e) { return e.second > now; }));
    }
  };
  SourceRateLimiter limiter(250ms, 3, 4'096);
  Unforgetting model{250ms, 500ms, {}};
  Rng rng(13);
  Instant now = t0();
  std::size_t peak_busy = 0;
  std::size_t refused = 0;
  auto send = [&](std::uint16_t port) {
    const PeerKey source = PeerKey::of(Address{"10.0.0.2", port});
    const bool admitted = model.admit(source, now);
    CHECK(limiter.admit(source, now) == admitted);
    refused += admitted ? 0 : 1;
    peak_busy = std::max(peak_busy, model.busy(now));
  };
  // A trickle from a thousand sources, a few of them busy at a time, some
  // sending bursts beyond their rate: the map stays small.
  for (int i = 0; i < 5'000; ++i) {
    now += std::chrono::milliseconds(rng.below(60));
    const auto port = static_cast<std::uint16_t>(1 + rng.below(1'000));
    for (std::uint64_t n = rng.below(6); n > 0; --n) send(port);
    CHECK(limiter.sources() <= std::max<std::size_t>(2 * peak_busy, 8));
  }
  CHECK(refused > 0);
  CHECK(model.busy_until.size() > 900);
  CHECK(limiter.sources() * 10 < model.busy_until.size());
  // A crowd at once: kept while busy (up to twice the peak), whatever came
  // before.
  for (std::uint16_t port = 2'000; port < 2'500; ++port) send(port);
  CHECK(model.busy(now) >= 500);
  CHECK(limiter.sources() >= 500);
  CHECK(limiter.sources() <= 2 * peak_busy);
  for (int i = 0; i < 5'000; ++i) {
    now += std::chrono::milliseconds(rng.below(60));
    send(static_cast<std::uint16_t>(1 + rng.below(3'000)));
    CHECK(limiter.sources() <= std::max<std::size_t>(2 * peak_busy, 8));
  }
}
