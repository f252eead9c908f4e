// The key-value state one node owns, as held by its owner or by a replica:
// versioned entries, tombstones and their garbage collection
// (PROTOCOL.md section 4).
#pragma once

#include <algorithm>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <memory_resource>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aiocluster/types.h"

namespace aiocluster {

struct Chunk;     // core internals (src/storage.h)
struct Storage;   //
class KeysTable;  //

// What one mutation did to one key, for KeyChanged events.
struct KeyChange {
  std::string key;
  std::optional<VersionedValue> old_value;
  VersionedValue new_value;
};

// A stored value seen in place: valid until the next mutation of its node
// state.
struct ValueRef {
  std::string_view value;
  std::uint64_t version = 0;
  KeyStatus status = KeyStatus::kSet;

  VersionedValue to_value() const { return VersionedValue{std::string(value), version, status}; }
};

// A KeyChange seen in place, while a delta is applied.
struct KeyChangeRef {
  std::string_view key;
  std::optional<ValueRef> old_value;
  ValueRef new_value;

  KeyChange to_change() const;
};

class NodeState;

// Told of every key a delta changes, in place (the views last for the call).
using OnKeyChange = std::function<void(const NodeState& node, const KeyChangeRef& change)>;

namespace wire {
struct KeyValueView;
struct NodeIdView;
}  // namespace wire

class NodeState {
 public:
  // A node state with storage of its own; a ClusterState makes its nodes'
  // states share one.
  explicit NodeState(NodeId id);
  ~NodeState();
  // A copy has storage of its own.
  NodeState(const NodeState& other);
  NodeState(NodeState&& other) noexcept;
  NodeState& operator=(const NodeState&) = delete;
  NodeState& operator=(NodeState&&) = delete;

  // Decoded from the encoded id the state keeps (one copy of the identity
  // per replica, not two): allocates, so loops over many nodes read
  // id_view() instead.
  NodeId id() const;
  // The id in place (core internal: src/wire.h), valid while the state is.
  wire::NodeIdView id_view() const;
  // id() <=> `other`, without decoding the id.
  std::strong_ordering compare_id(const NodeId& other) const;
  std::uint64_t heartbeat() const { return heartbeat_; }
  std::uint64_t max_version() const { return max_version_; }
  std::uint64_t last_gc_version() const { return last_gc_version_; }
  std::size_t size() const { return keys_ == nullptr ? 0 : keys_->live; }
  // A number its ClusterState gives the node while it knows it (reused once
  // the node is removed): per-node data kept elsewhere is indexed by it.
  std::uint32_t slot() const { return slot_; }

  // The entry under `key` whatever its status; nullopt when absent.
  std::optional<VersionedValue> find(std::string_view key) const;
  // The value under `key` when it is visible (not DELETED).
  std::optional<std::string> value(std::string_view key) const;
  // When the entry under `key` became a tombstone (DELETED or
  // DELETE_AFTER_TTL): the `now` of the mutation or of the delta that stored
  // it, in the caller's clock. It is the entry's status_change_ts (PROTOCOL.md
  // section 4), local and never sent, from which tombstone GC counts the
  // grace period. nullopt when the key is absent or SET: the core keeps no
  // time for live values.
  std::optional<Instant> status_changed_at(std::string_view key) const;

