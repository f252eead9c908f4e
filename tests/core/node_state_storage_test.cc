// NodeState's compact storage (a version-ordered log with holes, a key
// arena and an open-addressing index) against a plain std::map model, under
// random owner mutations, replicated writes in and out of version order,
// duplicate versions, garbage collection and wipes.
#include <doctest/doctest.h>

#include <map>
#include <random>

#include "harness.h"

using namespace testing;

namespace {

struct ModelEntry {
  VersionedValue value;
  Instant changed;
};

struct Model {
  std::map<std::string, ModelEntry, std::less<>> entries;
  std::uint64_t max_version = 0;
  std::uint64_t last_gc_version = 0;

  void put(const std::string& key, VersionedValue value, Instant now) {
    // A version names one entry: a write at a version another key holds
    // replaces that key (only a corrupt peer does this).
    std::erase_if(entries, [&](const auto& e) {
      return e.first != key && e.second.value.version == value.version;
    });
    entries[key] = ModelEntry{std::move(value), now};
  }
};

void check_same(const NodeState& st, const Model& model, std::mt19937_64& rng) {
  REQUIRE(st.size() == model.entries.size());
  CHECK(st.max_version() == model.max_version);
  CHECK(st.last_gc_version() == model.last_gc_version);
  for (const auto& [key, entry] : model.entries) {
    const std::optional<VersionedValue> found = st.find(key);
    REQUIRE(found);
    CHECK(*found == entry.value);
  }
  CHECK_FALSE(st.find("absent"));
  // for_each: every entry, in key order.
  auto it = model.entries.begin();
  st.for_each([&](std::string_view key, const VersionedValue& vv) {
    REQUIRE(it != model.entries.end());
    CHECK(key == it->first);
    CHECK(vv == it->second.value);
    CHECK(st.find(key) == vv);
    ++it;
  });
  CHECK(it == model.entries.end());
  // for_each_since: the entries past a version, in version order.
  std::map<std::uint64_t, std::string> by_version;
  for (const auto& [key, entry] : model.entries) by_version.emplace(entry.value.version, key);
  const std::uint64_t since = model.max_version == 0 ? 0 : rng() % (model.max_version + 2);
  auto expected = by_version.upper_bound(since);
  st.for_each_since(since, [&](std::string_view key, const VersionedValue& vv) {
    REQUIRE(expected != by_version.end());
    CHECK(vv.version == expected->first);
    CHECK(key == expected->second);
    ++expected;
    return true;
  });
  CHECK(expected == by_version.end());
}

}  // namespace

TEST_CASE("NodeState storage matches a map model under random operations") {
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    NodeState st(NodeId{"n", 1, Address{"h", 1}, ""});
    Model model;
    Instant now = t0();
    // Few keys so they are rewritten often (holes, compaction); some long
    // ones so the arena's varint lengths take two bytes.
    auto key = [&] {
      const auto k = rng() % 40;
      std::string out(k < 36 ? 1 : 130 + k, k < 36 ? 'k' : 'x');
      if (k < 36) out.append(std::to_string(k));
      return out;
    };
    auto value = [&] {
      std::string out(rng() % 4 == 0 ? 20 : 0, 'v');  // some beyond the short-string buffer
      out.append(std::to_string(rng() % 9));
      return out;
    };
    for (int step = 0; step < 2000; ++step) {
      now += std::chrono::seconds(rng() % 3);
      const auto op = rng() % 100;
      const std::string k = key();
      if (op < 30) {
        const std::string v = value();
        const auto old = st.find(k);
        const bool noop = old && old->status == KeyStatus::kSet && old->value == v;
        const auto change = st.set(k, v, now);
        CHECK(change.has_value() == !noop);
        if (change) model.put(k, VersionedValue{v, ++model.max_version, KeyStatus::kSet}, now);
      } else if (op < 40) {
        if (st.remove(k, now))
          model.put(k, VersionedValue{"", ++model.max_version, KeyStatus::kDeleted}, now);
      } else if (op < 47) {
        const std::string v = value();
        if (st.set_with_ttl(k, v, now)) {
          model.put(k, VersionedValue{v, ++model.max_version, KeyStatus::kDeleteAfterTtl}, now);
        }
      } else if (op < 52) {
        const auto old = st.find(k);
        const std::string v = old ? old->value : "";
        if (st.delete_after_ttl(k, now)) {
          model.put(k, VersionedValue{v, ++model.max_version, KeyStatus::kDeleteAfterTtl}, now);
        }
      } else if (op < 80) {
        // Replicated writes: mostly past the newest version, sometimes at or
        // below an existing one (out of order, or a corrupt duplicate).
        const std::uint64_t version = rng() % 4 == 0 && model.max_version > 0
                                          ? 1 + rng() % model.max_version
                                          : model.max_version + 1 + rng() % 3;
        const auto status = static_cast<KeyStatus>(rng() % 3);
        VersionedValue vv{status == KeyStatus::kDeleted ? "" : value(), version, status};
        const KeyChange change = st.apply(k, vv, now);
        CHECK(change.key == k);
        CHECK(change.new_value == vv);
        const auto before = model.entries.find(k);
        CHECK(change.old_value.has_value() == (before != model.entries.end()));
        if (before != model.entries.end() && change.old_value)
          CHECK(*change.old_value == before->second.value);
        model.put(k, vv, now);
        st.raise_max_version(version);
        model.max_version = std::max(model.max_version, version);
      } else if (op < 83) {
        const std::size_t entries = 1 + rng() % 50;
        st.reserve(entries);
      } else if (op < 97) {
        const Instant cutoff = now - std::chrono::seconds(rng() % 20);
        std::size_t expected = 0;
        std::erase_if(model.entries, [&](const auto& e) {
          if (!e.second.value.is_tombstone() || e.second.changed > cutoff) return false;
          model.last_gc_version = std::max(model.last_gc_version, e.second.value.version);
          ++expected;
          return true;
        });
        CHECK(st.gc_tombstones(cutoff) == expected);
      } else if (op < 98) {
        const std::uint64_t gc = model.max_version + 1;
        st.wipe(gc);
        model.entries.clear();
        model.max_version = 0;
        model.last_gc_version = gc;
      } else {
        // A copy is a full, independent state.
        const NodeState copy = st;
        check_same(copy, model, rng);
      }
      check_same(st, model, rng);
    }
  }
}

TEST_CASE("NodeState keeps a few entries of many updates compact") {
  NodeState st(NodeId{"n", 1, Address{"h", 1}, ""});
  const std::string keys[] = {"k0", "k1", "k2"};
  for (int round = 0; round < 10'000; ++round) st.set(keys[round % 3], std::to_string(round), t0());
  CHECK(st.size() == 3);
  CHECK(st.max_version() == 10'000);
  std::vector<std::uint64_t> versions;
  st.for_each_since(0, [&](std::string_view, const VersionedValue& vv) {
    versions.push_back(vv.version);
    return true;
  });
  CHECK(versions == std::vector<std::uint64_t>{9'998, 9'999, 10'000});
}
