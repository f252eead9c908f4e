// Where replicated state keeps its bytes (core/src/storage.h): key-values
// stay in the packet that brought them when it is mostly key-values, are
// copied otherwise, and the garbage of overwritten values stays bounded.
#include "storage.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "harness.h"
#include "hash.h"
#include "hash_index.h"

using namespace testing;

namespace {

// An Ack from `sender` with what a peer that knows nothing lacks.
Bytes full_ack(const ClusterState& sender, const std::string& cluster_id) {
  Rng rng(3);
  const auto size = [&](std::size_t delta_len) {
    return wire_size::length_delimited(cluster_id.size()) +
           wire_size::length_delimited(wire_size::length_delimited(delta_len));
  };
  return encode(Packet{cluster_id, Ack{sender.delta_for(Digest{}, size, 65'507, rng)}});
}

// A node of `config` that accepts an Ack from the third party `from`.
std::optional<Reply> feed_ack(Node& node, Bytes bytes, bool give) {
  const Inbound from{Stage::kStreamAck};
  if (give) return node.handle_packet(std::move(bytes), t0(), from).reply;
  return node.handle_packet(ByteView(bytes), t0(), from).reply;
}

}  // namespace

TEST_CASE("a packet of key-values is kept, not copied, when the node is given its bytes") {
  ClusterState owner(make_config(5).node_id);
  for (int k = 0; k < 200; ++k) owner.self().set("key-" + std::to_string(k), "value", t0());
  const Bytes ack = full_ack(owner, "test-cluster");

  Node given(make_config(0), t0(), 1);
  feed_ack(given, ack, true);
  CHECK(given.stats().key_values_applied == 200);
  CHECK(given.stats().key_value_bytes_copied == 0);

  // Without the bytes (a driver's reused datagram buffer), what is kept is copied.
  Node lent(make_config(0), t0(), 1);
  feed_ack(lent, ack, false);
  CHECK(lent.stats().key_values_applied == 200);
  CHECK(lent.stats().key_value_bytes_copied > 200 * std::string("key-0value").size());

  // Both hold the same state.
  for (const Node* n : {&given, &lent}) {
    const NodeState* st = n->node_state(owner.self_id());
    REQUIRE(st != nullptr);
    CHECK(st->size() == 200);
    CHECK(st->value("key-199") == "value");
  }
}

TEST_CASE("a packet that is mostly something else has its few key-values copied") {
  // SynAcks whose digest announces 300 nodes and whose delta carries one
  // key: the node keeps that key, not the 9 KB packet around it.
  ClusterState responder(make_config(5).node_id);
  for (int i = 0; i < 300; ++i) {
    responder.find_or_create(NodeId{"other-" + std::to_string(i), 1, Address{"10.1.1.1", 1}, ""},
                             SIZE_MAX);
  }
  Node node(make_config(0), t0(), 1);
  Rng rng(1);
  auto synack_to_node = [&](const std::string& key) {
    responder.self().set(key, "v", t0());
    const NodeState* known = node.node_state(responder.self_id());
    const Digest seen{{NodeDigest{responder.self_id(), 0, 0, known ? known->max_version() : 0}}};
    SynAck synack{responder.digest(40'000, rng), {}};
    synack.delta = responder.delta_for(
        seen, [](std::size_t n) { return n + 20'000; }, 65'507, rng);
    REQUIRE(synack.delta.node_deltas.size() == 1);
    Bytes packet = encode(Packet{"test-cluster", synack});
    CHECK(packet.size() > 9'000);
    node.handle_timeout(node.poll_timeout().value_or(t0()));  // the Syn this answers
    while (node.poll_transmit()) {
    }
    node.handle_packet(std::move(packet), t0(), Inbound{Stage::kStreamReply});
  };
  synack_to_node("first");
  const std::size_t held = node.cluster_state().bytes_held();
  synack_to_node("second");
  CHECK(node.stats().key_values_applied == 2);
  CHECK(node.stats().key_value_bytes_copied > 0);
  CHECK(node.cluster_state().bytes_held() < held + 1024);
}

TEST_CASE("the garbage of overwritten values stays within twice what is in use") {
  ClusterState owner(make_config(5).node_id);
  ClusterState replica(make_config(0).node_id);
  const std::string big(200, 'x');
  std::uint64_t applied = 0;
  for (int round = 0; round < 2'000; ++round) {
    // Each round rewrites a few of 50 keys; the replica applies each round's
    // delta from its own packet (taken over: every packet is key-values).
    for (int j = 0; j < 3; ++j) {
      owner.self().set("key-" + std::to_string((round * 3 + j) % 50), big + std::to_string(round),
                       t0());
    }
    const NodeState* held = replica.find(owner.self_id());
    Digest seen;
    if (held != nullptr) {
      seen.node_digests.push_back(
          NodeDigest{owner.self_id(), 0, held->last_gc_version(), held->max_version()});
    }
    Rng rng(round);
    const Delta delta = owner.delta_for(
        seen, [](std::size_t n) { return n + 16; }, 65'507, rng);
    applied += replica.apply(delta, t0(), {}, [](const NodeId&, KeyChange) {}).key_values;
    CHECK(replica.bytes_held() <= 2 * replica.bytes_in_use() + 64 * 1024);
  }
  CHECK(applied >= 6'000);
  const NodeState* st = replica.find(owner.self_id());
  REQUIRE(st != nullptr);
  CHECK(st->size() == 50);
  CHECK(st->max_version() == owner.self().max_version());
  owner.self().for_each(
      [&](std::string_view key, const VersionedValue& vv) { CHECK(st->find(key) == vv); });
}

TEST_CASE("the slab pool reuses freed blocks and hands out disjoint ones") {
  SlabPool pool;
  std::set<std::pair<std::uintptr_t, std::uintptr_t>> ranges;
  std::vector<std::pair<void*, std::size_t>> blocks;
  for (std::size_t size = 1; size <= 5000; size += 37) {
    void* p = pool.allocate(size, 8);
    std::memset(p, 0xab, size);  // writable, and ASan checks the bounds of large ones
    const auto begin = reinterpret_cast<std::uintptr_t>(p);
    // No block overlaps another.
    const auto next = ranges.lower_bound({begin, 0});
    if (next != ranges.end()) CHECK(begin + size <= next->first);
    if (next != ranges.begin()) CHECK(std::prev(next)->second <= begin);
    ranges.insert({begin, begin + size});
    blocks.emplace_back(p, size);
  }
  // A freed block of a size is the next one given for that size.
  auto [first, size] = blocks.front();
  pool.deallocate(first, size, 8);
  CHECK(pool.allocate(size, 8) == first);
  for (auto [p, n] : blocks) pool.deallocate(p, n, 8);
}

TEST_CASE("the slab pool leaves at most a slab or two unused") {
  // Node states (a FixedPool of whole slabs) and their logs (pool classes)
  // taken in turn, as replicas are made.
  SlabPool pool;
  FixedPool states(pool, 80);
  std::vector<void*> logs;
  constexpr std::size_t kReplicas = 5000;
  for (std::size_t i = 0; i < kReplicas; ++i) {
    std::memset(states.allocate(), 0xab, 80);
    logs.push_back(pool.allocate(72, 8));  // three log entries
  }
  // Whole slabs of each, a slab's rest below one block carved elsewhere.
  auto slabs_for = [](std::size_t blocks, std::size_t size) {
    const std::size_t per_slab = SlabPool::kSlab / size;
    return (blocks + per_slab - 1) / per_slab;
  };
  const std::size_t needed = slabs_for(kReplicas, 80) + slabs_for(kReplicas, 72);
  CHECK(pool.held() <= (needed + 1) * SlabPool::kSlab);
  for (void* p : logs) pool.deallocate(p, 72, 8);
}

TEST_CASE("the slab pool leaves blocks of over a quarter slab to operator new") {
  // A one-page slab would hold one such block and leave the rest unused.
  SlabPool pool;
  void* large = pool.allocate(SlabPool::kSlab / 4 + 8, 8);
  CHECK(pool.held() == 0);
  void* small = pool.allocate(SlabPool::kSlab / 4, 8);
  CHECK(pool.held() == SlabPool::kSlab);
  pool.deallocate(small, SlabPool::kSlab / 4, 8);
  pool.deallocate(large, SlabPool::kSlab / 4 + 8, 8);
}

TEST_CASE("the hash of keys and ids depends on the node's seed") {
  const std::string_view key = "role";
  CHECK(hash_bytes(key, 1) == hash_bytes(key, 1));
  CHECK(hash_bytes(key, 1) != hash_bytes(key, 2));
  // Every length hashes every byte.
  std::string text(40, 'a');
  for (std::size_t n = 0; n <= text.size(); ++n) {
    for (std::size_t at = 0; at < n; ++at) {
      std::string other = text.substr(0, n);
      other[at] = 'b';
      CHECK(hash_bytes(other, 7) != hash_bytes(text.substr(0, n), 7));
    }
  }
}

TEST_CASE("the hash index finds what was inserted and not erased, whatever the collisions") {
  // Against a model, through growth and backward-shift erasure; with few
  // distinct hashes, long runs of equal hashes wrap around the table.
  for (const std::uint32_t hashes : {std::uint32_t{1}, std::uint32_t{7}, ~std::uint32_t{0}}) {
    CAPTURE(hashes);
    HashIndex index;
    std::map<std::uint32_t, std::uint32_t> hash_of;  // value -> hash, the values held
    Rng rng(hashes);
    auto hash_for = [&](std::uint32_t value) {
      return hashes == ~std::uint32_t{0} ? value * 2654435761u : value % hashes * 0x9e3779b9u;
    };
    for (int step = 0; step < 4000; ++step) {
      const auto value = static_cast<std::uint32_t>(rng.below(600));
      if (hash_of.count(value) != 0) {
        index.erase(hash_of[value], value);
        hash_of.erase(value);
      } else {
        index.insert(hash_for(value), value);
        hash_of[value] = hash_for(value);
      }
      REQUIRE(index.size() == hash_of.size());
      if (step % 97 != 0) continue;
      for (std::uint32_t v = 0; v < 600; ++v) {
        const std::uint32_t found =
            index.find(hash_for(v), [&](std::uint32_t candidate) { return candidate == v; });
        CHECK(found == (hash_of.count(v) != 0 ? v : HashIndex::kNone));
      }
    }
  }
}

TEST_CASE("the id table holds one copy of each id until its last holder lets go") {
  IdTable ids(11);
  std::vector<Bytes> encoded;
  for (int i = 0; i < 300; ++i) {
    const std::string text = "node-" + std::to_string(i);
    encoded.emplace_back(text.begin(), text.end());
  }
  encoded.emplace_back();  // an empty id is an id too
  std::vector<IdTable::Ref> refs;
  for (const Bytes& id : encoded) refs.push_back(ids.hold(id));
  CHECK(ids.size() == encoded.size());
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    CHECK(ids.hold(encoded[i]) == refs[i]);  // a second holder
    CHECK(std::ranges::equal(ids.bytes(refs[i]), encoded[i]));
  }
  for (std::size_t i = 0; i < encoded.size(); i += 2) ids.release(refs[i]);
  CHECK(ids.size() == encoded.size());  // each still held once
  for (std::size_t i = 0; i < encoded.size(); i += 2) ids.release(refs[i]);
  CHECK(ids.size() == encoded.size() / 2);
  for (std::size_t i = 1; i < encoded.size(); i += 2) {
    CHECK(ids.hold(encoded[i]) == refs[i]);
    CHECK(std::ranges::equal(ids.bytes(refs[i]), encoded[i]));
  }
  // Ids let go of come back under refs of their own.
  for (std::size_t i = 0; i < encoded.size(); i += 2) {
    const IdTable::Ref ref = ids.hold(encoded[i]);
    CHECK(std::ranges::equal(ids.bytes(ref), encoded[i]));
  }
  CHECK(ids.size() == encoded.size());
}