  // Calls f(key, versioned_value) for every entry, in key order (sorts them:
  // O(n log n), meant for snapshots and checks, not for gossip).
  template <typename F>
  void for_each(F&& f) const {
    for (std::uint32_t slot : slots_by_key()) f(key_at(slot), value_at(slot).to_value());
  }
  // Calls f(key, versioned_value) for every entry with version > `version`,
  // in increasing version order, while f returns true. Costs O(log n + the
  // number of versions after `version`).
  template <typename F>
  void for_each_since(std::uint64_t version, F&& f) const {
    const std::span<const Entry> entries = log();
    for (std::size_t slot = first_after(version); slot < entries.size(); ++slot) {
      if (entries[slot].chunk == nullptr) continue;
      if (!f(key_at(slot), value_at(slot).to_value())) return;
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
  KeyChange apply(std::string_view key, const VersionedValue& value, Instant now);
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
  bool scheduled_for_deletion() const { return scheduled_for_deletion_ != 0; }
  void schedule_for_deletion() { scheduled_for_deletion_ = 1; }
  void unschedule_deletion() { scheduled_for_deletion_ = 0; }

 private:
  friend class ClusterState;
  friend struct PacketPaths;
  friend struct Storage;   // sizes its pools by NodeState and Keys
  friend class KeysTable;  // freezes keys blocks

  // Storage, compact because a node replicates every key of the cluster (in
  // the Keys block, below):
  //   log      entries in strictly increasing version order, so stale entries
  //            are a binary search and a scan away. Each points at its stored
  //            key-value (src/storage.h): a delta's bytes where they arrived.
  //            A rewritten key moves to the end and leaves a hole (no bytes,
  //            its version kept for the search); compact() drops the holes
  //            once they outnumber live entries, so a scan from version v
  //            visits at most the versions after v plus what is live after it.
  //   index    open addressing (linear probing) from a key's hash to its slot.
  //            Built when first needed: a replica only ever appended to by
  //            its first delta (at most kUnindexedKeys keys) has none until an
  //            update, a garbage collection or another delta needs it; const
  //            lookups scan such a replica's log instead (unindexed()).
  //   tombstones (version, status change time) of tombstones, by version:
  //            only they need a time, for garbage collection.
  struct Entry {
    std::uint64_t version = 0;
    const std::uint8_t* stored = nullptr;
    Chunk* chunk = nullptr;  // nullptr: a hole
  };
  static constexpr std::uint32_t kFree = UINT32_MAX;

  // On `shared` storage (nullptr: storage of its own).
  NodeState(NodeId id, Storage* shared);
  // Read from a packet: the id's canonical NodeIdPb body (read_node_id
  // accepted it) and its hash.
  NodeState(Storage* shared, ByteView encoded, std::size_t hash);
  NodeState(const NodeState& other, Storage* shared);

  // --- For ClusterState. ---
  // The canonical NodeIdPb body of the id: packets name the node by it, and
  // digests and deltas copy it.
  ByteView encoded_id() const;  // inline in src/storage.h
  std::size_t id_hash() const { return std::size_t{id_hash_} << 32; }
  // Points the state at the storage's id table's copy of `encoded`.
  void hold_encoded_id(ByteView encoded);
  void release_encoded_id();
  // Makes the stored key-value at `stored` (in `chunk`) the entry of `key`,
  // holding its bytes. Returns the entry it replaced, whose bytes stay held
  // until release().
  std::optional<Entry> store(std::string_view key, std::uint64_t version, KeyStatus status,
                             const std::uint8_t* stored, std::size_t stored_size, Chunk* chunk,
                             Instant now);
  // store() once the index has room for one more key (apply_key_values()
  // makes room for all of a delta's keys up front).
  std::optional<Entry> store_in_room(std::string_view key, std::uint64_t version, KeyStatus status,
                                     const std::uint8_t* stored, std::size_t stored_size,
                                     Chunk* chunk, Instant now);
  std::optional<Entry> replace(std::string_view key, std::size_t hash, std::size_t position,
                               const Entry& incoming, KeyStatus status, Instant now);
  void release(const Entry& entry);
  // Applies the key-values of a node delta, in order: those past `before`,
  // but no tombstone at or below `gc`; their bytes stay in `chunk`, or are
  // copied to the arena when it is null. Reports each change. Stops at the
  // first new key beyond `max_keys` (truncated). Reserves room for the keys
  // the limit admits first.
  struct Applied {
    std::size_t count = 0;
    std::size_t bytes_copied = 0;
    std::uint64_t last_version = 0;
    bool truncated = false;
  };
  Applied apply_key_values(const wire::KeyValueView* kvs, std::size_t count, std::uint64_t before,
                           std::uint64_t gc, std::size_t max_keys, Chunk* chunk, Instant now,
                           const OnKeyChange& on_change);
  struct SeenKeys;     // how append_key_values() tells a key is new:
  struct IndexedKeys;  // a scratch table of a delta's keys, or the index
  template <typename NewKeys>
  std::size_t append_key_values(const wire::KeyValueView* kvs, std::size_t count,
                                std::uint64_t before, std::uint64_t gc, std::size_t max_keys,
                                Chunk* chunk, Instant now, const OnKeyChange& on_change,
                                NewKeys& new_keys, Applied& applied);
  // The largest replica a first delta leaves without a key index: lookups
  // scan it, comparing key sizes first.
  static constexpr std::size_t kUnindexedKeys = 128;
  bool unindexed() const { return keys_ != nullptr && keys_->index_size == 0 && keys_->live > 0; }
  void ensure_index();
  // Moves the bytes of entries in sparse chunks to the arena.
  void relocate_sparse();
  std::size_t first_after(std::uint64_t version) const;
  std::span<const Entry> log() const {
    return keys_ == nullptr ? std::span<const Entry>()
                            : std::span<const Entry>(keys_->log.data(), keys_->log.size());
  }

  std::string_view key_at(std::size_t slot) const;
  ValueRef value_at(std::size_t slot) const;
  std::vector<std::uint32_t> slots_by_key() const;
  std::optional<KeyChange> write(std::string_view key, std::string_view value, KeyStatus status,
                                 Instant now);
  std::size_t hash(std::string_view bytes) const;
  std::size_t probe(std::string_view key, std::size_t hash) const;
  std::size_t slot_of(std::string_view key) const;   // log slot, or SIZE_MAX
  std::size_t scan_for(std::string_view key) const;  // slot_of() without an index
  void unindex(std::size_t position);
  void make_hole(std::size_t slot);
  bool is_tombstone(const Entry& entry) const;
  void drop_tombstone(std::uint64_t version);
  void add_tombstone(std::uint64_t version, Instant now);
  void reindex(std::size_t capacity);
  void free_index();
  void compact_if_sparse();
  void compact();
  void collect_own_garbage();

  // The log's entries, in a block of the storage's pool, which the calls
  // that allocate are given: the log keeps no pointer to it, and takes 16
  // bytes of the keys block where a pmr vector took 32. Appends go into
  // room reserved first.
  class Log {
   public:
    std::size_t size() const { return size_; }
    std::size_t capacity() const { return capacity_; }
    bool empty() const { return size_ == 0; }
    Entry* data() { return data_; }
    const Entry* data() const { return data_; }
    Entry* begin() { return data_; }
    Entry* end() { return data_ + size_; }
    const Entry* begin() const { return data_; }
    const Entry* end() const { return data_ + size_; }
    Entry& operator[](std::size_t i) { return data_[i]; }
    const Entry& operator[](std::size_t i) const { return data_[i]; }
    const Entry& back() const { return data_[size_ - 1]; }
    void push_back(const Entry& e) { data_[size_++] = e; }  // into reserved room
    void shrink(std::size_t size) { size_ = static_cast<std::uint32_t>(size); }

    // Room for `entries` in all.
    void reserve(std::pmr::memory_resource& pool, std::size_t entries);
    // Room for one more, growing by an eighth: a node holds a copy of every
    // key of the cluster, and doubling would leave most of its log unused.
    void reserve_one_more(std::pmr::memory_resource& pool) {
      if (size_ == capacity_) grow(pool);
    }
    void insert(std::pmr::memory_resource& pool, std::size_t at, const Entry& e);
    void shrink_to_fit(std::pmr::memory_resource& pool);
    void free(std::pmr::memory_resource& pool);

   private:
    void grow(std::pmr::memory_resource& pool);
    Entry* data_ = nullptr;
    std::uint32_t size_ = 0;
    std::uint32_t capacity_ = 0;
  };

  // A replica's keys, in a block of their own made with its first key: a
  // replica of a node without keys (most of an idle cluster) is its
  // NodeState and a share of its encoded id, nothing more. 48 bytes.
  using Tombstones = std::vector<std::pair<std::uint64_t, Instant>>;
  struct Keys {
    Keys();                          // in the .cc: Storage is
    ~Keys();                         // complete there
    Log log;                         // freed by NodeState::drop_keys(), which knows the pool
    std::uint32_t* index = nullptr;  // index_size cells from the pool
    std::uint32_t index_size = 0;
    std::uint32_t live = 0;
    // Only nodes with tombstones have the list.
    std::unique_ptr<Tombstones> tombstones;
    // A state outside a ClusterState owns its storage (and so always has
    // its keys block, from that storage's pool).
    std::unique_ptr<Storage> own_storage;
  };
  Keys& keys();  // made when missing; a private copy when shared
  void drop_keys();
  void drop_empty_keys();
  // Points keys_ at the frozen block of its content in `table`, giving up
  // its own (bytes included), when it has keys and no tombstone.
  void share_keys(KeysTable& table);
  // Back to a keys block of its own, a copy of the frozen one.
  void unshare_keys();
  // Copies the entries of `from` into keys_ (empty), bytes to the arena.
  void copy_entries(const Keys& from);

  // What every replica holds, keys or not: 64 bytes, one cache line (a
  // fixed-size block of the ClusterState's storage, not a pool class;
  // static_assert in the .cc). The id hash keeps its top half, all the id
  // table reads (ClusterState::hash clears the rest).
  std::uint64_t heartbeat_ = 0;
  std::uint64_t max_version_ = 0;
  std::uint64_t last_gc_version_ = 0;
  std::uint64_t max_version_announced_ = 0;
  Storage* storage_;
  Keys* keys_ = nullptr;  // from storage_'s keys pool; nullptr: no keys
  std::uint32_t id_hash_ = 0;
  // The encoded id's ref in storage_->ids (IdTable::Ref); kNoId: moved from.
  static constexpr std::uint32_t kNoId = (std::uint32_t{1} << 30) - 1;
  std::uint32_t id_ : 30 = kNoId;
  std::uint32_t scheduled_for_deletion_ : 1 = 0;
  // keys_ is a frozen block of storage_->frozen (src/storage.h): read as
  // any other, given back to the table (and copied first to change it).
  std::uint32_t shared_keys_ : 1 = 0;
  std::uint32_t position_ = 0;  // in its ClusterState's id order
  std::uint32_t slot_ = 0;
};

}  // namespace aiocluster
