#include <doctest/doctest.h>

#include <algorithm>
#include <span>
#include <stdexcept>

#include "codec_internal.h"
#include "harness.h"
#include "packing.h"

using namespace testing;

namespace {

NodeId nid(const std::string& name) { return NodeId{name, 1, Address{"h", 1}, ""}; }

// Whole-packet size of an Ack carrying a delta body of `len` bytes.
PacketSizeForDelta ack_size(const std::string& cluster_id) {
  return [cluster_id](std::size_t len) {
    return wire_size::length_delimited(cluster_id.size()) +
           wire_size::length_delimited(wire_size::length_delimited(len));
  };
}

Delta delta_for(const ClusterState& cs, const Digest& peer, std::size_t budget = 65507) {
  Rng rng(1);
  return cs.delta_for(peer, ack_size("c"), budget, rng);
}

const auto no_events = [](const NodeId&, KeyChange) {};

}  // namespace

TEST_CASE("digest lists every node not scheduled for deletion, self first") {
  ClusterState cs(nid("self"));
  cs.self().set("k", "v", t0());
  cs.find_or_create(nid("a"), 10);
  cs.find_or_create(nid("b"), 10)->schedule_for_deletion();
  Rng rng(1);
  const Digest d = cs.digest(65507, rng);
  REQUIRE(d.node_digests.size() == 2);
  CHECK(d.node_digests[0].node_id == nid("self"));
  CHECK(d.node_digests[0].max_version == 1);
  CHECK(d.node_digests[1].node_id == nid("a"));
}

TEST_CASE("a digest too large for its budget is cut, self kept") {
  ClusterState cs(nid("self"));
  for (int i = 0; i < 100; ++i) cs.find_or_create(nid("n" + std::to_string(i)), 1000);
  Rng rng(1);
  const std::size_t budget = 500;
  const Digest d = cs.digest(budget, rng);
  CHECK(d.node_digests.size() < 101);
  CHECK(d.node_digests[0].node_id == nid("self"));
  CHECK(wire_size::digest(d) <= budget);
  CHECK(wire_size::digest(d) > budget - 30);  // filled, not merely cut short
}

TEST_CASE("delta: skip what the peer has, send from its max_version") {
  ClusterState cs(nid("self"));
  for (int i = 0; i < 5; ++i) cs.self().set("k" + std::to_string(i), "v", t0());
  // Peer has versions up to 3.
  Digest peer{{NodeDigest{nid("self"), 1, 0, 3}}};
  Delta d = delta_for(cs, peer);
  REQUIRE(d.node_deltas.size() == 1);
  const NodeDelta& nd = d.node_deltas[0];
  CHECK(nd.from_version_excluded == 3);
  REQUIRE(nd.key_values.size() == 2);
  CHECK(nd.key_values[0].version == 4);
  CHECK(nd.key_values[1].version == 5);
  CHECK(nd.max_version == 5);
  // Up to date: nothing to send.
  CHECK(delta_for(cs, Digest{{NodeDigest{nid("self"), 1, 0, 5}}}).node_deltas.empty());
}

TEST_CASE("delta: reset from 0 when the peer is behind our last_gc_version") {
  ClusterState cs(nid("self"));
  cs.self().set("a", "1", t0());  // v1
  cs.self().set("b", "2", t0());  // v2
  cs.self().remove("b", t0());    // v3
  cs.self().set("c", "3", t0());  // v4
  cs.self().gc_tombstones(t0());  // last_gc_version = 3
  REQUIRE(cs.self().last_gc_version() == 3);
  // Peer at (0, 2): behind the GC horizon, must reset.
  Delta d = delta_for(cs, Digest{{NodeDigest{nid("self"), 1, 0, 2}}});
  REQUIRE(d.node_deltas.size() == 1);
  CHECK(d.node_deltas[0].from_version_excluded == 0);
  CHECK(d.node_deltas[0].last_gc_version == 3);
  CHECK(d.node_deltas[0].key_values.size() == 2);  // a and c
  // Peer at (0, 3) already holds everything up to the GC horizon: no reset.
  Delta d2 = delta_for(cs, Digest{{NodeDigest{nid("self"), 1, 0, 3}}});
  CHECK(d2.node_deltas[0].from_version_excluded == 3);
  CHECK(d2.node_deltas[0].key_values.size() == 1);
}

TEST_CASE("delta: max_version announced even with no stale key-values (after GC)") {
  ClusterState cs(nid("self"));
  cs.self().set("a", "1", t0());
  cs.self().remove("a", t0());
  cs.self().gc_tombstones(t0());  // lgc 2, max 2, no entries
  Delta d = delta_for(cs, Digest{{NodeDigest{nid("self"), 1, 2, 1}}});
  REQUIRE(d.node_deltas.size() == 1);
  CHECK(d.node_deltas[0].key_values.empty());
  CHECK(d.node_deltas[0].max_version == 2);
}

