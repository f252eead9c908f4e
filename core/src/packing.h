// What a gossip packet carries from the state, chosen before a byte is
// written (an internal header of the core): the nodes of a digest and the
// node deltas of a delta, with their exact encoded sizes, so every length
// prefix is known when the writer reaches it and the bytes are written once,
// straight from the state. A Node keeps its plans and reuses their vectors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "aiocluster/cluster_state.h"
#include "aiocluster/types.h"
#include "hash.h"
#include "storage.h"  // NodeState::encoded_id
#include "wire.h"

namespace aiocluster {

struct DigestPlan {
  std::vector<const NodeState*> nodes;  // in the order they are written
  std::vector<std::size_t> sizes;       // of each one's NodeDigestPb body
  std::size_t size = 0;                 // of the DigestPb body

  // Scratch, for digests that do not fit.
  std::vector<std::size_t> order;
  std::vector<const NodeState*> spare_nodes;
  std::vector<std::size_t> spare_sizes;
};

struct DeltaPlan {
  struct Part {
    const NodeState* state = nullptr;
    std::uint64_t from = 0;         // from_version_excluded
    std::uint64_t max_version = 0;  // what the receiver is complete to
    std::uint32_t first_slot = 0;   // log slots [first_slot, end_slot), holes skipped
    std::uint32_t end_slot = 0;
    std::size_t size = 0;  // of the NodeDeltaPb body
  };
  std::vector<Part> parts;
  std::size_t size = 0;  // of the DeltaPb body

  // Scratch: the peer's digest entry of each node, by position.
  struct Candidate {
    const NodeState* state;
    std::uint64_t from;
    std::uint64_t staleness;
    bool unknown;
    std::size_t rank;  // after the shuffle: ties keep this order
  };
  std::vector<const wire::DigestEntryView*> seen;
  std::vector<Candidate> candidates;
};

// A member's term in ClusterState::id_sum_: its id's unsalted hash, the
// same on every node (the compact digest's fingerprint, proto/README.md).
inline std::uint64_t id_sum_term(ByteView encoded_id) {
  return hash_bytes(
      std::string_view(reinterpret_cast<const char*>(encoded_id.data()), encoded_id.size()), 0);
}

// The packet paths of a ClusterState, private to it: the Node (and the
// core's benchmarks) read and write gossip through them, straight from and
// into the state. ClusterState documents each.
struct PacketPaths {
  // A node's canonical NodeIdPb body (the compact digest hashes it).
  static ByteView encoded_id(const NodeState& st) { return st.encoded_id(); }
  // Where the id table keeps the entry of a replica's id, to prefetch.
  static const void* id_entry(const NodeState& st) { return st.storage_->ids->entry(st.id_); }
  // Where a replica's keys block is (nullptr: it has no keys), to prefetch.
  static const void* keys_block(const NodeState& st) { return st.keys_; }
  // The bytes of the first key-value a node delta of `st` from `from`
  // carries (nullptr: none), to prefetch.
  static const void* first_delta_bytes(const NodeState& st, std::uint64_t from) {
    const auto log = st.log();
    const std::size_t first = st.first_after(from);
    return first < log.size() && log[first].chunk != nullptr ? log[first].stored : nullptr;
  }
  // Of every member's id_sum_term() (ClusterState::id_sum_).
  static std::uint64_t id_sum(const ClusterState& state) { return state.id_sum_; }
  // Moves whenever the set of nodes does (ClusterState::membership_).
  static std::uint64_t membership(const ClusterState& state) { return state.membership_; }
  // Nodes added since the last place_new_nodes() (ClusterState::unplaced_).
  static std::size_t unplaced(const ClusterState& state) { return state.unplaced_; }
  static bool resolve(const ClusterState& state, wire::PacketView& packet) {
    return state.resolve(packet);
  }
  static NodeState* find_or_create(ClusterState& state, const wire::PacketView& packet,
                                   wire::IdRef& id, std::size_t max_nodes, bool* created) {
    return state.find_or_create(packet, id, max_nodes, created);
  }
  static void place_new_nodes(ClusterState& state) { state.place_new_nodes(); }
  static void lay_out(ClusterState& state) { state.lay_out(); }
  static void plan_digest(const ClusterState& state, std::size_t max_size, Rng& rng,
                          DigestPlan& plan) {
    state.plan_digest(max_size, rng, plan);
  }
  static void write_digest(const ClusterState& state, wire::Writer& w, const DigestPlan& plan) {
    state.write_digest(w, plan);
  }
  static void plan_delta(const ClusterState& state, std::span<const wire::DigestEntryView> peer,
                         std::size_t max_delta_size, Rng& rng, DeltaPlan& plan) {
    state.plan_delta(peer, max_delta_size, rng, plan);
  }
  static void write_delta(const ClusterState& state, wire::Writer& w, const DeltaPlan& plan) {
    state.write_delta(w, plan);
  }
  static void credit_delivered(const ClusterState& state, wire::PacketView& packet,
                               std::vector<char>& seen) {
    state.credit_delivered(packet, seen);
  }
  static ApplyReport apply(ClusterState& state, wire::PacketView& packet, Bytes* adopt, Instant now,
                           const ApplyLimits& limits, const OnKeyChange& on_change) {
    return state.apply(packet, adopt, now, limits, on_change);
  }
};

// --- The packets of an exchange, written from plans. ---

// The largest body whose length-delimited field fits in `room` bytes.
std::size_t largest_body(std::size_t room);
// The DigestPb budget of a Syn, and of a SynAck: three quarters of the
// packet, so some delta always fits beside it.
std::size_t syn_digest_budget(std::string_view cluster_id, std::size_t max_payload_size);
std::size_t synack_digest_budget(std::string_view cluster_id, std::size_t max_payload_size);
// The largest DeltaPb body a SynAck carrying a digest of `digest_size`
// bytes, or an Ack, can hold within `max_payload_size`.
std::size_t synack_delta_budget(std::string_view cluster_id, std::size_t max_payload_size,
                                std::size_t digest_size);
std::size_t ack_delta_budget(std::string_view cluster_id, std::size_t max_payload_size);

// `size` bytes, not yet written, with capacity for `room` more.
inline Bytes with_room(std::size_t size, std::size_t room) {
  Bytes out;
  out.reserve(size + room);
  out.resize(size);
  return out;
}

// The packets; `room` bytes of capacity are left past a Syn or SynAck, so
// that what is appended to it (our extensions announcement) needs no copy.
Bytes write_syn(std::string_view cluster_id, const ClusterState& state, const DigestPlan& digest,
                std::size_t room = 0);
Bytes write_synack(std::string_view cluster_id, const ClusterState& state, const DigestPlan& digest,
                   const DeltaPlan& delta, std::size_t room = 0);
Bytes write_ack(std::string_view cluster_id, const ClusterState& state, const DeltaPlan& delta);

}  // namespace aiocluster
