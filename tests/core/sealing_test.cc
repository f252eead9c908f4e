// Sealed gossip (proto/README.md section 4) through the public Node API: the
// envelope round trip, every refusal counted by reason, replays, rollout
// modes and key rotation.
#include <doctest/doctest.h>

#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "envelope.h"
#include "harness.h"
#include "replay.h"

using namespace testing;

namespace {

SealKey key_of(std::uint8_t fill) {
  SealKey key{};
  key.fill(fill);
  key[0] = 0x5a;
  return key;
}

void with_keys(Config& config, std::vector<SealKey> keys, SealMode mode = SealMode::kRequired) {
  config.sealing.keyring = Keyring(std::move(keys));
  config.sealing.mode = mode;
}

// A copy of a Node would seal under the original's sender and counter: the
// same nonces under the same key. Nodes move; they do not copy.
static_assert(!std::is_copy_constructible_v<Node>);
static_assert(!std::is_copy_assignable_v<Node>);
static_assert(std::is_nothrow_move_constructible_v<Node>);

// Two nodes that know each other's address; node 0 sends the Syns.
struct Pair {
  Node a;
  Node b;
  Instant now = t0();
  Pair(const std::function<void(Config&)>& tweak_a, const std::function<void(Config&)>& tweak_b)
      : a(made(0, 1, tweak_a), t0(), 1), b(made(1, 0, tweak_b), t0(), 2) {}

  static Config made(int i, int seed, const std::function<void(Config&)>& tweak) {
    Config config = make_config(i, {seed});
    if (tweak) tweak(config);
    return config;
  }

  // The next Syn node a sends (a round later).
  Bytes syn() {
    now += 1s;
    a.handle_timeout(now);
    auto tx = a.poll_transmit();
    REQUIRE(tx.has_value());
    while (a.poll_transmit()) {
    }
    return tx->payload;
  }
  Outcome to_b(ByteView packet, Duration later = Duration::zero()) {
    return b.handle_packet(packet, now + later, Inbound{Stage::kStreamOpen, PeerKey(), {}});
  }
};

}  // namespace

TEST_CASE("an envelope opens under its key and cluster only, and any changed byte is refused") {
  const SealKey key = key_of(1);
  const envelope::Header header{envelope::key_id(key), 0x0102030405060708ULL, 9, 1'700'000'000'000};
  const Bytes plain{'h', 'e', 'l', 'l', 'o'};
  const Bytes sealed = envelope::seal(key, header, "cluster", plain);
  REQUIRE(sealed.size() == plain.size() + envelope::kOverhead);
  CHECK(sealed[0] == envelope::kMagic);
  const auto read = envelope::read_header(sealed);
  REQUIRE(read.has_value());
  CHECK(read->key_id == header.key_id);
  CHECK(read->sender == header.sender);
  CHECK(read->counter == header.counter);
  CHECK(read->timestamp_ms == header.timestamp_ms);
  CHECK(envelope::open(key, sealed, "cluster") == plain);
  CHECK_FALSE(envelope::open(key_of(2), sealed, "cluster"));
  CHECK_FALSE(envelope::open(key, sealed, "other-cluster"));
  for (std::size_t i = 2; i < sealed.size(); ++i) {
    Bytes tampered = sealed;
    tampered[i] ^= 0x01;
    CHECK_FALSE(envelope::open(key, tampered, "cluster"));
  }
  CHECK(envelope::key_id(key) != envelope::key_id(key_of(2)));
  // Never taken for a protobuf packet: the generated parser refuses it.
  Node plain_node(make_config(5), t0(), 5);
  CHECK(plain_node.handle_packet(sealed, t0(), Inbound{}).dropped == DropReason::kMalformed);
}