TEST_CASE(
    "delta: the packet never exceeds the budget, and a partial node ends at its last version") {
  ClusterState cs(nid("self"));
  for (int i = 0; i < 200; ++i)
    cs.self().set("key" + std::to_string(i), std::string(50, 'x'), t0());
  for (std::size_t budget : {200u, 333u, 1000u, 4096u, 9999u}) {
    Delta d = delta_for(cs, Digest{}, budget);
    const Packet p{"c", Ack{d}};
    CHECK(encode(p).size() <= budget);
    CHECK(encode(p).size() > budget - 80);  // nearly full
    REQUIRE(d.node_deltas.size() == 1);
    const auto& nd = d.node_deltas[0];
    CHECK(nd.max_version == nd.key_values.back().version);
    CHECK(nd.key_values.back().version < 200);
  }
}

TEST_CASE("delta: unknown nodes first, then the most stale") {
  ClusterState cs(nid("self"));
  auto fill = [&](const std::string& name, int n) {
    NodeState* st = cs.find_or_create(nid(name), 10);
    Delta d{{NodeDelta{nid(name), 0, 0, {}, std::nullopt}}};
    for (int i = 1; i <= n; ++i)
      d.node_deltas[0].key_values.push_back(
          {"k" + std::to_string(i), "v", static_cast<std::uint64_t>(i), KeyStatus::kSet});
    cs.apply(d, t0(), ApplyLimits{}, no_events);
    REQUIRE(st->max_version() == static_cast<std::uint64_t>(n));
  };
  fill("known-far", 50);
  fill("known-near", 10);
  fill("unknown", 2);
  Digest peer{{NodeDigest{nid("self"), 0, 0, 0}, NodeDigest{nid("known-far"), 0, 0, 0},
               NodeDigest{nid("known-near"), 0, 0, 5}}};
  Delta d = delta_for(cs, peer);
  REQUIRE(d.node_deltas.size() == 3);
  CHECK(d.node_deltas[0].node_id == nid("unknown"));
  CHECK(d.node_deltas[1].node_id == nid("known-far"));
  CHECK(d.node_deltas[2].node_id == nid("known-near"));
}

TEST_CASE("apply: gap, reset and tombstone rules") {
  ClusterState cs(nid("self"));
  auto kv = [](std::string k, std::uint64_t v, KeyStatus s = KeyStatus::kSet) {
    return KeyValueUpdate{std::move(k), s == KeyStatus::kDeleted ? "" : "v", v, s};
  };
  // A node we do not know must start at 0.
  ApplyReport r =
      cs.apply(Delta{{NodeDelta{nid("a"), 2, 0, {kv("x", 3)}, 3}}}, t0(), {}, no_events);
  CHECK(r.rejected_gap == 1);
  CHECK(cs.find(nid("a")) == nullptr);

  r = cs.apply(Delta{{NodeDelta{nid("a"), 0, 0, {kv("x", 1), kv("y", 2), kv("w", 4)}, 4}}}, t0(),
               {}, no_events);
  CHECK(r.applied == 1);
  const NodeState* a = cs.find(nid("a"));
  CHECK(a->max_version() == 4);
  CHECK(a->size() == 3);

  // Gap: from 5 > our max 4.
  r = cs.apply(Delta{{NodeDelta{nid("a"), 5, 0, {kv("z", 6)}, 6}}}, t0(), {}, no_events);
  CHECK(r.rejected_gap == 1);
  // Reset needed (lgc 7 > our max 4) but not from 0: rejected.
  r = cs.apply(Delta{{NodeDelta{nid("a"), 4, 7, {kv("z", 8)}, 8}}}, t0(), {}, no_events);
  CHECK(r.rejected_reset == 1);
  CHECK(a->max_version() == 4);
  // Reset from 0: the replica is wiped, old tombstones at or below lgc skipped.
  r = cs.apply(Delta{{NodeDelta{nid("a"),
                                0,
                                7,
                                {kv("x", 1), kv("old", 6, KeyStatus::kDeleted), kv("z", 8),
                                 kv("gone", 9, KeyStatus::kDeleted)},
                                9}}},
               t0(), {}, no_events);
  CHECK(r.resets == 1);
  CHECK(a->last_gc_version() == 7);
  CHECK(a->max_version() == 9);
  CHECK_FALSE(a->find("y"));    // wiped
  CHECK_FALSE(a->find("old"));  // tombstone below the GC horizon
  CHECK(a->find("gone")->status == KeyStatus::kDeleted);
  CHECK(a->value("z") == "v");

  // Key-values at or below our max_version are not re-applied; a delta about
  // ourselves is ignored.
  std::size_t changes = 0;
  cs.apply(Delta{{NodeDelta{nid("a"), 0, 7, {kv("z", 8)}, 9},
                  NodeDelta{nid("self"), 0, 0, {kv("evil", 100)}, 100}}},
           t0(), {}, [&](const NodeId&, KeyChange) { ++changes; });
  CHECK(changes == 0);
  CHECK_FALSE(cs.self().find("evil"));
}

