#include "aiocluster/cluster_state.h"

#include <algorithm>

#include "aiocluster/codec.h"

namespace aiocluster {

ClusterState::ClusterState(NodeId self) : self_id_(std::move(self)) {
  self_ = &nodes_.emplace(self_id_, NodeState(self_id_)).first->second;
  order_.push_back(self_);
  id_sizes_.push_back(static_cast<std::uint32_t>(wire_size::node_id(self_id_)));
  tls_named_ = self_id_.tls_name.empty() ? 0 : 1;
}

ClusterState::ClusterState(const ClusterState& other)
    : self_id_(other.self_id_), nodes_(other.nodes_), self_(&nodes_.find(self_id_)->second) {
  order_.reserve(nodes_.size());
  id_sizes_ = other.id_sizes_;
  tls_named_ = other.tls_named_;
  resets_ = other.resets_;
  for (auto& [id, st] : nodes_) order_.push_back(&st);
}

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
  std::size_t hint = order_.size();
  return find_or_create(id, max_nodes, created, hint);
}

std::size_t ClusterState::seek(const NodeId& id, std::size_t hint) const {
  // In a digest in id order the next entry is the next node we know: one
  // equality test, which fails fast on the name, instead of two orderings.
  if (hint + 1 < order_.size() && order_[hint + 1]->id() == id) {
    // With a thousand nodes the states are rarely in cache: ask for the ones
    // a sequential walk reaches next, so their loads overlap.
    constexpr std::size_t kAhead = 4;
    if (hint + 1 + kAhead < order_.size()) {
      const auto* next = reinterpret_cast<const char*>(order_[hint + 1 + kAhead]);
      __builtin_prefetch(next);
      __builtin_prefetch(next + 64);
      __builtin_prefetch(next + 128);
    }
    return hint + 1;
  }
  if (hint < order_.size() && order_[hint]->id() < id) {
    for (int step = 0; step < 2; ++step) {
      ++hint;
      if (hint == order_.size() || !(order_[hint]->id() < id)) return hint;
    }
  }
  const auto it =
      std::lower_bound(order_.begin(), order_.end(), id,
                       [](const NodeState* st, const NodeId& key) { return st->id() < key; });
  return static_cast<std::size_t>(it - order_.begin());
}

NodeState* ClusterState::create_at(std::size_t position, const NodeId& id) {
  NodeState* st = &nodes_.emplace(id, NodeState(id)).first->second;
  order_.insert(order_.begin() + static_cast<std::ptrdiff_t>(position), st);
  if (!id.tls_name.empty()) ++tls_named_;
  id_sizes_.insert(id_sizes_.begin() + static_cast<std::ptrdiff_t>(position),
                   static_cast<std::uint32_t>(wire_size::node_id(id)));
  return st;
}

const NodeState* ClusterState::find(const NodeId& id, std::size_t& hint) const {
  hint = seek(id, hint);
  return hint < order_.size() && order_[hint]->id() == id ? order_[hint] : nullptr;
}

NodeState* ClusterState::find_or_create(const NodeId& id, std::size_t max_nodes, bool* created,
                                        std::size_t& hint) {
  if (created != nullptr) *created = false;
  hint = seek(id, hint);
  if (hint < order_.size() && order_[hint]->id() == id) return order_[hint];
  if (nodes_.size() >= max_nodes) return nullptr;
  if (created != nullptr) *created = true;
  return create_at(hint, id);
}

