// The key-value state one node owns, as held by its owner or by a replica:
// versioned entries, tombstones and their garbage collection
// (PROTOCOL.md section 4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

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
  // A copy rebuilds its version index, whose iterators point into its own
  // entries; moves keep them valid.
  NodeState(const NodeState& other);
  NodeState& operator=(const NodeState& other);
  NodeState(NodeState&&) = default;
  NodeState& operator=(NodeState&&) = default;

  const NodeId& id() const { return id_; }
  std::uint64_t heartbeat() const { return heartbeat_; }
  std::uint64_t max_version() const { return max_version_; }
  std::uint64_t last_gc_version() const { return last_gc_version_; }
  std::size_t size() const { return entries_.size(); }

  // The entry under `key` whatever its status; nullptr when absent.
  const VersionedValue* find(std::string_view key) const;
  // The value under `key` when it is visible (not DELETED).
  std::optional<std::string> value(std::string_view key) const;

  // Calls f(key, versioned_value) for every entry, in key order.
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [key, entry] : entries_) f(std::string_view(key), entry.value);
  }
  // Calls f(key, versioned_value) for every entry with version > `version`,
  // in increasing version order, while f returns true. Costs O(log n + visited).
  template <typename F>
  void for_each_since(std::uint64_t version, F&& f) const {
    for (auto it = by_version_.upper_bound(version); it != by_version_.end(); ++it) {
      if (!f(std::string_view(it->second->first), it->second->second.value)) return;
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
  // Replaces the entry under `key` with a replicated one.
  KeyChange apply(std::string_view key, VersionedValue value, Instant now);
  // Forgets every entry ahead of a reset; heartbeat is kept.
  void wipe(std::uint64_t new_last_gc_version);
  void raise_max_version(std::uint64_t version);
  // True when the heartbeat grew.
  bool observe_heartbeat(std::uint64_t heartbeat);

  // Removes tombstones whose status changed at or before `cutoff`; raises
  // last_gc_version to the highest version removed. Returns how many.
  std::size_t gc_tombstones(Instant cutoff);

  // Set by the owner of the cluster state when the node has been dead for
  // half the dead-node grace period: left out of digests and deltas.
  bool scheduled_for_deletion() const { return scheduled_for_deletion_; }
  void schedule_for_deletion() { scheduled_for_deletion_ = true; }

 private:
  struct Entry {
    VersionedValue value;
    Instant status_changed;
  };
  using Entries = std::map<std::string, Entry, std::less<>>;

  KeyChange put(std::string_view key, VersionedValue value, Instant now);

  NodeId id_;
  std::uint64_t heartbeat_ = 0;
  std::uint64_t max_version_ = 0;
  std::uint64_t last_gc_version_ = 0;
  bool scheduled_for_deletion_ = false;
  Entries entries_;
  // version -> entry: stale entries in version order without a scan.
  std::map<std::uint64_t, Entries::iterator> by_version_;
  // versions of the tombstones, so GC visits only them.
  std::set<std::uint64_t> tombstones_;
};

}  // namespace aiocluster
