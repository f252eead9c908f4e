// How far a delta makes its receiver complete (ClusterState::apply), against
// senders shaped like Python aiocluster 1.1.0, which cut deltas short yet
// claim the node's full max_version; and the KeyChanged events of a reset
// (PROTOCOL.md section 8).
#include <doctest/doctest.h>

#include <map>

#include "harness.h"

using namespace testing;

namespace {

NodeId nid(const std::string& name) { return NodeId{name, 1, Address{"h", 1}, ""}; }

// py-big of the truncated-delta capture (tests/interop/fixtures).
const NodeId kPyBig{"py-big", 3, Address{"127.0.0.1", 7103}, ""};

KeyValueUpdate kv(std::string key, std::uint64_t version, std::string value = "v",
                  KeyStatus status = KeyStatus::kSet) {
  return KeyValueUpdate{std::move(key), std::move(value), version, status};
}

// A delta the way Python aiocluster 1.1.0 cuts it: only the delta body is
// budgeted, and every node delta claims its node's full max_version.
Delta python_delta(const ClusterState& owner, const Digest& peer, std::size_t budget = 65'507) {
  Rng rng(3);
  Delta d = owner.delta_for(
      peer, [](std::size_t delta_len) { return delta_len; }, budget, rng);
  for (auto& nd : d.node_deltas) nd.max_version = owner.find(nd.node_id)->max_version();
  return d;
}

// The owner of `id` with `n` keys k00000.. of about 40 bytes, versions 1..n.
ClusterState owner_with_keys(const NodeId& id, int n) {
  ClusterState owner(id);
  for (int i = 0; i < n; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "k%05d", i);
    owner.self().set(key, "py-value-" + std::string(key + 1) + "-xxxxxxxxxxxxxxxxxxxxxxxx", t0());
  }
  return owner;
}

struct Recorder {
  std::vector<KeyChange> changes;
  auto sink() {
    return [this](const NodeId&, KeyChange change) { changes.push_back(std::move(change)); };
  }
  const KeyChange* of(const std::string& key) const {
    for (const auto& c : changes) {
      if (c.key == key) return &c;
    }
    return nullptr;
  }
};

