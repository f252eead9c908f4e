#include <doctest/doctest.h>

#include "harness.h"

using namespace testing;

namespace {
NodeState fresh() { return NodeState(NodeId{"n", 1, Address{"h", 1}, ""}); }

std::vector<std::uint64_t> versions_since(const NodeState& st, std::uint64_t v) {
  std::vector<std::uint64_t> out;
  st.for_each_since(v, [&](std::string_view, const VersionedValue& vv) {
    out.push_back(vv.version);
    return true;
  });
  return out;
}
}  // namespace

TEST_CASE("every local mutation takes max_version + 1") {
  NodeState st = fresh();
  const Instant now = t0();
  auto c1 = st.set("a", "1", now);
  REQUIRE(c1);
  CHECK(c1->new_value == VersionedValue{"1", 1, KeyStatus::kSet});
  CHECK_FALSE(c1->old_value);
  CHECK_FALSE(st.set("a", "1", now));  // same value: no-op
  CHECK(st.max_version() == 1);
  auto c2 = st.set("a", "2", now);
  CHECK(c2->old_value->value == "1");
  CHECK(st.max_version() == 2);

  auto del = st.remove("a", now);
  CHECK(del->new_value == VersionedValue{"", 3, KeyStatus::kDeleted});
  CHECK_FALSE(st.value("a"));
  CHECK(st.find("a")->status == KeyStatus::kDeleted);
  CHECK_FALSE(st.remove("a", now));        // already deleted
  CHECK_FALSE(st.remove("missing", now));  // nothing to delete

  auto ttl = st.set_with_ttl("t", "x", now);
  CHECK(ttl->new_value == VersionedValue{"x", 4, KeyStatus::kDeleteAfterTtl});
  CHECK(st.value("t") == "x");  // still readable
  CHECK_FALSE(st.set_with_ttl("t", "x", now));

  st.set("b", "keep", now);
  auto dat = st.delete_after_ttl("b", now);
  CHECK(dat->new_value == VersionedValue{"keep", 6, KeyStatus::kDeleteAfterTtl});
  CHECK(st.value("b") == "keep");
  CHECK_FALSE(st.delete_after_ttl("b", now));
  CHECK(st.max_version() == 6);
}

TEST_CASE("stale entries come in version order from the index") {
  NodeState st = fresh();
  for (int i = 0; i < 10; ++i) st.set("k" + std::to_string(i), "v", t0());
  st.set("k3", "changed", t0());  // k3 moves to version 11
  CHECK(versions_since(st, 0) == std::vector<std::uint64_t>{1, 2, 3, 5, 6, 7, 8, 9, 10, 11});
  CHECK(versions_since(st, 8) == std::vector<std::uint64_t>{9, 10, 11});
  CHECK(versions_since(st, 11).empty());
}

TEST_CASE("tombstones are collected after the grace period, raising last_gc_version") {
  NodeState st = fresh();
  st.set("a", "1", t0());
  st.remove("a", t0());                   // v2 at t0
  st.set_with_ttl("b", "x", t0() + 10s);  // v3 at t0+10s
  st.set("c", "live", t0());              // v4
  CHECK(st.gc_tombstones(t0() - 1s) == 0);
  CHECK(st.gc_tombstones(t0()) == 1);
  CHECK(st.last_gc_version() == 2);
  CHECK_FALSE(st.find("a"));
  CHECK(st.gc_tombstones(t0() + 10s) == 1);
  CHECK(st.last_gc_version() == 3);
  CHECK(st.max_version() == 4);
  CHECK(st.value("c") == "live");
  CHECK(st.size() == 1);
}

TEST_CASE("a tombstone tells when its status changed; a live or absent key has no time") {
  NodeState st = fresh();
  st.set("a", "1", t0());
  CHECK_FALSE(st.status_changed_at("a"));
  CHECK_FALSE(st.status_changed_at("missing"));
  st.remove("a", t0() + 5s);
  st.set_with_ttl("b", "x", t0() + 7s);
  CHECK(st.status_changed_at("a") == t0() + 5s);
  CHECK(st.status_changed_at("b") == t0() + 7s);
  st.set("a", "2", t0() + 9s);  // live again: no time
  CHECK_FALSE(st.status_changed_at("a"));
  st.delete_after_ttl("a", t0() + 11s);
  CHECK(st.status_changed_at("a") == t0() + 11s);
  // A replicated tombstone takes the time it was applied.
  NodeState replica = fresh();
  replica.apply("k", VersionedValue{"", 3, KeyStatus::kDeleted}, t0() + 20s);
  CHECK(replica.status_changed_at("k") == t0() + 20s);
  CHECK(st.gc_tombstones(t0() + 7s) == 1);  // b goes, a stays
  CHECK_FALSE(st.status_changed_at("b"));
  CHECK(st.status_changed_at("a") == t0() + 11s);
}

TEST_CASE("heartbeats only grow") {
  NodeState st = fresh();
  CHECK(st.observe_heartbeat(5));
  CHECK_FALSE(st.observe_heartbeat(5));
  CHECK_FALSE(st.observe_heartbeat(3));
  CHECK(st.heartbeat() == 5);
}

TEST_CASE("keys that differ in one byte are told apart, at every length and position") {
  // Key comparison takes short cuts by length (one or two loads up to 16
  // bytes, the last eight bytes first beyond): each must see every byte.
  NodeState st = fresh();
  std::size_t keys = 0;
  for (std::size_t length = 1; length <= 40; ++length) {
    st.set(std::string(length, 'a'), "base", t0());
    ++keys;
    for (std::size_t at = 0; at < length; ++at) {
      std::string key(length, 'a');
      key[at] = 'b';
      st.set(key, std::to_string(length) + ":" + std::to_string(at), t0());
      ++keys;
    }
  }
  CHECK(st.size() == keys);
  for (std::size_t length = 1; length <= 40; ++length) {
    CHECK(st.value(std::string(length, 'a')) == "base");
    for (std::size_t at = 0; at < length; ++at) {
      std::string key(length, 'a');
      key[at] = 'b';
      CHECK(st.value(key) == std::to_string(length) + ":" + std::to_string(at));
    }
  }
}

TEST_CASE("a state of its own copies, moves and wipes without keys, and takes keys after") {
  NodeState st = fresh();
  st.observe_heartbeat(3);
  const NodeState copy(st);  // no key yet
  CHECK(copy.id() == st.id());
  CHECK(copy.heartbeat() == 3);
  CHECK(copy.size() == 0);
  CHECK_FALSE(copy.find("a"));

  st.set("a", "1", t0());
  st.remove("b", t0());  // nothing to remove: still one key
  CHECK(st.size() == 1);
  CHECK(copy.size() == 0);
  NodeState moved(std::move(st));
  CHECK(moved.value("a") == "1");
  moved.wipe(4);
  CHECK(moved.size() == 0);
  CHECK(versions_since(moved, 0).empty());
  CHECK(moved.last_gc_version() == 4);
  // Wiped, the state counts versions from 1 again.
  moved.set("c", "2", t0());
  CHECK(moved.find("c") == VersionedValue{"2", 1, KeyStatus::kSet});
  const NodeState copy2(moved);
  CHECK(copy2.value("c") == "2");
  CHECK(copy2.id() == copy.id());
}