TEST_CASE("apply: a key a new node's delta repeats ends at its last version, each change told") {
  // Only a corrupt peer repeats a key within a node delta; the versions still
  // increase, so it is well formed, and each write replaces the one before.
  ClusterState cs(nid("self"));
  std::vector<KeyChange> changes;
  const ApplyReport r = cs.apply(Delta{{NodeDelta{nid("a"),
                                                  0,
                                                  0,
                                                  {{"x", "1", 1, KeyStatus::kSet},
                                                   {"y", "2", 2, KeyStatus::kSet},
                                                   {"x", "3", 3, KeyStatus::kDeleteAfterTtl},
                                                   {"z", "4", 4, KeyStatus::kSet}},
                                                  4}}},
                                 t0(), {}, [&](const NodeId& id, KeyChange change) {
                                   CHECK(id == nid("a"));
                                   changes.push_back(std::move(change));
                                 });
  CHECK(r.applied == 1);
  CHECK(r.key_values == 4);
  const NodeState* a = cs.find(nid("a"));
  REQUIRE(a != nullptr);
  CHECK(a->size() == 3);
  CHECK(a->max_version() == 4);
  CHECK(a->find("x") == VersionedValue{"3", 3, KeyStatus::kDeleteAfterTtl});
  CHECK(a->find("z") == VersionedValue{"4", 4, KeyStatus::kSet});
  REQUIRE(changes.size() == 4);
  CHECK(changes[0].key == "x");
  CHECK_FALSE(changes[0].old_value);
  CHECK(changes[1].key == "y");
  CHECK(changes[2].key == "x");
  CHECK(changes[2].old_value == VersionedValue{"1", 1, KeyStatus::kSet});
  CHECK(changes[2].new_value == VersionedValue{"3", 3, KeyStatus::kDeleteAfterTtl});
  CHECK(changes[3].key == "z");
  CHECK_FALSE(changes[3].old_value);
  std::vector<std::uint64_t> versions;
  a->for_each_since(0, [&](std::string_view, const VersionedValue& vv) {
    versions.push_back(vv.version);
    return true;
  });
  CHECK(versions == std::vector<std::uint64_t>{2, 3, 4});
}

TEST_CASE("apply: malformed node deltas are rejected whole") {
  ClusterState cs(nid("self"));
  auto apply = [&](NodeDelta nd) { return cs.apply(Delta{{std::move(nd)}}, t0(), {}, no_events); };
  // Versions not increasing.
  CHECK(apply(NodeDelta{nid("a"), 0, 0, {{"x", "", 2, {}}, {"y", "", 2, {}}}, 2})
            .rejected_malformed == 1);
  // A version beyond max_version.
  CHECK(apply(NodeDelta{nid("a"), 0, 0, {{"x", "", 5, {}}}, 4}).rejected_malformed == 1);
  // A version at or below from_version_excluded.
  CHECK(apply(NodeDelta{nid("a"), 0, 0, {{"x", "", 0, {}}}, 4}).rejected_malformed == 1);
  CHECK(cs.find(nid("a")) == nullptr);
  // Without max_version (older peers) the last key-value's version counts.
  CHECK(apply(NodeDelta{nid("a"), 0, 0, {{"x", "", 3, {}}}, std::nullopt}).applied == 1);
  CHECK(cs.find(nid("a"))->max_version() == 3);
}

TEST_CASE("apply: limits on nodes and keys") {
  ClusterState cs(nid("self"));
  ApplyLimits limits;
  limits.max_nodes = 2;
  limits.max_keys_per_node = 2;
  limits.max_key_size = 4;
  CHECK(
      cs.apply(Delta{{NodeDelta{
                   nid("a"), 0, 0, {{"k1", "", 1, {}}, {"k2", "", 2, {}}, {"k3", "", 3, {}}}, 3}}},
               t0(), limits, no_events)
          .rejected_limit == 1);
  CHECK(
      cs.apply(Delta{{NodeDelta{nid("b"), 0, 0, {{"k1", "", 1, {}}}, 1}}}, t0(), limits, no_events)
          .applied == 1);
  CHECK(
      cs.apply(Delta{{NodeDelta{nid("c"), 0, 0, {{"k1", "", 1, {}}}, 1}}}, t0(), limits, no_events)
          .rejected_limit == 1);
  CHECK(cs.apply(Delta{{NodeDelta{nid("b"), 1, 0, {{"long-key", "", 2, {}}}, 2}}}, t0(), limits,
                 no_events)
            .rejected_malformed == 1);
  CHECK(cs.size() == 2);
}