// Exchanges until the receiver asks for nothing more; returns how many.
int sync(ClusterState& receiver, const ClusterState& owner,
         const std::function<void(const NodeId&, KeyChange)>& on_change = {}) {
  Rng rng(1);
  for (int exchange = 1; exchange <= 50; ++exchange) {
    const Delta d = python_delta(owner, receiver.digest(65'507, rng));
    if (d.node_deltas.empty()) return exchange - 1;
    receiver.apply(
        d, t0(), {}, on_change ? on_change : [](const NodeId&, KeyChange) {});
  }
  return -1;
}

}  // namespace

TEST_CASE("a delta cut short that claims the full max_version leaves the replica incomplete") {
  const ClusterState owner = owner_with_keys(kPyBig, 3000);
  ClusterState receiver(nid("cpp"));
  Rng rng(1);
  const Delta first = python_delta(owner, receiver.digest(65'507, rng));
  REQUIRE(first.node_deltas.size() == 1);
  const NodeDelta& nd = first.node_deltas[0];
  // The shape of the truncated-delta capture.
  CHECK(nd.key_values.size() == 1214);
  CHECK(*nd.max_version == 3000);

  const ApplyReport report = receiver.apply(first, t0(), {}, [](const NodeId&, KeyChange) {});
  CHECK(report.completeness_capped == 1);
  const NodeState* replica = receiver.find(kPyBig);
  REQUIRE(replica != nullptr);
  CHECK(replica->max_version() == 1214);
  CHECK(replica->size() == 1214);
  // The next digest asks for the rest.
  const Digest next = receiver.digest(65'507, rng);
  CHECK(next.node_digests[1].max_version == 1214);
}

TEST_CASE("a Python-shaped sender's truncated deltas converge to every key") {
  const ClusterState owner = owner_with_keys(kPyBig, 3000);
  ClusterState receiver(nid("cpp"));
  // 1,214 key-values a packet: three exchanges.
  CHECK(sync(receiver, owner) == 3);
  const NodeState* replica = receiver.find(kPyBig);
  REQUIRE(replica != nullptr);
  CHECK(replica->max_version() == 3000);
  CHECK(replica->size() == 3000);
  CHECK(replica->value("k02999") == owner.self().value("k02999"));
}

TEST_CASE("a truncated reset whose top versions were garbage-collected still converges") {
  // The owner's latest mutation is a deletion it has collected, so
  // last_gc_version == max_version: a cut delta claiming max_version looks
  // explained by GC, yet most keys are still to come.
  ClusterState owner = owner_with_keys(kPyBig, 3000);
  owner.self().remove("k00000", t0());
  REQUIRE(owner.self().gc_tombstones(t0() + 1s) == 1);
  REQUIRE(owner.self().last_gc_version() == owner.self().max_version());

  ClusterState receiver(nid("cpp"));
  Rng rng(1);
  const Delta first = python_delta(owner, receiver.digest(65'507, rng));
  REQUIRE(first.node_deltas[0].key_values.size() < 2999);
  CHECK(first.node_deltas[0].last_gc_version == *first.node_deltas[0].max_version);
  receiver.apply(first, t0(), {}, [](const NodeId&, KeyChange) {});
  CHECK(receiver.find(kPyBig)->max_version() == first.node_deltas[0].key_values.back().version);

  // The rest, then the bare max_version the collected deletion left.
  CHECK(sync(receiver, owner) == 3);
  const NodeState* replica = receiver.find(kPyBig);
  CHECK(replica->max_version() == 3001);
  CHECK(replica->last_gc_version() == 3001);
  CHECK(replica->size() == 2999);
  CHECK_FALSE(replica->find("k00000"));
  CHECK(replica->value("k02999").has_value());
}

TEST_CASE("an empty node delta's max_version is believed only where GC explains the range") {
  ClusterState cs(nid("self"));
  cs.apply(Delta{{NodeDelta{nid("a"), 0, 0, {kv("x", 1), kv("y", 2)}, 2}}}, t0(), {},
           [](const NodeId&, KeyChange) {});
  const NodeState* a = cs.find(nid("a"));
  REQUIRE(a->max_version() == 2);

  // Nothing carried, nothing collected, yet versions 3..5 claimed: a peer
  // relaying a replica it got from a delta cut short. Not adopted.
  ApplyReport r = cs.apply(Delta{{NodeDelta{nid("a"), 2, 0, {}, 5}}}, t0(), {},
                           [](const NodeId&, KeyChange) {});
  CHECK(r.completeness_capped == 1);
  CHECK(a->max_version() == 2);
  // The owner collected versions 3..5 (a key set and deleted): a reset,
  // which carries x and y and claims 5. With key-values, only what they show
  // is believed...
  r = cs.apply(Delta{{NodeDelta{nid("a"), 0, 5, {kv("x", 1), kv("y", 2)}, 5}}}, t0(), {},
               [](const NodeId&, KeyChange) {});
  CHECK(r.resets == 1);
  CHECK(r.completeness_capped == 1);
  CHECK(a->last_gc_version() == 5);
  CHECK(a->max_version() == 2);
  // ... and the next exchange's bare max_version, explained by GC, is adopted.
  r = cs.apply(Delta{{NodeDelta{nid("a"), 2, 5, {}, 5}}}, t0(), {},
               [](const NodeId&, KeyChange) {});
  CHECK(r.completeness_capped == 0);
  CHECK(a->max_version() == 5);
}

TEST_CASE("our own senders never claim more than they carry") {
  // Deltas cut at every budget from tiny to whole carry max_version = the
  // last key-value's version when cut, so the rule never costs them anything.
  const ClusterState owner = owner_with_keys(nid("owner"), 300);
  for (std::size_t budget = 200; budget < 20'000; budget += 997) {
    CAPTURE(budget);
    ClusterState receiver(nid("receiver"));
    Rng rng(5);
    for (int exchange = 0; exchange < 400; ++exchange) {
      const Delta d = owner.delta_for(
          receiver.digest(65'507, rng), [](std::size_t len) { return len + 16; }, budget, rng);
      if (d.node_deltas.empty()) break;
      const ApplyReport r = receiver.apply(d, t0(), {}, [](const NodeId&, KeyChange) {});
      CHECK(r.completeness_capped == 0);
    }
    CHECK(receiver.find(nid("owner"))->max_version() == 300);
  }
}

TEST_CASE("reset: events for keys that changed or disappeared, none for keys re-sent unchanged") {
  ClusterState cs(nid("self"));
  Recorder seen;
  cs.apply(Delta{{NodeDelta{nid("a"),
                            0,
                            0,
                            {kv("same", 1, "s"), kv("changes", 2, "old"), kv("goes", 3, "g"),
                             kv("ttl-goes", 4, "t", KeyStatus::kDeleteAfterTtl),
                             kv("deleted", 5, "", KeyStatus::kDeleted)},
                            5}}},
           t0(), {}, seen.sink());
  REQUIRE(seen.changes.size() == 5);
  seen.changes.clear();

  // The owner collected versions up to 9: "goes" and "ttl-goes" were deleted
  // and collected, "deleted"'s tombstone too, "changes" was rewritten at 8.
  const ApplyReport r = cs.apply(
      Delta{{NodeDelta{
          nid("a"), 0, 9, {kv("same", 1, "s"), kv("changes", 8, "new"), kv("born", 10)}, 10}}},
      t0(), {}, seen.sink());
  CHECK(r.resets == 1);
  CHECK(seen.of("same") == nullptr);
  REQUIRE(seen.of("changes") != nullptr);
  CHECK(seen.of("changes")->old_value == VersionedValue{"old", 2, KeyStatus::kSet});
  CHECK(seen.of("changes")->new_value == VersionedValue{"new", 8, KeyStatus::kSet});
  REQUIRE(seen.of("born") != nullptr);
  CHECK_FALSE(seen.of("born")->old_value);
  for (const char* gone : {"goes", "ttl-goes"}) {
    CAPTURE(gone);
    REQUIRE(seen.of(gone) != nullptr);
    CHECK(seen.of(gone)->old_value.has_value());
    CHECK(seen.of(gone)->new_value == VersionedValue{"", 9, KeyStatus::kDeleted});
  }
  // A DELETED tombstone disappears silently, as in garbage collection.
  CHECK(seen.of("deleted") == nullptr);
  CHECK(seen.changes.size() == 4);
}

TEST_CASE("reset over several deltas: keys beyond the first cut are not reported gone and back") {
  // The receiver holds all 3,000 keys of an owner; the owner then deletes
  // one key and collects it, so the receiver must reset, and the reset
  // arrives in three cut deltas.
  ClusterState owner = owner_with_keys(kPyBig, 3000);
  ClusterState receiver(nid("cpp"));
  REQUIRE(sync(receiver, owner) == 3);
  owner.self().set("k01500", "rewritten", t0());
  owner.self().remove("k02999", t0());
  REQUIRE(owner.self().gc_tombstones(t0() + 1s) == 1);
  // An older peer's view: the reset is needed because the collected version
  // is above what the receiver holds.
  REQUIRE(owner.self().last_gc_version() > receiver.find(kPyBig)->max_version());

  Recorder seen;
  const int exchanges = sync(receiver, owner, seen.sink());
  CHECK(exchanges >= 3);
  CHECK(receiver.find(kPyBig)->size() == 2999);
  // Exactly two events: the rewritten key, and the collected one gone.
  REQUIRE(seen.changes.size() == 2);
  const KeyChange* rewritten = seen.of("k01500");
  REQUIRE(rewritten != nullptr);
  CHECK(rewritten->old_value->value != "rewritten");
  CHECK(rewritten->new_value.value == "rewritten");
  const KeyChange* gone = seen.of("k02999");
  REQUIRE(gone != nullptr);
  CHECK(gone->old_value->status == KeyStatus::kSet);
  CHECK(gone->new_value.status == KeyStatus::kDeleted);
  // The gone key is reported once the replica is whole again, last.
  CHECK(seen.changes.back().key == "k02999");
}

TEST_CASE("a reset that never completes cannot make a replica hold more than its key limit") {
  ClusterState cs(nid("self"));
  ApplyLimits limits;
  limits.max_keys_per_node = 4;
  Recorder seen;
  std::uint64_t gc = 0;
  // Each delta resets with four new keys and claims far more than it carries.
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t base = gc + 1;
    Delta d{{NodeDelta{nid("a"), 0, gc, {}, base + 1000}}};
    for (std::uint64_t k = 0; k < 4; ++k)
      d.node_deltas[0].key_values.push_back(
          kv("r" + std::to_string(round) + "-" + std::to_string(k), base + k));
    cs.apply(d, t0(), limits, seen.sink());
    gc = base + 100;  // the next delta collects beyond everything held
  }
  // Every key ever shown is reported gone by now, but the last round's.
  std::map<std::string, int> gone;
  for (const auto& c : seen.changes) {
    if (c.new_value.status == KeyStatus::kDeleted) ++gone[c.key];
  }
  CHECK(gone.size() >= 30);
  CHECK(cs.find(nid("a"))->size() == 4);
}

TEST_CASE("mid-reset, a sender that does not know the collection cannot bring a deleted key back") {
  ClusterState cs(nid("self"));
  const auto none = [](const NodeId&, KeyChange) {};
  cs.apply(Delta{{NodeDelta{nid("a"), 0, 0, {kv("k", 1), kv("gone", 2)}, 2}}}, t0(), {}, none);
  // The owner deleted "gone" at 3 and collected it: a reset that carries k
  // and claims 3 leaves the replica complete to 1 only.
  cs.apply(Delta{{NodeDelta{nid("a"), 0, 3, {kv("k", 1)}, 3}}}, t0(), {}, none);
  const NodeState* a = cs.find(nid("a"));
  REQUIRE(a->last_gc_version() == 3);
  REQUIRE(a->max_version() == 1);
  // A peer still holding the old state (gc 0, max 2) offers "gone"@2.
  const ApplyReport r =
      cs.apply(Delta{{NodeDelta{nid("a"), 1, 0, {kv("gone", 2)}, 2}}}, t0(), {}, none);
  CHECK(r.rejected_stale == 1);
  CHECK_FALSE(a->find("gone"));
  CHECK(a->max_version() == 1);
  // The owner (or any peer that knows the collection) completes it.
  cs.apply(Delta{{NodeDelta{nid("a"), 1, 3, {}, 3}}}, t0(), {}, none);
  CHECK(a->max_version() == 3);
  CHECK_FALSE(a->find("gone"));
}