void ClusterState::remove(const NodeId& id) {
  if (id == self_id_) return;
  const std::size_t position = seek(id, order_.size());
  if (position == order_.size() || id < order_[position]->id()) return;
  order_.erase(order_.begin() + static_cast<std::ptrdiff_t>(position));
  id_sizes_.erase(id_sizes_.begin() + static_cast<std::ptrdiff_t>(position));
  if (!id.tls_name.empty()) --tls_named_;
  resets_.erase(id);
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
  // The encoded size of each entry, from the state and its cached id size,
  // without building the entry (which copies its NodeId).
  auto uint_field = [](std::uint64_t v) { return v == 0 ? 0 : 1 + wire_size::varint(v); };
  std::vector<const NodeState*> others;
  others.reserve(nodes_.size());
  std::vector<std::size_t> sizes;
  sizes.reserve(nodes_.size());
  std::size_t total = used;
  for (std::size_t position = 0; position < order_.size(); ++position) {
    const NodeState* st = order_[position];
    if (st == self_ || st->scheduled_for_deletion()) continue;
    others.push_back(st);
    sizes.push_back(wire_size::length_delimited(
        wire_size::length_delimited(id_sizes_[position]) + uint_field(st->heartbeat()) +
        uint_field(st->last_gc_version()) + uint_field(st->max_version())));
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
  // The peer's entry of each node we know, by our position of the node.
  std::vector<const NodeDigest*> seen_by_peer(order_.size(), nullptr);
  std::size_t hint = 0;
  for (const auto& nd : peer.node_digests) {
    if (find(nd.node_id, hint) != nullptr) seen_by_peer[hint] = &nd;
  }

  struct Candidate {
    const NodeState* state;
    std::uint64_t from;
    std::uint64_t staleness;
    bool unknown;
  };
  std::vector<Candidate> candidates;
  for (std::size_t position = 0; position < order_.size(); ++position) {
    const NodeState& st = *order_[position];
    if (st.scheduled_for_deletion()) continue;
    std::uint64_t dgc = 0;
    std::uint64_t dmax = 0;
    const NodeDigest* seen = seen_by_peer[position];
    if (seen != nullptr) {
      dgc = seen->last_gc_version;
      dmax = seen->max_version;
    }
    if (st.max_version() <= dmax) continue;
    const bool reset = dgc < st.last_gc_version() && dmax < st.last_gc_version();
    const std::uint64_t from = reset ? 0 : dmax;
    candidates.push_back({&st, from, st.max_version() - from, seen == nullptr});
  }
  rng.shuffle(std::span(candidates));
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) {
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
      const std::size_t kv =
          length_delimited(wire_size::key_value(key, vv.value, vv.version, vv.status));
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
      if (packet_size(delta_len + length_delimited(header + kvs_len + max_field)) >
          max_payload_size) {
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
    switch (apply_node_delta(nd, now, limits, on_change, report)) {
      case NodeDeltaOutcome::kApplied:
        ++report.applied;
        break;
      case NodeDeltaOutcome::kReset:
        ++report.applied;
        ++report.resets;
        break;
      case NodeDeltaOutcome::kIgnored:
        break;
      case NodeDeltaOutcome::kRejectedGap:
        ++report.rejected_gap;
        break;
      case NodeDeltaOutcome::kRejectedReset:
        ++report.rejected_reset;
        break;
      case NodeDeltaOutcome::kRejectedStale:
        ++report.rejected_stale;
        break;
      case NodeDeltaOutcome::kRejectedMalformed:
        ++report.rejected_malformed;
        break;
      case NodeDeltaOutcome::kRejectedLimit:
        ++report.rejected_limit;
        break;
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
    if (kv.key.size() > limits.max_key_size || kv.value.size() > limits.max_value_size)
      return false;
    previous = kv.version;
  }
  return !nd.max_version || *nd.max_version >= previous;
}

// The version up to which a (well-formed) node delta proves its receiver
// complete; see ClusterState::apply.
std::uint64_t proven_complete_to(const NodeDelta& nd) {
  if (!nd.key_values.empty()) return nd.key_values.back().version;
  const std::uint64_t claimed = nd.max_version.value_or(nd.from_version_excluded);
  return claimed <= nd.last_gc_version ? claimed : nd.from_version_excluded;
}

// Whether `nd` would fill in versions of (local_max, local_gc], which only
// happens while a reset is being re-sent, from a sender whose view predates
// the collection at local_gc.
bool stale_for_reset(const NodeDelta& nd, std::uint64_t local_max, std::uint64_t local_gc) {
  if (local_gc <= local_max || nd.last_gc_version >= local_gc) return false;
  return std::any_of(nd.key_values.begin(), nd.key_values.end(), [&](const KeyValueUpdate& kv) {
    return kv.version > local_max && kv.version <= local_gc;
  });
}

// What max_version the sender announced: where the reset settles.
std::uint64_t announced_max(const NodeDelta& nd) {
  return nd.max_version.value_or(nd.key_values.empty() ? nd.from_version_excluded
                                                       : nd.key_values.back().version);
}

// The change as the application sees it while a reset is in progress: its
// old value is the one the application last heard of. False when the key
// came back unchanged (no event).
bool against_shadow(std::map<std::string, VersionedValue, std::less<>>& shadow, KeyChange& change) {
  const auto it = shadow.find(change.key);
  if (it == shadow.end()) return true;
  change.old_value = std::move(it->second);
  shadow.erase(it);
  return *change.old_value != change.new_value;
}

}  // namespace

NodeDeltaOutcome ClusterState::apply_node_delta(const NodeDelta& nd, Instant now,
                                                const ApplyLimits& limits,
                                                const OnChange& on_change, ApplyReport& report) {
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
  if (!reset && stale_for_reset(nd, local_max, local_gc)) return NodeDeltaOutcome::kRejectedStale;
  if (st == nullptr) {
    if (wire_size::node_id(nd.node_id) > limits.max_node_id_size) {
      return NodeDeltaOutcome::kRejectedLimit;
    }
    st = find_or_create(nd.node_id, limits.max_nodes);
    if (st == nullptr) return NodeDeltaOutcome::kRejectedLimit;
  }

  std::uint64_t applied_up_to = local_max;
  if (reset) {
    begin_reset(*st, nd, limits, on_change);
    applied_up_to = 0;
  }
  ResetShadow* shadow = nullptr;
  if (!resets_.empty()) {
    const auto it = resets_.find(nd.node_id);
    if (it != resets_.end()) {
      shadow = &it->second;
      shadow->settles_at = std::max(shadow->settles_at, announced_max(nd));
    }
  }
  const std::uint64_t before = applied_up_to;
  bool truncated = false;
  // Room for the new entries, never for more than the limit admits.
  st->reserve(std::min(nd.key_values.size(),
                       limits.max_keys_per_node - std::min(st->size(), limits.max_keys_per_node)));
  for (const auto& kv : nd.key_values) {
    if (kv.version <= before) continue;
    if (kv.status != KeyStatus::kSet && kv.version <= nd.last_gc_version) continue;
    if (st->size() >= limits.max_keys_per_node && st->find(kv.key) == nullptr) {
      truncated = true;
      break;
    }
    KeyChange change = st->apply(kv.key, VersionedValue{kv.value, kv.version, kv.status}, now);
    applied_up_to = kv.version;
    ++report.key_values;
    if (shadow == nullptr || against_shadow(shadow->entries, change)) {
      on_change(st->id(), std::move(change));
    }
  }
  if (truncated) {
    st->raise_max_version(applied_up_to);
    return NodeDeltaOutcome::kRejectedLimit;
  }
  const std::uint64_t complete_to = proven_complete_to(nd);
  if (complete_to < announced_max(nd)) ++report.completeness_capped;
  st->raise_max_version(complete_to);
  if (shadow != nullptr &&
      st->max_version() >= std::max(shadow->settles_at, st->max_version_announced())) {
    settle_reset(*st, on_change);
  }
  return reset ? NodeDeltaOutcome::kReset : NodeDeltaOutcome::kApplied;
}

// Wipes a replica for a reset, keeping what the application knows of it in
// the shadow until the re-sent state covers it.
void ClusterState::begin_reset(NodeState& st, const NodeDelta& nd, const ApplyLimits& limits,
                               const OnChange& on_change) {
  ResetShadow& shadow = resets_[st.id()];
  st.for_each_since(0, [&](std::string_view key, const VersionedValue& vv) {
    shadow.entries.insert_or_assign(std::string(key), vv);
    return true;
  });
  shadow.settles_at = announced_max(nd);
  st.wipe(nd.last_gc_version);
  // Resets that never complete (a peer announcing more than it ever sends)
  // could pile up keys: settle early rather than hold more than a replica may.
  if (shadow.entries.size() > limits.max_keys_per_node) settle_reset(st, on_change);
}

// The reset is over: whatever the re-sent state did not bring back is gone.
void ClusterState::settle_reset(NodeState& st, const OnChange& on_change) {
  const auto it = resets_.find(st.id());
  if (it == resets_.end()) return;
  for (auto& [key, old_value] : it->second.entries) {
    if (old_value.status == KeyStatus::kDeleted) continue;
    on_change(st.id(), KeyChange{key, std::move(old_value),
                                 VersionedValue{"", st.last_gc_version(), KeyStatus::kDeleted}});
  }
  resets_.erase(it);
}

std::size_t ClusterState::gc_tombstones(Instant now, Duration grace) {
  std::size_t removed = 0;
  for (NodeState* st : order_) removed += st->gc_tombstones(now - grace);
  return removed;
}

}  // namespace aiocluster