TEST_CASE("sealed Syns are opened and answered sealed; refusals are counted by reason") {
  Pair p([](Config& c) { with_keys(c, {key_of(1)}); },
         [](Config& c) { with_keys(c, {key_of(1)}); });
  const Bytes syn = p.syn();
  CHECK(syn[0] == envelope::kMagic);
  CHECK(p.a.stats().packets_sealed == 1);

  SUBCASE("accepted once, a replay refused") {
    const Outcome first = p.to_b(syn);
    REQUIRE(first.accepted());
    REQUIRE(first.reply.has_value());
    CHECK(first.reply->payload[0] == envelope::kMagic);
    CHECK(p.b.stats().packets_opened == 1);
    CHECK(p.to_b(syn).dropped == DropReason::kSealReplayed);
    CHECK(p.b.stats().dropped_seal_replayed == 1);
    // Days later too: refused by the window before the bitmap is asked.
    CHECK(p.to_b(syn, 72h).dropped == DropReason::kSealStale);
    CHECK(p.b.stats().dropped_seal_stale == 1);
  }
  SUBCASE("a changed byte") {
    Bytes tampered = syn;
    tampered[tampered.size() / 2] ^= 0x40;
    CHECK(p.to_b(tampered).dropped == DropReason::kSealForged);
    CHECK(p.b.stats().dropped_seal_forged == 1);
    CHECK(p.to_b(syn).accepted());  // the genuine packet still gets in
  }
  SUBCASE("a key we do not hold") {
    p.b.install_key(key_of(2));
    p.b.make_primary_key(key_of(2));
    p.b.remove_key(key_of(1));
    CHECK(p.to_b(syn).dropped == DropReason::kSealUnknownKey);
    CHECK(p.b.stats().dropped_seal_unknown_key == 1);
  }
  SUBCASE("too short or another version") {
    CHECK(p.to_b(ByteView(syn).first(envelope::kOverhead - 1)).dropped ==
          DropReason::kSealMalformed);
    Bytes v2 = syn;
    v2[1] = 2;
    CHECK(p.to_b(v2).dropped == DropReason::kSealMalformed);
    CHECK(p.b.stats().dropped_seal_malformed == 2);
  }
  SUBCASE("plaintext while sealing is required") {
    Node plain(make_config(0, {1}), t0(), 1);
    plain.handle_timeout(p.now);
    auto tx = plain.poll_transmit();
    REQUIRE(tx.has_value());
    CHECK(p.to_b(tx->payload).dropped == DropReason::kUnsealed);
    CHECK(p.b.stats().dropped_unsealed == 1);
  }
  SUBCASE("stamped too far ahead") {
    // Node a's clock runs two minutes ahead of b's.
    p.now += 2min;
    const Bytes ahead = p.syn();
    CHECK(p.b.handle_packet(ahead, p.now - 2min, Inbound{Stage::kStreamOpen, PeerKey(), {}})
              .dropped == DropReason::kSealStale);
  }
  // Every refusal above was counted once, under sealing.
  CHECK(p.b.stats().packets_dropped() == p.b.stats().seal_refusals());
  CHECK(p.b.stats().seal_refusals() > 0);
}

TEST_CASE("a fork of a node seals under nonces of its own, and forks differ by seed") {
  Pair p([](Config& c) { with_keys(c, {key_of(1)}); },
         [](Config& c) { with_keys(c, {key_of(1)}); });
  Node first = p.a.fork(11);
  Node second = p.a.fork(12);
  const Bytes original = p.syn();
  auto next_syn = [&](Node& n) {
    n.handle_timeout(p.now);
    auto tx = n.poll_transmit();
    REQUIRE(tx.has_value());
    return tx->payload;
  };
  const Bytes from_first = next_syn(first);
  const Bytes from_second = next_syn(second);
  const auto h0 = envelope::read_header(original);
  const auto h1 = envelope::read_header(from_first);
  const auto h2 = envelope::read_header(from_second);
  REQUIRE((h0 && h1 && h2));
  // Same key: only the sender keeps the nonces apart.
  CHECK(h1->sender != h0->sender);
  CHECK(h2->sender != h0->sender);
  CHECK(h2->sender != h1->sender);
  // The peer takes none of them for a replay of another.
  CHECK(p.to_b(original).accepted());
  CHECK(p.to_b(from_first).accepted());
  CHECK(p.to_b(from_second).accepted());
  // Otherwise a fork is the original: the same state, the same gossip.
  CHECK(first.cluster_state().self().heartbeat() == p.a.cluster_state().self().heartbeat());
}

