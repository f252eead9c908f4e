// Scuttlebutt reconciliation over the node states one node knows
// (PROTOCOL.md section 5): digests, deltas packed into an exact byte budget,
// and the reject / reset rules of applying a delta.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "aiocluster/messages.h"
#include "aiocluster/node_state.h"
#include "aiocluster/random.h"
#include "aiocluster/types.h"

namespace aiocluster {

// Core internals (src/wire.h, src/packing.h, src/storage.h).
namespace wire {
class Writer;
struct PacketView;
struct DigestEntryView;
struct NodeDeltaView;
struct IdRef;
}  // namespace wire
struct DigestPlan;
struct DeltaPlan;
struct PacketPaths;
class IdTable;
class KeysTable;

// How applying one NodeDelta went.
enum class NodeDeltaOutcome : std::uint8_t {
  kApplied,
  kReset,          // applied after wiping the replica
  kIgnored,        // about ourselves, a node scheduled for deletion, or nothing new
  kRejectedGap,    // from_version_excluded beyond what we hold
  kRejectedReset,  // a reset is needed but the delta does not start at 0
  // While a reset is re-sent in several deltas, versions at or below the
  // collection it follows from a sender that does not know that collection:
  // they may be writes the owner has overwritten and collected since.
  kRejectedStale,
  kRejectedMalformed,  // versions out of order or beyond max_version, oversized keys
  kRejectedLimit,  // would exceed the number of known nodes or keys per node, or an id too large
};

struct ApplyLimits {
  std::size_t max_nodes = SIZE_MAX;
  std::size_t max_keys_per_node = SIZE_MAX;
  std::size_t max_key_size = SIZE_MAX;
  std::size_t max_value_size = SIZE_MAX;
  std::size_t max_node_id_size = SIZE_MAX;  // encoded NodeIdPb of a node to create
};

struct ApplyReport {
  std::size_t applied = 0;
  // Node deltas with key-values whose max_version claimed more than their
  // last key-value (a sender that cut them short), or empty ones claiming a
  // range no garbage collection explains: the replica stays incomplete and
  // asks for the rest in its next exchange.
  std::size_t completeness_capped = 0;
  std::size_t resets = 0;
  std::size_t rejected_gap = 0;
  std::size_t rejected_reset = 0;
  std::size_t rejected_stale = 0;
  std::size_t rejected_malformed = 0;
  std::size_t rejected_limit = 0;
  std::size_t key_values = 0;
  // Bytes of applied key-values copied out of their packet rather than kept
  // in it (a packet mostly of other things, or one the state could not take).
  std::size_t bytes_copied = 0;
};

// Gives the whole encoded packet size for a delta body of `delta_len` bytes,
// so packing can respect the budget of the enclosing packet exactly.
using PacketSizeForDelta = std::function<std::size_t(std::size_t delta_len)>;

class ClusterState {
 public:
  // The known nodes in id order, as (id, state) pairs.
  class Nodes {
   public:
    class iterator {
     public:
      explicit iterator(NodeState* const* at) : at_(at) {}
      std::pair<NodeId, const NodeState&> operator*() const { return {(*at_)->id(), **at_}; }
      iterator& operator++() {
        ++at_;
        return *this;
      }
      bool operator==(const iterator&) const = default;

     private:
      NodeState* const* at_;
    };
    explicit Nodes(const std::vector<NodeState*>& order) : order_(&order) {}
    iterator begin() const { return iterator(order_->data()); }
    iterator end() const { return iterator(order_->data() + order_->size()); }
    std::size_t size() const { return order_->size(); }
    // Throws std::out_of_range when the node is unknown.
    const NodeState& at(const NodeId& id) const;

   private:
    const std::vector<NodeState*>* order_;
  };

  // `seed` keys the hashing of keys and node ids: with a secret one, no
  // peer can pick keys that collide.
  explicit ClusterState(NodeId self, std::uint64_t seed = 0);
  ~ClusterState();
  // A copy has storage of its own.
  ClusterState(const ClusterState& other);
  ClusterState& operator=(const ClusterState& other);
  ClusterState(ClusterState&& other) noexcept;
  ClusterState& operator=(ClusterState&& other) noexcept;

