#include "aiocluster/cluster_state.h"

#include <algorithm>
#include <unordered_map>

#include "aiocluster/codec.h"

namespace aiocluster {

ClusterState::ClusterState(NodeId self) : self_id_(std::move(self)) {
  self_ = &nodes_.emplace(self_id_, NodeState(self_id_)).first->second;
}

ClusterState::ClusterState(const ClusterState& other)
    : self_id_(other.self_id_), nodes_(other.nodes_), self_(&nodes_.find(self_id_)->second) {}

ClusterState& ClusterState::operator=(const ClusterState& other) {
  if (this != &other) *this = ClusterState(other);
  return *this;
}

const NodeState* ClusterState::find(const NodeId& id) const {
  const auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

NodeState* ClusterState::find(const NodeId& id) {
  const auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

NodeState* ClusterState::find_or_create(const NodeId& id, std::size_t max_nodes, bool* created) {
  if (created != nullptr) *created = false;
  auto it = nodes_.lower_bound(id);
  if (it != nodes_.end() && it->first == id) return &it->second;
  if (nodes_.size() >= max_nodes) return nullptr;
  if (created != nullptr) *created = true;
  return &nodes_.emplace_hint(it, id, NodeState(id))->second;
}

void ClusterState::remove(const NodeId& id) {
  if (id == self_id_) return;
  nodes_.erase(id);
}

Digest ClusterState::digest(std::size_t max_size, Rng& rng) const {
  auto entry = [](const NodeState& st) {
    return NodeDigest{st.id(), st.heartbeat(), st.last_gc_version(), st.max_version()};
  };
  Digest digest;
  digest.node_digests.reserve(nodes_.size());
  digest.node_digests.push_back(entry(*self_));
  std::size_t used = wire_size::length_delimited(wire_size::node_digest(digest.node_digests[0]));
  std::vector<const NodeState*> others;
  others.reserve(nodes_.size());
  for (const auto& [id, st] : nodes_) {
    if (&st != self_ && !st.scheduled_for_deletion()) others.push_back(&st);
  }
  std::vector<std::size_t> sizes;
  sizes.reserve(others.size());
  std::size_t total = used;
  for (const NodeState* st : others) {
    sizes.push_back(wire_size::length_delimited(wire_size::node_digest(entry(*st))));
    total += sizes.back();
  }
  if (total <= max_size) {
    for (const NodeState* st : others) digest.node_digests.push_back(entry(*st));
    return digest;
  }
  // Too many nodes for one packet: a different random subset each time, so
  // every node is announced sooner or later.
  std::vector<std::size_t> order(others.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  rng.shuffle(std::span(order));
  for (std::size_t i : order) {
    if (used + sizes[i] > max_size) continue;
    used += sizes[i];
    digest.node_digests.push_back(entry(*others[i]));
  }
  return digest;
}

Delta ClusterState::delta_for(const Digest& peer, const PacketSizeForDelta& packet_size,
                              std::size_t max_payload_size, Rng& rng) const {
  std::unordered_map<const NodeState*, const NodeDigest*> peer_view;
  peer_view.reserve(peer.node_digests.size());
  for (const auto& nd : peer.node_digests) {
    if (const NodeState* st = find(nd.node_id)) peer_view.emplace(st, &nd);
  }

  struct Candidate {
    const NodeState* state;
    std::uint64_t from;
    std::uint64_t staleness;
    bool unknown;
  };
  std::vector<Candidate> candidates;
  for (const auto& [id, st] : nodes_) {
    if (st.scheduled_for_deletion()) continue;
    std::uint64_t dgc = 0;
    std::uint64_t dmax = 0;
    const auto seen = peer_view.find(&st);
    if (seen != peer_view.end()) {
      dgc = seen->second->last_gc_version;
      dmax = seen->second->max_version;
    }
    if (st.max_version() <= dmax) continue;
    const bool reset = dgc < st.last_gc_version() && dmax < st.last_gc_version();
    const std::uint64_t from = reset ? 0 : dmax;
    candidates.push_back({&st, from, st.max_version() - from, seen == peer_view.end()});
  }
  rng.shuffle(std::span(candidates));
  std::stable_sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.unknown != b.unknown) return a.unknown;
    return a.staleness > b.staleness;
  });

  using wire_size::length_delimited;
  using wire_size::varint;
  Delta delta;
  std::size_t delta_len = 0;
  for (const Candidate& c : candidates) {
    const NodeState& st = *c.state;
    NodeDelta nd;
    nd.node_id = st.id();
    nd.from_version_excluded = c.from;
    nd.last_gc_version = st.last_gc_version();
    const std::size_t header = length_delimited(wire_size::node_id(st.id())) +
                               (c.from == 0 ? 0 : 1 + varint(c.from)) +
                               (nd.last_gc_version == 0 ? 0 : 1 + varint(nd.last_gc_version));
    // Sized with the largest max_version it may carry, so a partial node
    // delta, whose max_version is smaller, can only be smaller still.
    const std::size_t max_field = 1 + varint(st.max_version());
    std::size_t kvs_len = 0;
    bool complete = true;
    st.for_each_since(c.from, [&](std::string_view key, const VersionedValue& vv) {
      const std::size_t kv = length_delimited(wire_size::key_value(key, vv.value, vv.version, vv.status));
      const std::size_t nd_len = header + kvs_len + kv + max_field;
      if (packet_size(delta_len + length_delimited(nd_len)) > max_payload_size) {
        complete = false;
        return false;
      }
      nd.key_values.push_back(KeyValueUpdate{std::string(key), vv.value, vv.version, vv.status});
      kvs_len += kv;
      return true;
    });
    if (complete) {
      nd.max_version = st.max_version();
      if (packet_size(delta_len + length_delimited(header + kvs_len + max_field)) > max_payload_size) {
        break;  // only possible with no key-values: the bare header does not fit
      }
    } else if (nd.key_values.empty()) {
      continue;  // its first key-value does not fit: a smaller node still may
    } else {
      nd.max_version = nd.key_values.back().version;
    }
    delta_len += length_delimited(header + kvs_len + 1 + varint(*nd.max_version));
    delta.node_deltas.push_back(std::move(nd));
    if (!complete) break;
  }
  return delta;
}

ApplyReport ClusterState::apply(const Delta& delta, Instant now, const ApplyLimits& limits,
                                const std::function<void(const NodeId&, KeyChange)>& on_change) {
  ApplyReport report;
  for (const auto& nd : delta.node_deltas) {
    switch (apply_node_delta(nd, now, limits, on_change, &report.key_values)) {
      case NodeDeltaOutcome::kApplied: ++report.applied; break;
      case NodeDeltaOutcome::kReset: ++report.applied; ++report.resets; break;
      case NodeDeltaOutcome::kIgnored: break;
      case NodeDeltaOutcome::kRejectedGap: ++report.rejected_gap; break;
      case NodeDeltaOutcome::kRejectedReset: ++report.rejected_reset; break;
      case NodeDeltaOutcome::kRejectedMalformed: ++report.rejected_malformed; break;
      case NodeDeltaOutcome::kRejectedLimit: ++report.rejected_limit; break;
    }
  }
  return report;
}

namespace {

// A node delta is well formed when its versions increase strictly, start past
// from_version_excluded and stay within max_version, and no key or value
// exceeds the limits.
bool well_formed(const NodeDelta& nd, const ApplyLimits& limits) {
  std::uint64_t previous = nd.from_version_excluded;
  for (const auto& kv : nd.key_values) {
    if (kv.version <= previous) return false;
    if (kv.key.size() > limits.max_key_size || kv.value.size() > limits.max_value_size) return false;
    previous = kv.version;
  }
  return !nd.max_version || *nd.max_version >= previous;
}

}  // namespace

NodeDeltaOutcome ClusterState::apply_node_delta(
    const NodeDelta& nd, Instant now, const ApplyLimits& limits,
    const std::function<void(const NodeId&, KeyChange)>& on_change, std::size_t* key_values) {
  if (nd.node_id == self_id_) return NodeDeltaOutcome::kIgnored;
  if (!well_formed(nd, limits)) return NodeDeltaOutcome::kRejectedMalformed;
  if (nd.key_values.size() > limits.max_keys_per_node) return NodeDeltaOutcome::kRejectedLimit;

  NodeState* st = find(nd.node_id);
  if (st != nullptr && st->scheduled_for_deletion()) return NodeDeltaOutcome::kIgnored;
  const std::uint64_t local_max = st ? st->max_version() : 0;
  const std::uint64_t local_gc = st ? st->last_gc_version() : 0;
  if (nd.from_version_excluded > local_max) return NodeDeltaOutcome::kRejectedGap;
  const bool reset = nd.last_gc_version > local_gc && nd.last_gc_version > local_max;
  if (reset && nd.from_version_excluded != 0) return NodeDeltaOutcome::kRejectedReset;
  if (st == nullptr) {
    st = find_or_create(nd.node_id, limits.max_nodes);
    if (st == nullptr) return NodeDeltaOutcome::kRejectedLimit;
  }

  std::uint64_t applied_up_to = local_max;
  if (reset) {
    st->wipe(nd.last_gc_version);
    applied_up_to = 0;
  }
  const std::uint64_t before = applied_up_to;
  bool truncated = false;
  for (const auto& kv : nd.key_values) {
    if (kv.version <= before) continue;
    if (kv.status != KeyStatus::kSet && kv.version <= nd.last_gc_version) continue;
    if (st->size() >= limits.max_keys_per_node && st->find(kv.key) == nullptr) {
      truncated = true;
      break;
    }
    on_change(st->id(), st->apply(kv.key, VersionedValue{kv.value, kv.version, kv.status}, now));
    applied_up_to = kv.version;
    ++*key_values;
  }
  if (truncated) {
    st->raise_max_version(applied_up_to);
    return NodeDeltaOutcome::kRejectedLimit;
  }
  const std::uint64_t complete_to =
      nd.max_version.value_or(nd.key_values.empty() ? nd.from_version_excluded
                                                    : nd.key_values.back().version);
  st->raise_max_version(complete_to);
  return reset ? NodeDeltaOutcome::kReset : NodeDeltaOutcome::kApplied;
}

std::size_t ClusterState::gc_tombstones(Instant now, Duration grace) {
  std::size_t removed = 0;
  for (auto& [id, st] : nodes_) removed += st.gc_tombstones(now - grace);
  return removed;
}

}  // namespace aiocluster