TEST_CASE("apply: a callback that throws leaves every stored key-value held") {
  // A new node's key-values hold the packet's bytes in one step at the end
  // of its delta; a throwing callback must not skip it.
  ClusterState cs(nid("self"));
  int calls = 0;
  CHECK_THROWS_AS(
      cs.apply(
          Delta{{NodeDelta{
              nid("a"), 0, 0, {{"x", "v1", 1, {}}, {"y", "v2", 2, {}}, {"z", "v3", 3, {}}}, 3}}},
          t0(), {},
          [&](const NodeId&, KeyChange) {
            if (++calls == 2) throw std::runtime_error("callback");
          }),
      std::runtime_error);
  const NodeState* a = cs.find(nid("a"));
  REQUIRE(a != nullptr);
  CHECK(a->size() == 2);
  CHECK(a->find("x") == VersionedValue{"v1", 1, KeyStatus::kSet});
  CHECK(a->find("y") == VersionedValue{"v2", 2, KeyStatus::kSet});
  CHECK(cs.bytes_in_use() > 0);
  CHECK(cs.bytes_in_use() <= cs.bytes_held());
}

TEST_CASE("apply: a callback that throws leaves the nodes created so far in id order") {
  // New nodes are placed in id order once their packet is applied; a throw
  // from the callback must not skip that, or lookups by id miss them.
  ClusterState cs(nid("m"));
  int calls = 0;
  auto one_key = [](const std::string& name) {
    return NodeDelta{nid(name), 0, 0, {{"x", name, 1, {}}}, 1};
  };
  CHECK_THROWS_AS(
      cs.apply(Delta{{one_key("z"), one_key("c"), one_key("a"), one_key("b")}}, t0(), {},
               [&](const NodeId&, KeyChange) {
                 if (++calls == 3) throw std::runtime_error("callback");
               }),
      std::runtime_error);
  std::vector<std::string> names;
  for (const auto& [id, st] : cs.nodes()) names.push_back(id.name);
  CHECK(names == std::vector<std::string>{"a", "c", "m", "z"});
  for (const char* name : {"z", "c", "a"}) {
    const NodeState* st = cs.find(nid(name));
    REQUIRE(st != nullptr);
    CHECK(st->value("x") == name);
  }
  CHECK(cs.find(nid("b")) == nullptr);
}

TEST_CASE("apply: many new nodes at once are placed in id order among the known ones") {
  // A packet's many new nodes are sorted by a radix sort of their names'
  // first eight bytes, then by whole id where those tie: names shorter than
  // eight bytes, names that share them, ids that differ after the name.
  std::vector<NodeId> ids;
  for (int i = 0; i < 120; ++i) ids.push_back(nid("member-" + std::to_string(i * 7919 % 1000)));
  for (int i = 0; i < 60; ++i) ids.push_back(nid("n" + std::to_string(i)));
  for (int i = 0; i < 40; ++i) {
    ids.push_back(NodeId{"same-name-long", static_cast<std::uint64_t>(40 - i),
                         Address{i % 2 == 0 ? "a" : "b", static_cast<std::uint16_t>(i)}, ""});
  }
  for (int i = 0; i < 30; ++i) ids.push_back(nid(std::string(1, static_cast<char>('A' + i))));
  ids.push_back(NodeId{"same-name-long", 3, Address{"a", 2}, "tls"});
  ClusterState cs(nid("member-5"));
  for (const char* known : {"member-500", "n", "zzz", "0"}) cs.find_or_create(nid(known), 1000);
  Rng rng(7);
  rng.shuffle(std::span(ids));
  Delta delta;
  for (const NodeId& id : ids)
    delta.node_deltas.push_back(NodeDelta{id, 0, 0, {{"k", "v", 1, {}}}, 1});
  const ApplyReport report = cs.apply(delta, t0(), {}, no_events);
  CHECK(report.applied == ids.size());
  REQUIRE(cs.size() == ids.size() + 5);
  std::vector<NodeId> order;
  for (const auto& [id, st] : cs.nodes()) order.push_back(id);
  CHECK(std::is_sorted(order.begin(), order.end()));
  CHECK(std::adjacent_find(order.begin(), order.end()) == order.end());
  for (const NodeId& id : ids) {
    const NodeState* st = cs.find(id);
    REQUIRE(st != nullptr);
    CHECK(st->value("k") == "v");
  }
  CHECK(cs.tls_named() == 1);
}