  const NodeId& self_id() const { return self_id_; }
  NodeState& self() { return *self_; }
  const NodeState& self() const { return *self_; }
  Nodes nodes() const { return Nodes(order_); }
  std::size_t size() const { return order_.size(); }
  // The known nodes by position in id order (the order of nodes()).
  const NodeState& at(std::size_t position) const { return *order_[position]; }
  NodeState& at(std::size_t position) { return *order_[position]; }
  // How many known nodes have a tls_name (ids never change, so this is kept
  // as they come and go): lets a caller skip a walk that would find none.
  std::size_t tls_named() const { return tls_named_; }
  // One more than the largest NodeState::slot() in use.
  std::size_t slots() const { return slots_; }
  // Bytes of stored key-values: held (in blocks and taken-over packets,
  // garbage included) and in use. Garbage collection keeps the first within
  // about twice the second. Node ids are in the id table (ids()).
  std::size_t bytes_held() const;
  std::size_t bytes_in_use() const;
  // The table holding the encoded ids of the known nodes (core internal:
  // src/storage.h), and moving them to another one: the ClusterStates of
  // nodes sharing a workspace share one, which each keeps alive. A copy of
  // the state gets a table of its own.
  const std::shared_ptr<IdTable>& ids() const;
  void share_ids(const std::shared_ptr<IdTable>& table);
  // Likewise the table of frozen keys blocks (src/storage.h), made on first
  // call: replicas of one content share one block while more than one
  // ClusterState uses the table. A copy of the state has none.
  const std::shared_ptr<KeysTable>& keys_table();
  void share_keys(const std::shared_ptr<KeysTable>& table);

  const NodeState* find(const NodeId& id) const;
  NodeState* find(const NodeId& id);
  // The node's state, created empty when unknown and below `max_nodes`;
  // nullptr at the limit. `created` tells whether it was new.
  NodeState* find_or_create(const NodeId& id, std::size_t max_nodes, bool* created = nullptr);
  void remove(const NodeId& id);

  // One entry per node not scheduled for deletion, self first, then in id
  // order; when they do not all fit in `max_size` bytes of DigestPb body, the
  // others are taken in an order shuffled by `rng` until the budget is full.
  Digest digest(std::size_t max_size, Rng& rng) const;

  // What `peer` lacks according to its digest, packed in scuttle-depth
  // priority (unknown nodes first, then the most versions behind, ties
  // shuffled by `rng`) while packet_size(delta body) <= max_payload_size.
  Delta delta_for(const Digest& peer, const PacketSizeForDelta& packet_size,
                  std::size_t max_payload_size, Rng& rng) const;

  // Applies a delta by the rules of PROTOCOL.md section 5, passing every key
  // change to `on_change` as (node, change).
  //
  // Completeness: a replica becomes complete only up to what the delta
  // proves. With key-values, that is the last one's version, whatever
  // max_version claims beyond it: Python aiocluster 1.1.0 sends the node's
  // full max_version on deltas it cut short, and a GC-explained claim cannot
  // be told apart from a cut one (honest senders only claim more than they
  // carry when the top versions were garbage-collected, and then send the
  // bare max_version in the next exchange, which costs one exchange). Without
  // key-values, max_version is believed where garbage collection explains the
  // empty range (max_version <= last_gc_version), else nothing is adopted.
  //
  // Resets (PROTOCOL.md section 8): a wiped replica reports its keys against
  // what the application last heard. A re-sent key changes only when its
  // entry did; keys not re-sent by the time the replica is complete up to
  // the highest max_version announced for the node (by the deltas since the
  // reset, and by digests: NodeState::max_version_announced) are reported
  // gone, as a deletion (status kDeleted, empty value) at the replica's
  // last_gc_version. A DELETED tombstone that disappears is silent, as in
  // garbage collection. A reset re-sent over several deltas thus reports no
  // key beyond the first cut as gone and back.
  ApplyReport apply(const Delta& delta, Instant now, const ApplyLimits& limits,
                    const std::function<void(const NodeId&, KeyChange)>& on_change);

  // GC of tombstones older than `grace` in every node state.
  std::size_t gc_tombstones(Instant now, Duration grace);

