// Where replicated state keeps its bytes (an internal header of the core).
//
// A stored key-value is its KeyValueUpdatePb body in canonical form, after
// its length prefix: exactly the bytes a delta carries, so applying one keeps
// the bytes where they arrived and sending it again is one copy. Those bytes
// live in chunks: a packet whose buffer the state took over, or an arena
// block for what it copies from elsewhere (its own writes, key-values of a
// packet mostly made of something else). A chunk counts the entries pointing
// into it and is freed by the last one to go; when the chunks hold more than
// twice what entries use, the entries of sparse chunks are moved together
// (ClusterState::collect_garbage), so garbage stays proportional to state.
//
// Node states, and the small arrays of their keys (a keys block, log and
// index), come from pools shared by every node state of a ClusterState:
// creating a replica of a few keys costs no call to malloc.
//
// Replicas of one node in the ClusterStates of one workspace (a simulator's
// nodes) hold, once converged, the same keys: those ClusterStates share a
// KeysTable of frozen keys blocks, and a replica whose keys have no
// tombstone (they carry a local time) points at the frozen block of its
// content, made by the first replica to hold that content, instead of a
// block, a log and packets of its own. A frozen block owns a copy of its
// bytes, so the packets its content came in are freed. Copy on write: any
// change to such a replica first gives it a private copy again.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string_view>
#include <utility>
#include <vector>

#include "aiocluster/node_state.h"
#include "aiocluster/types.h"
#include "hash.h"
#include "hash_index.h"
#include "wire.h"

namespace aiocluster {

struct Chunk {
  Bytes bytes;
  std::size_t used = 0;     // bytes handed out; all of an adopted packet
  std::size_t live = 0;     // bytes that entries point at
  std::uint32_t refs = 0;   // entries pointing in
  std::uint32_t index = 0;  // in ByteStore::chunks_
};

class ByteStore {
 public:
  ByteStore() = default;
  ByteStore(const ByteStore&) = delete;
  ByteStore& operator=(const ByteStore&) = delete;
  ~ByteStore() = default;

  // Takes over a packet's bytes, held for the caller until drop_if_unused,
  // which frees it when no entry holds any of them: entries let go of it
  // meanwhile (a replica moving to a frozen block) without freeing the
  // packet being read.
  Chunk* adopt(Bytes bytes);
  void drop_if_unused(Chunk* chunk);
  // Room for `size` bytes that never move, in the current arena block.
  std::pair<Chunk*, std::uint8_t*> allocate(std::size_t size);
  void hold(Chunk* chunk, std::size_t size, std::uint32_t refs = 1) {
    chunk->refs += refs;
    chunk->live += size;
    live_ += size;
  }
  void release(Chunk* chunk, std::size_t size);

  // True when chunks hold more than twice the bytes entries use: time to
  // move the entries of sparse chunks together.
  bool wasteful() const { return held_ > 2 * live_ + kSlack; }
  bool sparse(const Chunk* chunk) const { return chunk != arena_ && chunk->live * 2 < chunk->used; }
  std::size_t held() const { return held_; }
  std::size_t live() const { return live_; }

 private:
  static constexpr std::size_t kSlack = 4096;
  static constexpr std::size_t kMinBlock = 1024;
  static constexpr std::size_t kMaxBlock = 64 * 1024;
  Chunk* add(Bytes bytes, std::size_t used);
  void free(Chunk* chunk);

  std::vector<std::unique_ptr<Chunk>> chunks_;
  Chunk* arena_ = nullptr;
  std::size_t held_ = 0;
  std::size_t live_ = 0;
};

// Small blocks, in sizes 8 bytes apart up to 128 and 1.5x apart beyond,
// carved from slabs, each size with a free list: a node state, its log and
// its index cost a few instructions each (std::pmr::unsynchronized_pool_resource
// spent some 300 per block, a third of creating a replica). The fine small
// sizes fit a replica's log exactly (24 bytes an entry: a log of 3 took 96
// bytes). Larger blocks come from operator new. Like any pool, memory freed
// stays for reuse until the pool goes.
//
// Slabs are all one page: a ClusterState has a pool of its own, so a
// simulator holds one per node, and slabs that grew with the pool left
// their last one half empty on average, a third of what an idle replica
// cost. Fixed slabs leave at most one slab unused per pool.
class SlabPool : public std::pmr::memory_resource {
 public:
  SlabPool() = default;
  SlabPool(const SlabPool&) = delete;
  SlabPool& operator=(const SlabPool&) = delete;
  ~SlabPool() override = default;