TEST_CASE("apply: new nodes are placed among many known ones, below, above and between them") {
  // New nodes are merged in from the back among the known ones: packets of
  // one, a few and many new nodes, first or last in id order or between
  // known ones, with names that share their first eight bytes.
  ClusterState cs(nid("node-500"));
  Rng rng(11);
  std::vector<NodeId> pool;
  for (int i = 0; i < 1000; ++i) pool.push_back(nid("node-" + std::to_string(i * 7919 % 1000)));
  pool.push_back(nid("A"));
  pool.push_back(nid("zzzz-last"));
  rng.shuffle(std::span(pool));
  std::size_t next = 0;
  for (const std::size_t batch : {1, 2, 5, 300, 1, 64, 3, 200, 1, 425}) {
    Delta delta;
    for (std::size_t i = 0; i < batch && next < pool.size(); ++i, ++next) {
      if (pool[next] == cs.self_id()) continue;
      delta.node_deltas.push_back(NodeDelta{pool[next], 0, 0, {{"k", "v", 1, {}}}, 1});
    }
    cs.apply(delta, t0(), {}, no_events);
    std::vector<NodeId> order;
    for (const auto& [id, st] : cs.nodes()) order.push_back(id);
    REQUIRE(std::is_sorted(order.begin(), order.end()));
    REQUIRE(std::adjacent_find(order.begin(), order.end()) == order.end());
  }
  CHECK(cs.size() == pool.size());
  for (const NodeId& id : pool) CHECK(cs.find(id) != nullptr);
}

TEST_CASE("apply: a new replica is looked up, updated and collected before it has a key index") {
  // A first delta of at most 128 key-values leaves its replica without a key
  // index: const lookups scan it, the next update or collection builds it.
  ClusterState cs(nid("self"));
  std::vector<KeyValueUpdate> kvs;
  for (std::uint64_t v = 1; v <= 50; ++v) {
    kvs.push_back({"key-" + std::to_string(v), "v" + std::to_string(v), v,
                   v == 7 ? KeyStatus::kDeleteAfterTtl : KeyStatus::kSet});
  }
  REQUIRE(cs.apply(Delta{{NodeDelta{nid("a"), 0, 0, kvs, 50}}}, t0(), {}, no_events).applied == 1);
  const NodeState* a = cs.find(nid("a"));
  REQUIRE(a != nullptr);
  CHECK(a->size() == 50);
  for (const KeyValueUpdate& kv : kvs) {
    CHECK(a->find(kv.key) == VersionedValue{kv.value, kv.version, kv.status});
  }
  CHECK_FALSE(a->find("key-51"));  // the same size as a stored key
  CHECK_FALSE(a->find("key-5 "));
  CHECK_FALSE(a->find(""));
  CHECK(a->status_changed_at("key-7") == t0());
  CHECK_FALSE(a->status_changed_at("key-8"));

  // An update: the change is told against the first delta's entry.
  std::vector<KeyChange> changes;
  cs.apply(
      Delta{{NodeDelta{nid("a"), 50, 0, {{"key-3", "new", 51, {}}, {"other", "o", 52, {}}}, 52}}},
      t0(), {}, [&](const NodeId&, KeyChange change) { changes.push_back(std::move(change)); });
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].old_value == VersionedValue{"v3", 3, KeyStatus::kSet});
  CHECK(changes[0].new_value == VersionedValue{"new", 51, KeyStatus::kSet});
  CHECK_FALSE(changes[1].old_value);
  CHECK(a->size() == 51);
  CHECK(a->find("key-3") == VersionedValue{"new", 51, KeyStatus::kSet});
  CHECK(a->find("key-4") == VersionedValue{"v4", 4, KeyStatus::kSet});
  CHECK_FALSE(a->find("key-51"));

  // Garbage collection of a tombstone in a replica that has no index yet.
  cs.apply(Delta{{NodeDelta{nid("b"), 0, 0, kvs, 50}}}, t0(), {}, no_events);
  CHECK(cs.gc_tombstones(t0() + std::chrono::hours(1), std::chrono::minutes(1)) == 2);
  const NodeState* b = cs.find(nid("b"));
  CHECK(b->size() == 49);
  CHECK_FALSE(b->find("key-7"));
  CHECK(b->find("key-8") == VersionedValue{"v8", 8, KeyStatus::kSet});
  CHECK(b->last_gc_version() == 7);
}

