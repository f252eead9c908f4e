// The key-value state one node owns, as held by its owner or by a replica:
// versioned entries, tombstones and their garbage collection
// (PROTOCOL.md section 4).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aiocluster/types.h"

namespace aiocluster {

// What one mutation did to one key, for KeyChanged events.
struct KeyChange {
  std::string key;
  std::optional<VersionedValue> old_value;
  VersionedValue new_value;
};

class NodeState {
 public:
  explicit NodeState(NodeId id) : id_(std::move(id)) {}

  const NodeId& id() const { return id_; }
  std::uint64_t heartbeat() const { return heartbeat_; }
  std::uint64_t max_version() const { return max_version_; }
  std::uint64_t last_gc_version() const { return last_gc_version_; }
  std::size_t size() const { return live_; }

  // The entry under `key` whatever its status; nullptr when absent. The
  // pointer (like the references for_each passes) is valid until the next
  // mutation of this state.
  const VersionedValue* find(std::string_view key) const;
  // The value under `key` when it is visible (not DELETED).
  std::optional<std::string> value(std::string_view key) const;

  // Calls f(key, versioned_value) for every entry, in key order (sorts them:
  // O(n log n), meant for snapshots and checks, not for gossip).
  template <typename F>
  void for_each(F&& f) const {
    std::vector<std::uint32_t> slots;
    slots.reserve(live_);
    for (std::size_t i = 0; i < key_at_.size(); ++i) {
      if (key_at_[i] != kHole) slots.push_back(static_cast<std::uint32_t>(i));
    }
    std::sort(slots.begin(), slots.end(),
              [this](std::uint32_t a, std::uint32_t b) { return key_of(a) < key_of(b); });
    for (std::uint32_t i : slots) f(key_of(i), log_[i]);
  }
  // Calls f(key, versioned_value) for every entry with version > `version`,
  // in increasing version order, while f returns true. Costs O(log n + the
  // number of versions after `version`).
  template <typename F>
  void for_each_since(std::uint64_t version, F&& f) const {
    auto it =
        std::upper_bound(log_.begin(), log_.end(), version,
                         [](std::uint64_t v, const VersionedValue& e) { return v < e.version; });
    for (auto i = static_cast<std::size_t>(it - log_.begin()); i < log_.size(); ++i) {
      if (key_at_[i] == kHole) continue;
      if (!f(key_of(i), log_[i])) return;
    }
  }

  // --- Mutations by the owner: each takes version max_version + 1. ---
  // nullopt when the call changes nothing (PROTOCOL.md section 4).
  std::optional<KeyChange> set(std::string_view key, std::string_view value, Instant now);
  std::optional<KeyChange> remove(std::string_view key, Instant now);
  std::optional<KeyChange> set_with_ttl(std::string_view key, std::string_view value, Instant now);
  std::optional<KeyChange> delete_after_ttl(std::string_view key, Instant now);
  std::uint64_t increment_heartbeat() { return ++heartbeat_; }

  // --- Mutations by replication. ---
  // Makes room for `entries` more entries at once, before applying a delta:
  // the storage then fits them exactly instead of growing step by step.
  void reserve(std::size_t entries);
  // Replaces the entry under `key` with a replicated one.
  KeyChange apply(std::string_view key, VersionedValue value, Instant now);
  // Forgets every entry ahead of a reset; heartbeat is kept.
  void wipe(std::uint64_t new_last_gc_version);
  void raise_max_version(std::uint64_t version);
  // True when the heartbeat grew.
  bool observe_heartbeat(std::uint64_t heartbeat);
  // The highest max_version a digest has shown for this node: how complete
  // a replica must be before a reset of it is over (ClusterState::apply).
  std::uint64_t max_version_announced() const { return max_version_announced_; }
  void announce_max_version(std::uint64_t version) {
    if (version > max_version_announced_) max_version_announced_ = version;
  }

  // Removes tombstones whose status changed at or before `cutoff`; raises
  // last_gc_version to the highest version removed. Returns how many.
  std::size_t gc_tombstones(Instant cutoff);

  // Set by the owner of the cluster state when the node has been dead for
  // half the dead-node grace period: left out of digests and deltas.
  bool scheduled_for_deletion() const { return scheduled_for_deletion_; }
  void schedule_for_deletion() { scheduled_for_deletion_ = true; }
  void unschedule_deletion() { scheduled_for_deletion_ = false; }

 private:
  // Storage, compact because a node replicates every key of the cluster
  // (about 60 bytes per small key-value beyond its bytes, see bench/):
  //   log_     entries in strictly increasing version order, so stale entries
  //            are a binary search and a scan away. A rewritten key moves to
  //            the end and leaves a hole (key_at_ == kHole, value emptied, its
  //            version kept for the search); compact() drops the holes once
  //            they outnumber live entries, so a scan from version v visits
  //            at most the versions after v plus what is live after it.
  //   key_at_  per log slot, where its key starts in keys_.
  //   keys_    the key bytes, each after its varint length.
  //   index_   open addressing (linear probing) from a key's hash to its slot.
  //   tombstones_ (version, status change time) of tombstones, by version:
  //            only they need a time, for garbage collection.
  static constexpr std::uint32_t kHole = UINT32_MAX;
  static constexpr std::uint32_t kFree = UINT32_MAX;

  std::string_view key_of(std::size_t slot) const {
    const char* p = keys_.data() + key_at_[slot];
    std::size_t length = 0;
    for (int shift = 0;; shift += 7) {
      const auto byte = static_cast<unsigned char>(*p++);
      length |= static_cast<std::size_t>(byte & 0x7f) << shift;
      if (byte < 0x80) break;
    }
    return {p, length};
  }

  KeyChange put(std::string_view key, VersionedValue value, Instant now);
  static std::size_t hash(std::string_view key);
  // Position in index_ holding `key`, or of the free cell where it belongs.
  std::size_t probe(std::string_view key, std::size_t hash) const;
  std::size_t slot_of(std::string_view key) const;  // log slot, or npos
  std::uint32_t store_key(std::string_view key);
  void unindex(std::size_t position);
  void make_hole(std::size_t slot);
  void drop_tombstone(std::uint64_t version);
  void add_tombstone(std::uint64_t version, Instant now);
  void reindex(std::size_t capacity);
  void compact_if_sparse();
  void compact();

  NodeId id_;
  std::uint64_t heartbeat_ = 0;
  std::uint64_t max_version_ = 0;
  std::uint64_t last_gc_version_ = 0;
  std::uint64_t max_version_announced_ = 0;
  bool scheduled_for_deletion_ = false;
  std::size_t live_ = 0;
  std::size_t dead_key_bytes_ = 0;  // in keys_, of keys no slot uses any more
  std::vector<VersionedValue> log_;
  std::vector<std::uint32_t> key_at_;
  std::vector<char> keys_;
  std::vector<std::uint32_t> index_;
  std::vector<std::pair<std::uint64_t, Instant>> tombstones_;
};

}  // namespace aiocluster