  static constexpr std::size_t kSlab = 4096;
  // Larger blocks would leave much of a one-page slab unused (a 3072-byte
  // log left 1024 bytes): they come from operator new.
  static constexpr std::size_t kLargest = kSlab / 4;
  // Bytes in slabs, whether handed out, free or not carved yet.
  std::size_t held() const { return slabs_.size() * kSlab; }
  // The bytes of the block a request for `bytes` (at most kLargest) takes.
  static std::size_t block_size(std::size_t bytes) { return size_of(class_of(bytes)); }
  // A slab of its own (what a FixedPool carves), freed with the pool.
  void* take_slab();

 private:
  static constexpr std::size_t kFine = 128;    // sizes 8 bytes apart up to here
  static constexpr std::size_t kClasses = 22;  // 8, 16 ... 128, then 192, 256 ... 768, 1024
  struct FreeBlock {
    FreeBlock* next;
  };

  // Classes 0 to 15 hold 8 to 128 bytes; beyond, classes 2b and 2b + 1
  // hold 3 << (b - 2) and 1 << b bytes (b >= 8).
  static std::size_t class_of(std::size_t bytes) {
    if (bytes <= kFine) return bytes <= 8 ? 0 : (bytes - 1) >> 3;
    const std::size_t m = bytes - 1;
    const auto b = static_cast<std::size_t>(std::bit_width(m));  // 2^(b-1) < bytes <= 2^b
    return 2 * b + (m < (std::size_t{3} << (b - 2)) ? 0 : 1);
  }
  static std::size_t size_of(std::size_t size_class) {
    if (size_class < 16) return (size_class + 1) * 8;
    const std::size_t b = size_class / 2;
    return size_class % 2 == 0 ? std::size_t{3} << (b - 2) : std::size_t{1} << b;
  }
  void new_slab();
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }

  FreeBlock* free_[kClasses] = {};
  // Slabs start on a cache line, so that blocks of 64 bytes (node states)
  // each fill one.
  struct alignas(64) Line {
    std::byte bytes[64];
  };
  std::vector<std::unique_ptr<Line[]>> slabs_;
  std::byte* next_ = nullptr;
  std::size_t left_ = 0;
};

// Blocks of one size carved from whole slabs of a SlabPool, with a free
// list and no virtual call: the node states of a ClusterState, 80 bytes
// each, and their keys blocks. The slabs stay the pool's (freed with it).
class FixedPool {
 public:
  // `size`: a multiple of 8, blocks then aligned like the pool's.
  FixedPool(SlabPool& from, std::size_t size) : from_(from), size_(size) {}
  FixedPool(const FixedPool&) = delete;
  FixedPool& operator=(const FixedPool&) = delete;
  ~FixedPool() = default;

  void* allocate() {
    if (FreeBlock* block = free_) {
      free_ = block->next;
      return block;
    }
    if (left_ < size_) [[unlikely]] {
      next_ = static_cast<std::byte*>(from_.take_slab());
      left_ = kSlab;
    }
    void* block = next_;
    next_ += size_;
    left_ -= size_;
    return block;
  }
  void deallocate(void* p) {
    auto* block = static_cast<FreeBlock*>(p);
    block->next = free_;
    free_ = block;
  }

 private:
  static constexpr std::size_t kSlab = SlabPool::kSlab;
  struct FreeBlock {
    FreeBlock* next;
  };
  SlabPool& from_;
  std::size_t size_;
  FreeBlock* free_ = nullptr;
  std::byte* next_ = nullptr;
  std::size_t left_ = 0;
};