 private:
  // The packet paths: a Node reads and writes gossip straight from and into
  // the state, through PacketPaths (src/packing.h), a core internal.
  friend struct PacketPaths;
  // Names the node of every digest entry and node delta of a canonical
  // packet (their `state`, nullptr when unknown). False when an unknown id
  // is not canonical: the packet must go through the generated parser.
  bool resolve(wire::PacketView& packet) const;
  // The state of a node a resolved packet names, created when unknown and
  // below max_nodes (nullptr otherwise). Nodes created so are out of id
  // order until place_new_nodes(): the caller places them once done.
  NodeState* find_or_create(const wire::PacketView& packet, wire::IdRef& id, std::size_t max_nodes,
                            bool* created = nullptr);
  void place_new_nodes();
  // Moves the node states within the blocks they hold so that their
  // addresses follow id order, once an eighth of the nodes came since the
  // last time: every walk of the members in id order (digests, deltas,
  // liveness) then reads memory in order, which the hardware prefetches.
  // Invalidates every NodeState pointer and reference held outside.
  void lay_out();
  void plan_digest(std::size_t max_size, Rng& rng, DigestPlan& plan) const;
  void write_digest(wire::Writer& w, const DigestPlan& plan) const;
  // Against the resolved digest of `peer`, within `max_delta_size` bytes of
  // DeltaPb body.
  void plan_delta(std::span<const wire::DigestEntryView> peer, std::size_t max_delta_size, Rng& rng,
                  DeltaPlan& plan) const;
  void write_delta(wire::Writer& w, const DeltaPlan& plan) const;
  // Adds to a resolved packet's digest an entry for each node its delta
  // brought that the digest did not name (a compact digest cannot name a
  // node its reader did not know), at the max_version the node delta
  // announces: its sender holds at least that much, so a delta planned
  // against the digest next (an Ack) does not send it back. `seen` is
  // scratch.
  void credit_delivered(wire::PacketView& packet, std::vector<char>& seen) const;
  // Applies the node deltas of a resolved packet (naming the nodes it
  // creates). With `adopt`, the state may take over the packet's bytes
  // (which `packet` views) instead of copying the key-values it keeps.
  ApplyReport apply(wire::PacketView& packet, Bytes* adopt, Instant now, const ApplyLimits& limits,
                    const OnKeyChange& on_change);
  // Moves stored key-values together once garbage outweighs them.
  void collect_garbage();

  NodeDeltaOutcome apply_node_delta(wire::PacketView& packet, std::size_t index, Chunk* chunk,
                                    Instant now, const ApplyLimits& limits,
                                    const OnKeyChange& on_change, ApplyReport& report);

  // The entries of a reset replica that the application knows and the
  // re-sent state has not covered yet (disjoint from the replica's keys).
  struct ResetShadow {
    std::map<std::string, VersionedValue, std::less<>> entries;
    std::uint64_t settles_at = 0;  // the highest max_version deltas announced since the reset
  };
  void begin_reset(NodeState& st, std::uint64_t settles_at, std::uint64_t last_gc_version,
                   const ApplyLimits& limits, const OnKeyChange& on_change);
  void settle_reset(NodeState& st, const OnKeyChange& on_change);

  template <typename... Args>
  NodeState* make_node(Args&&... args);
  void drop_node(NodeState* st);
  // A new node, in the id table, at the end of the order (unplaced).
  NodeState* add(NodeId id);
  NodeState* enter(NodeState* st);
  // The node of an id resolve() found unknown and no lookup since found
  // either; null beyond `max_nodes`.
  NodeState* create(wire::IdRef& id, std::size_t max_nodes);
  // The id table: known nodes by the hash of their encoded id.
  std::size_t hash(ByteView id) const;
  NodeState* find_encoded(ByteView id, std::size_t hash) const;
  void index_id(NodeState* st);
  void unindex_id(const NodeState* st);
  void grow_id_table(std::size_t nodes);
  // Gives every node its position, after nodes came or went.
  void renumber() const;

  std::unique_ptr<Storage> storage_;
  NodeState* self_ = nullptr;
  std::vector<NodeState*> order_;  // id order, but for the last unplaced_
  std::size_t unplaced_ = 0;
  std::vector<NodeState*> id_table_;  // open addressing on NodeState::id_hash()
  std::size_t tls_named_ = 0;
  std::uint32_t slots_ = 0;
  std::uint64_t added_ = 0;        // nodes ever added: resolved ids stay valid until it moves
  std::uint64_t laid_out_at_ = 0;  // added_ at the last lay_out()
  // Moves whenever a node is added or removed, or the state is assigned:
  // tables of the members (the compact digest's hashes) stay valid until then.
  std::uint64_t membership_ = 0;
  // The sum of every member's unsalted id hash, kept as nodes come and go:
  // the compact digest's fingerprint is made of it.
  std::uint64_t id_sum_ = 0;
  std::vector<std::uint32_t> free_slots_;  // of removed nodes
  mutable bool positions_stale_ = false;
  std::map<std::uint32_t, ResetShadow> resets_;  // by slot; usually empty
  NodeId self_id_;                               // self_'s, decoded once
};

}  // namespace aiocluster