TEST_CASE("apply: keys a new node's delta repeats are told at every size of delta") {
  // A first delta of up to 128 key-values is appended without an index, its
  // keys told apart by a scratch table; a longer one through the index.
  // Either way a repeated key replaces the entry before it and is told so.
  for (const std::size_t n : {2, 100, 125, 126, 300}) {
    CAPTURE(n);
    ClusterState cs(nid("self"));
    std::vector<KeyValueUpdate> kvs;
    for (std::size_t i = 0; i < n; ++i) {
      kvs.push_back({"k" + std::to_string(i), "v", static_cast<std::uint64_t>(i + 1), {}});
    }
    kvs.push_back({"k0", "again", n + 1, {}});
    kvs.push_back({"k" + std::to_string(n - 1), "again", n + 2, {}});
    kvs.push_back({"last", "x", n + 3, {}});
    std::vector<KeyChange> changes;
    const ApplyReport r =
        cs.apply(Delta{{NodeDelta{nid("a"), 0, 0, kvs, n + 3}}}, t0(), {},
                 [&](const NodeId&, KeyChange change) { changes.push_back(std::move(change)); });
    CHECK(r.key_values == n + 3);
    const NodeState* a = cs.find(nid("a"));
    REQUIRE(a != nullptr);
    CHECK(a->size() == n + 1);
    REQUIRE(changes.size() == n + 3);
    for (std::size_t i = 0; i < n; ++i) CHECK_FALSE(changes[i].old_value);
    CHECK(changes[n].old_value == VersionedValue{"v", 1, KeyStatus::kSet});
    CHECK(changes[n + 1].old_value == VersionedValue{"v", n, KeyStatus::kSet});
    CHECK_FALSE(changes[n + 2].old_value);
    CHECK(a->find("k0") == VersionedValue{"again", n + 1, KeyStatus::kSet});
    CHECK(a->find("k1") == (n > 2
                                ? std::optional(VersionedValue{"v", 2, KeyStatus::kSet})
                                : std::optional(VersionedValue{"again", n + 2, KeyStatus::kSet})));
    CHECK(a->find("last") == VersionedValue{"x", n + 3, KeyStatus::kSet});
  }
}

TEST_CASE("apply: key and value sizes are checked exactly against their limits") {
  // read_packet bounds the sizes by their bitwise or (3 | 4 = 7): a delta
  // whose bound exceeds a limit is checked key-value by key-value.
  ClusterState cs(nid("self"));
  ApplyLimits limits;
  limits.max_key_size = 4;
  limits.max_value_size = 4;
  auto apply = [&](NodeDelta nd) {
    return cs.apply(Delta{{std::move(nd)}}, t0(), limits, no_events);
  };
  CHECK(apply(NodeDelta{nid("a"), 0, 0, {{"abc", "xyz", 1, {}}, {"abcd", "wxyz", 2, {}}}, 2})
            .applied == 1);
  CHECK(cs.find(nid("a"))->size() == 2);
  CHECK(apply(NodeDelta{nid("b"), 0, 0, {{"abc", "xyz", 1, {}}, {"abcd", "vwxyz", 2, {}}}, 2})
            .rejected_malformed == 1);
  CHECK(apply(NodeDelta{nid("c"), 0, 0, {{"abcde", "", 1, {}}, {"a", "", 2, {}}}, 2})
            .rejected_malformed == 1);
  CHECK(cs.find(nid("b")) == nullptr);
  CHECK(cs.find(nid("c")) == nullptr);
}