// Encoded node ids, one copy of each for all the replicas naming it, each
// counting its holders and freed by the last to go. The ClusterStates of
// nodes sharing a workspace share one table (Node::share_workspace): a
// simulator's nodes then hold each id once, where a copy per replica was
// 37 of the 200 bytes issue 13 allows an idle replica. A replica names its
// id by a 4-byte number, not an 8-byte pointer and a size: with it a
// NodeState is 64 bytes, one cache line. Single-threaded, like the
// workspace; each ClusterState holds the table it uses, so the table
// outlives every replica naming an id in it.
class IdTable {
 public:
  using Ref = std::uint32_t;
  // Refs stay below this (NodeState keeps two flags beside one).
  static constexpr Ref kMaxRefs = Ref{1} << 30;

  explicit IdTable(std::uint64_t seed) : seed_(seed) {}
  IdTable(const IdTable&) = delete;
  IdTable& operator=(const IdTable&) = delete;
  ~IdTable() = default;

  // The table's copy of `encoded`, held once more.
  Ref hold(ByteView encoded);
  // Lets go of what hold() returned.
  void release(Ref ref);
  ByteView bytes(Ref ref) const {
    const Id& id = ids_[ref];
    return {id.bytes.get(), id.size};
  }
  // Where the entry of `ref` is, to prefetch before bytes() is asked.
  const void* entry(Ref ref) const { return &ids_[ref]; }
  // Distinct ids held.
  std::size_t size() const { return refs_.size(); }

 private:
  struct Id {
    std::unique_ptr<std::uint8_t[]> bytes;
    std::uint32_t size = 0;
    std::uint32_t holders = 0;
  };
  std::uint32_t hash(ByteView encoded) const;

  std::uint64_t seed_;
  std::vector<Id> ids_;    // by ref; free ones have no bytes
  std::vector<Ref> free_;  // refs to reuse
  HashIndex refs_;         // the refs held, by the hash of their bytes
};

// Frozen keys blocks, each held by the replicas whose keys are its content
// (the id of the node they replicate, and each entry's version and stored
// key-value), counting them and freed by the last to go. Shared by the
// ClusterStates of one workspace (ClusterState::share_keys); replicas only
// use it while more than one ClusterState does, so a node alone never pays
// for a copy nobody else reads. A hash only finds candidates: contents are
// compared in full, so a peer's crafted key-values never take another
// content's block. Single-threaded, like the workspace.
class KeysTable {
 public:
  // `hash_mask`: ~0; a test forces collisions with 0.
  explicit KeysTable(std::uint64_t seed, std::uint64_t hash_mask = ~std::uint64_t{0})
      : seed_(seed), mask_(hash_mask) {}
  KeysTable(const KeysTable&) = delete;
  KeysTable& operator=(const KeysTable&) = delete;
  ~KeysTable();

  // ClusterStates using the table.
  void join() { ++users_; }
  void leave() { --users_; }
  bool shared() const { return users_ > 1; }

  // The frozen block of the live entries of `keys` (a replica of the node
  // whose encoded id is `id`; no tombstones), held once more: made when new.
  NodeState::Keys* hold(ByteView id, const NodeState::Keys& keys);
  // Lets go of what hold() returned.
  void release(NodeState::Keys* keys);
  // Distinct blocks, and the replicas holding them (for tests).
  std::size_t size() const { return index_.size(); }
  std::size_t holders() const;

 private:
  using Entry = NodeState::Entry;
  // The block as a NodeState reads it (an unindexed log: the index hashes
  // keys under each node's own seed), its entries pointing into `bytes`:
  // the id, then each stored key-value.
  struct Frozen : NodeState::Keys {
    std::uint32_t hash = 0;
    std::uint32_t holders = 0;
    std::uint32_t id_size = 0;
    std::uint32_t number = 0;  // its place in blocks_
    Chunk bytes;
  };
  std::uint32_t hash(ByteView id, const NodeState::Keys& keys) const;
  static bool same(const Frozen& frozen, ByteView id, const NodeState::Keys& keys);

