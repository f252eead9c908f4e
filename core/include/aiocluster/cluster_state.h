// Scuttlebutt reconciliation over the node states one node knows
// (PROTOCOL.md section 5): digests, deltas packed into an exact byte budget,
// and the reject / reset rules of applying a delta.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "aiocluster/messages.h"
#include "aiocluster/node_state.h"
#include "aiocluster/random.h"
#include "aiocluster/types.h"

namespace aiocluster {

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
};

// Gives the whole encoded packet size for a delta body of `delta_len` bytes,
// so packing can respect the budget of the enclosing packet exactly.
using PacketSizeForDelta = std::function<std::size_t(std::size_t delta_len)>;

class ClusterState {
 public:
  using Nodes = std::map<NodeId, NodeState, std::less<>>;

  explicit ClusterState(NodeId self);
  // A copy points self() into its own map.
  ClusterState(const ClusterState& other);
  ClusterState& operator=(const ClusterState& other);
  ClusterState(ClusterState&&) = default;
  ClusterState& operator=(ClusterState&&) = default;

  const NodeId& self_id() const { return self_id_; }
  NodeState& self() { return *self_; }
  const NodeState& self() const { return *self_; }
  const Nodes& nodes() const { return nodes_; }
  std::size_t size() const { return nodes_.size(); }
  // The known nodes by position in id order (the order of nodes()). A
  // contiguous index: walking it costs far fewer cache misses than walking
  // the map, which dominates with a thousand nodes.
  const NodeState& at(std::size_t position) const { return *order_[position]; }
  NodeState& at(std::size_t position) { return *order_[position]; }
  // How many known nodes have a tls_name (ids never change, so this is kept
  // as they come and go): lets a caller skip a walk that would find none.
  std::size_t tls_named() const { return tls_named_; }

  const NodeState* find(const NodeId& id) const;
  NodeState* find(const NodeId& id);
  // The node's state, created empty when unknown and below `max_nodes`;
  // nullptr at the limit. `created` tells whether it was new.
  NodeState* find_or_create(const NodeId& id, std::size_t max_nodes, bool* created = nullptr);
  // The same, continuing from `hint`, the position of the previous lookup
  // (start from 0); on return, the node's position. O(1) when ids come in
  // increasing order, as in digests, instead of O(log n) comparisons of
  // whole NodeIds.
  const NodeState* find(const NodeId& id, std::size_t& hint) const;
  NodeState* find_or_create(const NodeId& id, std::size_t max_nodes, bool* created,
                            std::size_t& hint);
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
  using OnChange = std::function<void(const NodeId&, KeyChange)>;

  // The entries of a reset replica that the application knows and the
  // re-sent state has not covered yet (disjoint from the replica's keys).
  struct ResetShadow {
    std::map<std::string, VersionedValue, std::less<>> entries;
    std::uint64_t settles_at = 0;  // the highest max_version deltas announced since the reset
  };

  NodeDeltaOutcome apply_node_delta(const NodeDelta& delta, Instant now, const ApplyLimits& limits,
                                    const OnChange& on_change, ApplyReport& report);
  void begin_reset(NodeState& st, const NodeDelta& delta, const ApplyLimits& limits,
                   const OnChange& on_change);
  void settle_reset(NodeState& st, const OnChange& on_change);

  // The first position whose id is not before `id`, trying the two
  // positions after `hint` before a binary search.
  std::size_t seek(const NodeId& id, std::size_t hint) const;
  NodeState* create_at(std::size_t position, const NodeId& id);

  NodeId self_id_;
  Nodes nodes_;
  NodeState* self_;
  std::vector<NodeState*> order_;  // nodes_ in id order, by position
  // Encoded NodeIdPb size of each, by position: ids never change, and every
  // digest needs them.
  std::vector<std::uint32_t> id_sizes_;
  std::size_t tls_named_ = 0;
  std::map<NodeId, ResetShadow, std::less<>> resets_;  // usually empty
};

}  // namespace aiocluster