TEST_CASE("a node of another cluster with the same key cannot get in") {
  Pair p([](Config& c) { with_keys(c, {key_of(1)}); },
         [](Config& c) {
           with_keys(c, {key_of(1)});
           c.cluster_id = "another";
         });
  CHECK(p.to_b(p.syn()).dropped == DropReason::kSealForged);
}

TEST_CASE("rollout: plaintext accepted and answered in plaintext until sealing is required") {
  Pair p([](Config&) {}, [](Config& c) { with_keys(c, {key_of(1)}, SealMode::kPermissive); });
  const Bytes syn = p.syn();
  CHECK(syn[0] != envelope::kMagic);
  const Outcome answered = p.to_b(syn);
  REQUIRE(answered.accepted());
  REQUIRE(answered.reply.has_value());
  CHECK(answered.reply->payload[0] != envelope::kMagic);
  // kOpenOnly sends plaintext but opens sealed packets.
  p.b.set_seal_mode(SealMode::kOpenOnly);
  p.a.install_key(key_of(1));
  const Bytes sealed = p.syn();
  CHECK(sealed[0] == envelope::kMagic);  // a's default mode seals
  const Outcome opened = p.to_b(sealed);
  REQUIRE(opened.accepted());
  CHECK(opened.reply->payload[0] != envelope::kMagic);
  p.b.set_seal_mode(SealMode::kRequired);
  CHECK(p.b.config().sealing.mode == SealMode::kRequired);
  p.a.remove_key(key_of(9));  // not installed: nothing happens
  Node plain(make_config(0, {1}), t0(), 7);
  plain.handle_timeout(p.now);
  CHECK(p.to_b(plain.poll_transmit()->payload).dropped == DropReason::kUnsealed);
}

TEST_CASE("the primary key cannot be removed, and the keyring keeps the primary first") {
  Keyring ring({key_of(1), key_of(2), key_of(1)});
  CHECK(ring.keys().size() == 2);
  CHECK(*ring.primary() == key_of(1));
  CHECK_THROWS_AS(ring.remove(key_of(1)), std::invalid_argument);
  ring.make_primary(key_of(3));
  CHECK(*ring.primary() == key_of(3));
  CHECK(ring.keys().size() == 3);
  CHECK(ring.remove(key_of(1)));
  CHECK_FALSE(ring.contains(key_of(1)));
}