  std::uint64_t seed_;
  std::uint64_t mask_;
  std::size_t users_ = 0;
  SlabPool pool_;                                // the frozen logs
  std::vector<std::unique_ptr<Frozen>> blocks_;  // by number; null when free
  std::vector<std::uint32_t> free_;              // numbers to reuse
  HashIndex index_;                              // the blocks' numbers, by hash
};

// What the node states of one ClusterState share.
struct Storage {
  explicit Storage(std::uint64_t seed = 0)
      : hash_seed(seed), ids(std::make_shared<IdTable>(seed)) {}
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (frozen != nullptr) frozen->leave();
  }
  std::uint64_t hash_seed;  // of keys and node ids (hash.h)
  // Shared with other ClusterStates of one workspace (ClusterState::share_ids).
  std::shared_ptr<IdTable> ids;
  // Likewise (ClusterState::share_keys); none until shared.
  std::shared_ptr<KeysTable> frozen;
  bool sharing_keys() const { return frozen != nullptr && frozen->shared(); }
  // Node states that may hold tombstones: at least those that do. Counted
  // up where a tombstone list is made, and recounted by the walk of
  // ClusterState::gc_tombstones, which is skipped while it is 0.
  std::size_t tombstoned = 0;
  SlabPool pool;
  FixedPool states{pool, sizeof(NodeState)};  // a ClusterState's NodeStates
  FixedPool keys{pool, sizeof(NodeState::Keys)};
  static_assert(alignof(NodeState) <= 8 && sizeof(NodeState) % 8 == 0);
  static_assert(alignof(NodeState::Keys) <= 8 && sizeof(NodeState::Keys) % 8 == 0);
  ByteStore bytes;
};

inline ByteView NodeState::encoded_id() const { return storage_->ids->bytes(id_); }

// --- The stored form of a key-value. ---

struct StoredKeyValue {
  std::string_view key;
  std::string_view value;
  std::uint64_t version = 0;
  KeyStatus status = KeyStatus::kSet;
};

namespace stored {

// Canonical bytes, written by us or checked by wire::read_packet: read
// without checks.
using wire::canonical_id::varint;

// The length prefix and the body.
inline std::size_t size(const std::uint8_t* stored) {
  const std::uint8_t* p = stored;
  const std::uint64_t body = varint(p);
  return static_cast<std::size_t>(p - stored) + body;
}

inline std::string_view key(const std::uint8_t* stored) {
  const std::uint8_t* p = stored;
  varint(p);
  if (*p != wire::tag(1, wire::kLength)) return {};
  ++p;
  const auto n = static_cast<std::size_t>(varint(p));
  return {reinterpret_cast<const char*>(p), n};
}

inline StoredKeyValue read(const std::uint8_t* stored) {
  StoredKeyValue kv;
  const std::uint8_t* p = stored;
  const std::uint64_t body = varint(p);
  const std::uint8_t* end = p + body;
  auto text = [&p]() {
    ++p;
    const auto n = static_cast<std::size_t>(varint(p));
    const std::string_view s(reinterpret_cast<const char*>(p), n);
    p += n;
    return s;
  };
  if (p != end && *p == wire::tag(1, wire::kLength)) kv.key = text();
  if (p != end && *p == wire::tag(2, wire::kLength)) kv.value = text();
  if (p != end && *p == wire::tag(3, wire::kVarint)) {
    ++p;
    kv.version = varint(p);
  }
  if (p != end && *p == wire::tag(4, wire::kVarint)) kv.status = static_cast<KeyStatus>(p[1]);
  return kv;
}

inline std::size_t size_of(std::string_view key, std::string_view value, std::uint64_t version,
                           KeyStatus status) {
  const std::size_t body = wire_size::key_value(key, value, version, status);
  return wire_size::varint(body) + body;
}

inline void write(std::uint8_t* out, std::string_view key, std::string_view value,
                  std::uint64_t version, KeyStatus status) {
  wire::Writer w(out);
  w.varint(wire_size::key_value(key, value, version, status));
  w.string_field(1, key);
  w.string_field(2, value);
  w.uint_field(3, version);
  w.uint_field(4, static_cast<std::uint64_t>(status));
}

}  // namespace stored

}  // namespace aiocluster