TEST_CASE("apply: a replica without keys gains them, loses them all and gains them again") {
  // A replica's keys live in a block made with its first key and given back
  // when a reset or garbage collection leaves none: every step reads the
  // same as a replica that always had the block, copies included.
  ClusterState cs(nid("self"));
  const auto keys_of = [](const NodeState& st) {
    std::vector<std::pair<std::string, VersionedValue>> out;
    st.for_each_since(0, [&](std::string_view key, const VersionedValue& vv) {
      out.emplace_back(std::string(key), vv);
      return true;
    });
    return out;
  };
  const auto same_replicas = [&](const ClusterState& x, const ClusterState& y) {
    REQUIRE(x.size() == y.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      CHECK(x.at(i).id() == y.at(i).id());
      CHECK(x.at(i).size() == y.at(i).size());
      CHECK(x.at(i).max_version() == y.at(i).max_version());
      CHECK(x.at(i).last_gc_version() == y.at(i).last_gc_version());
      CHECK(keys_of(x.at(i)) == keys_of(y.at(i)));
    }
    CHECK(delta_for(x, Digest{}) == delta_for(y, Digest{}));
  };
  auto kv = [](std::string k, std::uint64_t v, KeyStatus s = KeyStatus::kSet) {
    return KeyValueUpdate{std::move(k), s == KeyStatus::kDeleted ? "" : "v", v, s};
  };

  // Known without a key.
  REQUIRE(cs.apply(Delta{{NodeDelta{nid("a"), 0, 0, {}, 0}, NodeDelta{nid("c"), 0, 0, {}, 0}}},
                   t0(), {}, no_events)
              .applied == 2);
  const NodeState* a = cs.find(nid("a"));
  REQUIRE(a != nullptr);
  CHECK(a->size() == 0);
  CHECK_FALSE(a->find("x"));
  CHECK_FALSE(a->value("x"));
  CHECK_FALSE(a->status_changed_at("x"));
  CHECK(keys_of(*a).empty());
  ClusterState keyless_copy(cs);
  same_replicas(cs, keyless_copy);
  // An empty node delta to a keyless replica leaves it keyless.
  cs.apply(Delta{{NodeDelta{nid("a"), 0, 0, {}, 0}}}, t0(), {}, no_events);
  CHECK(a->size() == 0);

  // The first keys: a tombstone and a value; c's only key is a tombstone.
  cs.apply(Delta{{NodeDelta{nid("a"), 0, 0, {kv("x", 1, KeyStatus::kDeleted), kv("y", 2)}, 2},
                  NodeDelta{nid("c"), 0, 0, {kv("t", 1, KeyStatus::kDeleted)}, 1}}},
           t0(), {}, no_events);
  const NodeState* c = cs.find(nid("c"));
  CHECK(a->size() == 2);
  CHECK(a->status_changed_at("x") == t0());
  CHECK(a->value("y") == "v");
  CHECK(c->size() == 1);
  same_replicas(cs, ClusterState(cs));
  same_replicas(keyless_copy, ClusterState(keyless_copy));  // the copy kept no keys
  CHECK(keyless_copy.find(nid("a"))->size() == 0);

  // Garbage collection takes c's only key: keyless, max_version kept.
  CHECK(cs.gc_tombstones(t0() + std::chrono::hours(1), std::chrono::minutes(1)) == 2);
  CHECK(c->size() == 0);
  CHECK(c->last_gc_version() == 1);
  CHECK(c->max_version() == 1);
  CHECK(keys_of(*c).empty());
  CHECK(a->size() == 1);
  same_replicas(cs, ClusterState(cs));
  // ... and takes new keys after.
  cs.apply(Delta{{NodeDelta{nid("c"), 1, 1, {kv("u", 2), kv("w", 3)}, 3}}}, t0(), {}, no_events);
  CHECK(c->size() == 2);
  CHECK(c->value("w") == "v");

  // A reset re-sent with no key: a is wiped and stays keyless, y told gone.
  std::vector<KeyChange> gone;
  const ApplyReport r =
      cs.apply(Delta{{NodeDelta{nid("a"), 0, 5, {}, 5}}}, t0(), {},
               [&](const NodeId&, KeyChange change) { gone.push_back(std::move(change)); });
  CHECK(r.resets == 1);
  CHECK(a->size() == 0);
  CHECK_FALSE(a->find("y"));
  CHECK(a->max_version() == 5);
  CHECK(a->last_gc_version() == 5);
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].key == "y");
  same_replicas(cs, ClusterState(cs));
  // ... and takes new keys after, from a move of the state too.
  ClusterState moved(std::move(cs));
  moved.apply(Delta{{NodeDelta{nid("a"), 5, 5, {kv("z", 6)}, 6}}}, t0(), {}, no_events);
  a = moved.find(nid("a"));
  CHECK(a->size() == 1);
  CHECK(a->find("z") == VersionedValue{"v", 6, KeyStatus::kSet});
  same_replicas(moved, ClusterState(moved));
}

TEST_CASE("a Syn or SynAck written with room past it is the same packet, and takes more in place") {
  ClusterState cs(nid("self"));
  for (int i = 0; i < 20; ++i) {
    cs.find_or_create(nid("n" + std::to_string(i)), 100)->set("k", std::string(40, 'v'), t0());
  }
  Rng rng(1);
  DigestPlan digest;
  PacketPaths::plan_digest(cs, 400, rng, digest);
  DeltaPlan delta;
  PacketPaths::plan_delta(cs, {}, 600, rng, delta);
  REQUIRE(!delta.parts.empty());
  const std::size_t room = 37;
  const Bytes syn = write_syn("c", cs, digest);
  const Bytes synack = write_synack("c", cs, digest, delta);
  Bytes roomy_syn = write_syn("c", cs, digest, room);
  Bytes roomy_synack = write_synack("c", cs, digest, delta, room);
  CHECK(roomy_syn == syn);
  CHECK(roomy_synack == synack);
  CHECK(roomy_syn.capacity() >= syn.size() + room);
  const auto* before = roomy_synack.data();
  REQUIRE(roomy_synack.capacity() >= synack.size() + room);
  roomy_synack.resize(synack.size() + room);
  CHECK(roomy_synack.data() == before);
}