TEST_CASE("replay state: a sliding bitmap per sender, bounded in total") {
  const std::int64_t start = 1'000'000;
  ReplayGuard guard(start, 60'000, 2);
  using V = ReplayGuard::Verdict;
  CHECK(guard.admit(1, 10, start + 1, start + 1) == V::kFresh);
  CHECK(guard.admit(1, 10, start + 1, start + 1) == V::kReplayed);
  CHECK(guard.admit(1, 200, start + 2, start + 2) == V::kFresh);
  CHECK(guard.admit(1, 150, start + 2, start + 2) == V::kFresh);  // out of order, in the window
  CHECK(guard.admit(1, 150, start + 2, start + 2) == V::kReplayed);
  CHECK(guard.admit(1, 200 - ReplayGuard::kBitmapBits, start + 2, start + 2) == V::kReplayed);
  CHECK(guard.admit(1, 200 - ReplayGuard::kBitmapBits + 1, start + 2, start + 2) == V::kFresh);
  CHECK(guard.admit(1, 264, start + 3, start + 3) == V::kFresh);  // a shift across both words
  CHECK(guard.admit(1, 150, start + 3, start + 3) == V::kReplayed);
  CHECK(guard.admit(1, 200, start + 3, start + 3) == V::kReplayed);
  CHECK(guard.admit(1, 201, start + 3, start + 3) == V::kFresh);
  // Stamped before this node started: refused from an unknown sender.
  CHECK(guard.admit(2, 1, start - 5, start + 3) == V::kStale);
  CHECK(guard.admit(2, 1, start + 4, start + 4) == V::kFresh);
  // A third sender evicts the one heard least recently (1, last at +3);
  // everything 1 sent up to then stays refused.
  CHECK(guard.admit(3, 1, start + 5, start + 5) == V::kFresh);
  CHECK(guard.senders() == 2);
  CHECK(guard.floor_ms() == start + 3);
  CHECK(guard.admit(1, 10, start + 1, start + 6) == V::kStale);
  CHECK(guard.admit(1, 300, start + 6, start + 6) == V::kFresh);  // its new packets get in
  // Outside the window either way.
  CHECK(guard.admit(4, 1, start + 100'000, start + 6) == V::kStale);
  CHECK(guard.admit(4, 1, start + 6, start + 70'000) == V::kStale);
  guard.expire(start + 70'000);
  CHECK(guard.senders() == 0);
}

TEST_CASE("a sealed cluster converges, and a rotation loses no member and no key") {
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    CAPTURE(seed);
    MemCluster c = MemCluster::ring(6, [&](Config& config) {
      with_keys(config, {key_of(1)});
      config.node_id.generation_id = seed + 1;
    });
    c.run(15s);
    REQUIRE(c.converged());
    const SealKey next = key_of(2);
    // Install everywhere, then make it primary everywhere, one node a round.
    for (auto& node : c.nodes) {
      node->install_key(next);
      c.step();
    }
    for (auto& node : c.nodes) {
      node->make_primary_key(next);
      node->set("rotated", "yes");
      c.step();
    }
    for (auto& node : c.nodes) {
      node->remove_key(key_of(1));
      c.step();
    }
    c.run(10s);
    CHECK(c.converged());
    for (int i = 0; i < 6; ++i) {
      for (int j = 0; j < 6; ++j) CHECK(c.value_seen(i, j, "rotated") == "yes");
      const Stats& s = c.nodes[i]->stats();
      CHECK(s.packets_dropped() == 0);
      CHECK(s.packets_opened > 0);
      CHECK(c.nodes[i]->config().sealing.keyring.keys() == std::vector<SealKey>{next});
    }
  }
}

TEST_CASE("a node holding another key is kept out") {
  MemCluster c = MemCluster::ring(4, [](Config& config) { with_keys(config, {key_of(1)}); });
  Config outsider = make_config(4, {0});
  with_keys(outsider, {key_of(7)});
  c.add(std::move(outsider));
  c.run(20s);
  for (int i = 0; i < 4; ++i) {
    CHECK(c.nodes[i]->node_state(c.nodes[4]->self_id()) == nullptr);
    CHECK(c.nodes[4]->node_state(c.nodes[i]->self_id()) == nullptr);
  }
  CHECK(c.nodes[0]->stats().dropped_seal_unknown_key > 0);
}

TEST_CASE("set_keyring replaces the ring at once; an empty one is refused") {
  Pair p([](Config& c) { with_keys(c, {key_of(1)}); },
         [](Config& c) { with_keys(c, {key_of(1)}); });
  // A reloaded file: a new primary, the old key still opening.
  p.a.set_keyring(Keyring({key_of(2), key_of(1)}));
  CHECK(p.a.config().sealing.keyring.keys() == std::vector<SealKey>{key_of(2), key_of(1)});
  const Bytes under_new = p.syn();
  CHECK(p.to_b(under_new).dropped == DropReason::kSealUnknownKey);
  p.b.set_keyring(Keyring({key_of(1), key_of(2)}));
  CHECK(p.to_b(p.syn()).accepted());
  // Sealing cannot be turned off on a running node.
  CHECK_THROWS_AS(p.a.set_keyring(Keyring{}), std::invalid_argument);
  CHECK(p.a.config().sealing.keyring.keys().size() == 2);
}

TEST_CASE("seal_key_id names a key by the id sealed packets carry") {
  CHECK(seal_key_id(key_of(1)) == envelope::key_id(key_of(1)));
  CHECK(seal_key_id(key_of(1)) != seal_key_id(key_of(2)));
  Pair p([](Config& c) { with_keys(c, {key_of(1)}); },
         [](Config& c) { with_keys(c, {key_of(1)}); });
  const Bytes syn = p.syn();
  const std::uint32_t carried = static_cast<std::uint32_t>(syn[2]) << 24 |
                                static_cast<std::uint32_t>(syn[3]) << 16 |
                                static_cast<std::uint32_t>(syn[4]) << 8 | syn[5];
  CHECK(carried == seal_key_id(key_of(1)));
}
