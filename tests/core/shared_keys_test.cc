// Replicas of one content share a frozen keys block across the
// ClusterStates of a workspace (core/src/storage.h, KeysTable): a change to
// one replica copies the block first and leaves the others as they were.
#include <doctest/doctest.h>

#include <map>
#include <memory>

#include "harness.h"
#include "storage.h"

using namespace testing;

namespace {

using Contents = std::map<std::string, VersionedValue, std::less<>>;

Contents contents(const NodeState& st) {
  Contents out;
  st.for_each([&](std::string_view key, const VersionedValue& vv) { out.emplace(key, vv); });
  return out;
}

// What `to` lacks of the nodes `from` knows, applied.
ApplyReport sync(const ClusterState& from, ClusterState& to) {
  Digest seen;
  for (const auto& [id, st] : to.nodes()) {
    seen.node_digests.push_back(NodeDigest{id, 0, st.last_gc_version(), st.max_version()});
  }
  Rng rng(1);
  const Delta delta = from.delta_for(
      seen, [](std::size_t n) { return n + 16; }, 65'507, rng);
  return to.apply(delta, t0(), {}, [](const NodeId&, KeyChange) {});
}

// An owner of three keys, and replicas of it in ClusterStates that share
// one table of frozen blocks (and one of ids), as a simulator's nodes do.
struct Group {
  explicit Group(std::size_t n) : table(std::make_shared<KeysTable>(5)) {
    for (int k = 0; k < 3; ++k) {
      owner.self().set("key-" + std::to_string(k), "value-" + std::to_string(k), t0());
    }
    for (std::size_t i = 0; i < n; ++i) {
      replicas.push_back(
          std::make_unique<ClusterState>(make_config(static_cast<int>(i)).node_id, 100 + i));
      if (i > 0) replicas[i]->share_ids(replicas[0]->ids());
      replicas[i]->share_keys(table);
    }
  }
  NodeState& replica(std::size_t i) { return *replicas[i]->find(owner.self_id()); }

  ClusterState owner{make_config(9).node_id};
  std::shared_ptr<KeysTable> table;
  std::vector<std::unique_ptr<ClusterState>> replicas;
};

}  // namespace

TEST_CASE("converged replicas share one block and hold none of the packets' bytes") {
  Group g(3);
  for (auto& r : g.replicas) sync(g.owner, *r);
  CHECK(g.table->size() == 1);
  CHECK(g.table->holders() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(g.replicas[i]->bytes_in_use() == 0);
    CHECK(contents(g.replica(i)) == contents(g.owner.self()));
    CHECK(g.replica(i).value("key-2") == "value-2");
    CHECK(g.replica(i).max_version() == 3);
  }
  // What deltas the replicas write is what the owner writes.
  Rng rng(1);
  const auto size = [](std::size_t n) { return n + 16; };
  const Delta shared = g.replicas[1]->delta_for(Digest{}, size, 65'507, rng);
  const Delta own = g.owner.delta_for(Digest{}, size, 65'507, rng);
  CHECK(shared == own);  // the replica's own node has nothing to send
}

TEST_CASE("a change to a replica that shares its block leaves the others as they were") {
  Group g(3);
  for (auto& r : g.replicas) sync(g.owner, *r);
  REQUIRE(g.table->holders() == 3);
  const Contents before = contents(g.replica(1));
  NodeState& changed = g.replica(0);
  const Instant later = t0() + 1h;

  SUBCASE("a delta with an update") {
    g.owner.self().set("key-1", "new", t0());
    CHECK(sync(g.owner, *g.replicas[0]).key_values == 1);
    CHECK(changed.value("key-1") == "new");
    CHECK(changed.max_version() == 4);
    // The new content is frozen too.
    CHECK(g.table->size() == 2);
    CHECK(g.table->holders() == 3);
    CHECK(g.replicas[0]->bytes_in_use() == 0);
  }
  SUBCASE("a delta with a deletion") {
    g.owner.self().remove("key-0", t0());
    sync(g.owner, *g.replicas[0]);
    CHECK(changed.value("key-0") == std::nullopt);
    CHECK(changed.status_changed_at("key-0") == t0());
    // A tombstone keeps a local time: the replica keeps its block.
    CHECK(g.table->holders() == 2);
    CHECK(g.replicas[0]->bytes_in_use() > 0);
    SUBCASE("then its garbage collection") {
      CHECK(g.replicas[0]->gc_tombstones(later, 1s) == 1);
      CHECK(changed.find("key-0") == std::nullopt);
      CHECK(changed.last_gc_version() == 4);
    }
  }
  SUBCASE("a reset") {
    // The owner deletes and collects a key: a replica behind it is reset.
    g.owner.self().remove("key-0", t0());
    CHECK(g.owner.gc_tombstones(later, 1s) == 1);
    CHECK(sync(g.owner, *g.replicas[0]).resets == 1);
    CHECK(changed.find("key-0") == std::nullopt);
    CHECK(changed.value("key-1") == "value-1");
    CHECK(changed.last_gc_version() == 4);
    CHECK(g.table->size() == 2);
  }
  SUBCASE("a garbage collection finds nothing to collect") {
    CHECK(g.replicas[0]->gc_tombstones(later, 1s) == 0);
    CHECK(g.table->holders() == 3);
  }
  SUBCASE("wipe") {
    changed.wipe(7);
    CHECK(changed.size() == 0);
    CHECK(changed.last_gc_version() == 7);
    CHECK(g.table->holders() == 2);
  }
  SUBCASE("apply") {
    changed.apply("key-1", VersionedValue{"applied", 8, KeyStatus::kSet}, t0());
    CHECK(changed.value("key-1") == "applied");
  }
  SUBCASE("reserve") {
    changed.reserve(200);
    CHECK(contents(changed) == before);
    CHECK(g.table->holders() == 2);
  }
  SUBCASE("writes of the owner's kind") {
    CHECK(changed.set("key-0", "set", t0()).has_value());
    CHECK(changed.remove("key-1", t0()).has_value());
    CHECK(changed.set_with_ttl("key-3", "ttl", t0()).has_value());
    CHECK(changed.delete_after_ttl("key-2", t0()).has_value());
    CHECK(changed.value("key-0") == "set");
    CHECK(changed.value("key-1") == std::nullopt);
    CHECK(changed.value("key-3") == "ttl");
    CHECK(changed.find("key-2")->status == KeyStatus::kDeleteAfterTtl);
  }
  // Every other replica holds what it held.
  for (std::size_t i = 1; i < 3; ++i) {
    CHECK(contents(g.replica(i)) == before);
    CHECK(g.replica(i).value("key-1") == "value-1");
    CHECK(g.replica(i).max_version() == 3);
    CHECK(g.replica(i).last_gc_version() == 0);
  }
}

TEST_CASE("a copy of a replica that shares its block has its own; a move keeps the block") {
  Group g(2);
  for (auto& r : g.replicas) sync(g.owner, *r);
  const Contents before = contents(g.replica(0));
  {
    NodeState copy(g.replica(0));
    CHECK(contents(copy) == before);
    CHECK(g.table->holders() == 2);
    CHECK(copy.set("key-1", "copy", t0()).has_value());
    CHECK(copy.value("key-1") == "copy");
  }
  CHECK(contents(g.replica(0)) == before);
  CHECK(g.table->holders() == 2);

  // A copy of the whole state holds blocks of its own.
  {
    ClusterState copy(*g.replicas[0]);
    CHECK(g.table->holders() == 2);
    CHECK(copy.bytes_in_use() > 0);
    CHECK(contents(*copy.find(g.owner.self_id())) == before);
    copy.find(g.owner.self_id())->wipe(0);
  }
  CHECK(contents(g.replica(0)) == before);

  // A moved state keeps its replicas' blocks.
  ClusterState moved(std::move(*g.replicas[1]));
  CHECK(g.table->holders() == 2);
  sync(g.owner, moved);  // nothing new: still shared
  CHECK(moved.bytes_in_use() == 0);
  CHECK(contents(*moved.find(g.owner.self_id())) == before);
  {
    // A node state moved out of it takes its hold along.
    NodeState taken(std::move(*moved.find(g.owner.self_id())));
    CHECK(g.table->holders() == 2);
    CHECK(contents(taken) == before);
  }
  CHECK(g.table->holders() == 1);
  CHECK(contents(g.replica(0)) == before);
}

TEST_CASE("replicas of different contents never share a block, whatever their hashes") {
  // With a mask of 0 every content hashes alike: only a full comparison
  // tells them apart.
  std::uint64_t mask = ~std::uint64_t{0};
  SUBCASE("hashes that differ") {}
  SUBCASE("every hash the same") { mask = 0; }
  auto table = std::make_shared<KeysTable>(1, mask);
  std::vector<std::unique_ptr<ClusterState>> states;
  for (int i = 0; i < 4; ++i) {
    states.push_back(std::make_unique<ClusterState>(make_config(i).node_id));
    states.back()->share_keys(table);
  }
  const NodeId x = make_config(7).node_id;
  const NodeId y = make_config(8).node_id;
  auto send = [](ClusterState& to, const NodeId& id, const std::string& value,
                 std::uint64_t version) {
    Delta delta;
    delta.node_deltas.push_back(
        NodeDelta{id, 0, 0, {KeyValueUpdate{"k", value, version, KeyStatus::kSet}}, version});
    CHECK(to.apply(delta, t0(), {}, [](const NodeId&, KeyChange) {}).key_values == 1);
  };
  // A hostile peer tells two states different things of node x.
  send(*states[0], x, "a", 1);
  send(*states[1], x, "b", 1);
  send(*states[2], x, "a", 1);
  send(*states[3], x, "a", 2);  // another version
  send(*states[0], y, "a", 1);  // another node, the same key-values
  CHECK(table->size() == 4);
  CHECK(table->holders() == 5);
  CHECK(states[0]->find(x)->value("k") == "a");
  CHECK(states[1]->find(x)->value("k") == "b");
  CHECK(states[2]->find(x)->value("k") == "a");
  CHECK(states[3]->find(x)->find("k")->version == 2);
  CHECK(states[0]->find(y)->value("k") == "a");
  states.clear();  // every block given back
  CHECK(table->size() == 0);
}

TEST_CASE("a state alone in its table keeps its own blocks") {
  Group g(1);
  sync(g.owner, *g.replicas[0]);
  CHECK(g.table->size() == 0);
  CHECK(g.replicas[0]->bytes_in_use() > 0);
  // Joined by another, its next delta moves it to a frozen block.
  ClusterState other(make_config(3).node_id);
  other.share_keys(g.table);
  sync(g.owner, other);
  g.owner.self().set("key-0", "again", t0());
  sync(g.owner, *g.replicas[0]);
  CHECK(g.table->size() == 2);
  CHECK(g.replicas[0]->bytes_in_use() == 0);
  // Leaving the table takes its replicas back.
  g.replicas[0]->share_keys(nullptr);
  CHECK(g.table->size() == 1);
  CHECK(g.replica(0).value("key-0") == "again");
}

TEST_CASE("nodes sharing a workspace share their replicas' blocks, and changes reach all") {
  MemCluster c = MemCluster::ring(5);
  for (std::size_t i = 0; i < c.nodes.size(); ++i) {
    c.nodes[i]->set("extra", "x" + std::to_string(i));
    if (i > 0) c.nodes[i]->share_workspace(*c.nodes[0]);
  }
  // A replica of its own holds the bytes of its keys: a node sharing every
  // replica's block holds only its own node's.
  auto held = [&](int i) {
    return c.nodes[static_cast<std::size_t>(i)]->cluster_state().bytes_in_use();
  };
  auto own_bytes = [&](int i) {
    std::size_t bytes = 0;
    c.nodes[static_cast<std::size_t>(i)]->cluster_state().self().for_each(
        [&](std::string_view key, const VersionedValue& vv) {
          bytes += stored::size_of(key, vv.value, vv.version, vv.status);
        });
    return bytes;
  };
  auto run_until_converged = [&] {
    for (int s = 0; s < 30 && !c.converged(); ++s) c.step();
    REQUIRE(c.converged());
  };
  run_until_converged();
  for (int i = 0; i < 5; ++i) CHECK(held(i) == own_bytes(i));
  c.nodes[2]->set("extra", "changed");
  run_until_converged();
  for (int i = 0; i < 5; ++i) {
    CHECK(c.value_seen(i, 2, "extra") == "changed");
    CHECK(c.value_seen(i, 3, "extra") == "x3");
    CHECK(held(i) == own_bytes(i));
  }
  // A deletion leaves a tombstone in every replica of node 2: those hold
  // their own blocks again.
  c.nodes[2]->remove("extra");
  run_until_converged();
  for (int i = 0; i < 5; ++i) {
    CHECK(c.value_seen(i, 2, "extra") == std::nullopt);
    CHECK(c.value_seen(i, 2, "cluster") == "2");
    CHECK(c.value_seen(i, 4, "extra") == "x4");
    if (i != 2) CHECK(held(i) > own_bytes(i));
  }
}