TEST_CASE("lay_out moves the replicas into id order in memory, each intact") {
  auto kv = [](std::uint64_t v) { return KeyValueUpdate{"k", "v" + std::to_string(v), v}; };
  ClusterState cs(nid("self"));
  // Learnt in an order unrelated to the ids: the states are allocated so.
  std::vector<int> arrival(300);
  for (int i = 0; i < 300; ++i) arrival[i] = (i * 7919) % 300;
  for (int i : arrival) {
    const std::string name = "n" + std::to_string(i);
    cs.apply(Delta{{NodeDelta{nid(name), 0, 0, {kv(1 + i % 3)}, 1 + i % 3}}}, t0(), {}, no_events);
    cs.find(nid(name))->observe_heartbeat(10 + i);
  }
  auto in_address_order = [&] {
    for (std::size_t p = 1; p < cs.size(); ++p) {
      if (&cs.at(p - 1) >= &cs.at(p)) return false;
    }
    return true;
  };
  REQUIRE_FALSE(in_address_order());
  const std::size_t size = cs.size();
  PacketPaths::lay_out(cs);
  CHECK(in_address_order());
  REQUIRE(cs.size() == size);
  CHECK(&cs.self() == cs.find(nid("self")));
  CHECK(cs.self().id() == nid("self"));
  for (int i = 0; i < 300; ++i) {
    const NodeState* st = cs.find(nid("n" + std::to_string(i)));
    REQUIRE(st != nullptr);
    CHECK(st->heartbeat() == static_cast<std::uint64_t>(10 + i));
    CHECK(st->max_version() == static_cast<std::uint64_t>(1 + i % 3));
    CHECK(st->value("k") == "v" + std::to_string(1 + i % 3));
  }
  // Found by encoded id too (the table packets are resolved against).
  Digest peer;
  for (const auto& [id, st] : cs.nodes()) peer.node_digests.push_back({id, 0, 0, 0});
  CHECK(delta_for(cs, peer).node_deltas.size() == 300);
  // Nothing new since: the next call moves nothing.
  const NodeState* first = &cs.at(0);
  PacketPaths::lay_out(cs);
  CHECK(&cs.at(0) == first);
}

TEST_CASE("gc_tombstones collects every tombstone made after rounds that found none") {
  // Rounds with no tombstone anywhere skip the walk over the replicas; a
  // tombstone made since, by a peer's delta, our own deletion or a copy of
  // the state, is still collected once its grace has passed.
  using std::chrono::minutes;
  ClusterState cs(nid("self"));
  cs.apply(Delta{{NodeDelta{nid("a"), 0, 0, {{"x", "v", 1, {}}, {"y", "v", 2, {}}}, 2}}}, t0(), {},
           no_events);
  CHECK(cs.gc_tombstones(t0(), minutes(1)) == 0);
  CHECK(cs.gc_tombstones(t0() + minutes(5), minutes(1)) == 0);

  cs.apply(Delta{{NodeDelta{nid("a"), 2, 0, {{"x", "", 3, KeyStatus::kDeleted}}, 3}}},
           t0() + minutes(10), {}, no_events);
  cs.self().set("k", "v", t0() + minutes(10));
  cs.self().remove("k", t0() + minutes(10));
  // Within the grace period both stay, and are found again later.
  CHECK(cs.gc_tombstones(t0() + minutes(10), minutes(1)) == 0);
  ClusterState copy(cs);
  CHECK(cs.gc_tombstones(t0() + minutes(12), minutes(1)) == 2);
  CHECK_FALSE(cs.find(nid("a"))->find("x"));
  CHECK(cs.find(nid("a"))->last_gc_version() == 3);
  CHECK(cs.gc_tombstones(t0() + minutes(20), minutes(1)) == 0);

  // The copy holds tombstones of its own: collected as well.
  CHECK(copy.gc_tombstones(t0() + minutes(12), minutes(1)) == 2);
  CHECK(copy.find(nid("a"))->last_gc_version() == 3);
  CHECK(copy.find(nid("a"))->value("y") == "v");
}
