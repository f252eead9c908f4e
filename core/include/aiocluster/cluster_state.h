// Scuttlebutt reconciliation over the node states one node knows
// (PROTOCOL.md section 5): digests, deltas packed into an exact byte budget,
// and the reject / reset rules of applying a delta.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "aiocluster/messages.h"
#include "aiocluster/node_state.h"
#include "aiocluster/random.h"
#include "aiocluster/types.h"

namespace aiocluster {

// How applying one NodeDelta went.
enum class NodeDeltaOutcome : std::uint8_t {
  kApplied,
  kReset,              // applied after wiping the replica
  kIgnored,            // about ourselves, a node scheduled for deletion, or nothing new
  kRejectedGap,        // from_version_excluded beyond what we hold
  kRejectedReset,      // a reset is needed but the delta does not start at 0
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
  std::size_t resets = 0;
  std::size_t rejected_gap = 0;
  std::size_t rejected_reset = 0;
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

  // Applies a delta by the rules of PROTOCOL.md section 5; every key that
  // changes is appended to `changes` as (node, change).
  ApplyReport apply(const Delta& delta, Instant now, const ApplyLimits& limits,
                    const std::function<void(const NodeId&, KeyChange)>& on_change);

  // GC of tombstones older than `grace` in every node state.
  std::size_t gc_tombstones(Instant now, Duration grace);

 private:
  NodeDeltaOutcome apply_node_delta(const NodeDelta& delta, Instant now, const ApplyLimits& limits,
                                    const std::function<void(const NodeId&, KeyChange)>& on_change,
                                    std::size_t* key_values);

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
};

}  // namespace aiocluster
