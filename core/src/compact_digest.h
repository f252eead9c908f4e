// Our negotiated extensions on the wire (an internal header of the core;
// the spec is proto/README.md): the announcement every packet of an
// extension-speaking node carries, and the compact digest, a digest by keyed
// 32-bit hashes of the members' ids that two such nodes exchange instead of
// full NodeDigestPb entries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "aiocluster/cluster_state.h"
#include "aiocluster/types.h"
#include "packing.h"
#include "wire.h"

namespace aiocluster::compact {

// Bits of ExtensionsPb.features.
inline constexpr std::uint64_t kCompactDigest = 1;
// The aligned compact digest and the membership fingerprint (section 2.3);
// announced only with kCompactDigest.
inline constexpr std::uint64_t kAligned = 4;

// --- The announcement (PacketPb.extensions) ---

struct Announcement {
  std::uint64_t features = 0;
  Address advertise;  // the sender's gossip_advertise_addr
  std::uint64_t generation_id = 0;
};

// Bytes the PacketPb.extensions field of `a` adds to a packet, tag included.
std::size_t announcement_size(const Announcement& a);
// Appends the field to a written packet (field 16 comes after the others).
void append_announcement(Bytes& packet, const Announcement& a);
// False when the body is not a canonical ExtensionsPb.
bool read_announcement(ByteView body, Announcement& out);

// --- The compact digest (SynPb / SynAckPb.compact_digest) ---

// The membership fingerprint (proto/README.md section 2.3): of the members a
// digest lists (ourselves included), independent of their order and unsalted,
// so that two nodes holding the same members find the same value.
std::uint64_t fingerprint(const ClusterState& state);

// Our fingerprint, in constant time: the sum over every member the state
// keeps (ClusterState::id_sum_), less that of the members scheduled for
// deletion. Those are found by a walk, only once `deletions` moved (a count
// the node moves whenever it schedules a node for deletion or takes one off
// the schedule), or the membership did while some were scheduled (one may
// have been removed): a cluster's first rounds move the membership with
// nearly every packet, and a walk per packet was 15 % of them at 10,000
// nodes.
struct FingerprintCache {
  std::uint64_t membership = ~std::uint64_t{0};
  std::uint64_t deletions = ~std::uint64_t{0};
  std::size_t scheduled = 0;        // members scheduled for deletion at the last walk
  std::uint64_t scheduled_sum = 0;  // of their terms
};
std::uint64_t fingerprint(const ClusterState& state, std::uint64_t deletions,
                          FingerprintCache& cache);

// The keyed hash a compact digest names a member by: of its NodeIdPb bytes.
std::uint32_t member_hash(ByteView encoded_id, std::uint64_t salt);

// Our members (all of them, ourselves included) in order of their hash
// under one salt: what a compact digest is planned from and read against.
// Hashing and sorting every member is most of the cost of a digest, so a
// node keeps a table while the salt and its membership stay the same: its
// own salt lasts several Syns, and a SynAck reuses the salt of the Syn it
// answers (proto/README.md), so a node hashes its members about once per
// exchange instead of once per digest written or read.
struct MemberHashes {
  // A member by its position in the state's id order (ClusterState::at):
  // 8 bytes where a pointer would make 16, and a node keeps a table for as
  // long as its salt lasts. Positions hold while the membership does and
  // no member awaits its place.
  struct Entry {
    std::uint32_t hash;
    std::uint32_t position;
  };
  using Table = std::vector<Entry>;
  std::uint64_t salt = 0;        // 0: never built
  std::uint64_t membership = 0;  // of the ClusterState it was built from
  std::size_t unplaced = 0;      // its members not yet in id order then
  Table by_hash;                 // its capacity within an eighth of the members
};

// The two tables a node reads and writes compact digests by: under its own
// salt (its Syns, and reading the SynAcks that answer them), kept between
// calls, and under the last other salt it read (a Syn's, which its SynAck
// then reuses in the same call), which nodes on one thread may share.
struct HashCache {
  MemberHashes& own;
  MemberHashes& other;
};

// `table`, rebuilt first unless it holds `state`'s members under `salt`.
const MemberHashes& hashed(ClusterState& state, std::uint64_t salt, MemberHashes& table);
// The table of `cache` for `salt`: the own one when it has that salt.
const MemberHashes& hashed(ClusterState& state, std::uint64_t salt, HashCache cache);

// What a compact digest carries, chosen before a byte is written. The
// members whose hash another member shares, and this node itself, travel in
// full in the base digest (`full`); the others as compact entries.
struct Plan {
  std::uint64_t salt = 0;
  // What the writer knows each member speaks, by NodeState::slot(): an
  // entry's heartbeat carries bit 0 of it (proto/README.md).
  std::span<const std::uint8_t> speaks;
  std::vector<std::pair<std::uint32_t, const NodeState*>> members;  // by hash
  std::size_t first = 0;  // the entries written: members[first..first+count), wrapping
  std::size_t count = 0;
  bool partial = false;
  std::uint32_t cover_start = 0;
  std::uint32_t cover_end = 0;
  // The packed entries, written by plan() (entries_size bytes of them).
  Bytes entries;
  std::size_t entries_size = 0;
  std::size_t size = 0;  // of the CompactDigestPb body
  DigestPlan full;
  // For a peer that speaks the aligned digest: our fingerprint, and whether
  // the entries are aligned (by position in id order, no hashes).
  bool fingerprinted = false;
  std::uint64_t fingerprint = 0;
  bool aligned = false;
};

// Plans the digest of `state` under the salt of `hashes` (nonzero; its table
// of `state`, from hashed()) within `budget` bytes
// for both digest fields' bodies; when it does not fit, a partial digest
// whose covered range starts at the member `rotation` (modulo the count).
// `in_full` are members to list in full as well, within a quarter of the
// budget: those the peer lacks and no delta would bring it (no key-values
// yet), since a node id travels only in full entries and node deltas.
// `out.fingerprinted` and `out.fingerprint` are the caller's: set them first
// for a peer that speaks the aligned digest.
void plan(const ClusterState& state, const MemberHashes& hashes,
          std::span<const std::uint8_t> speaks, std::span<const NodeState* const> in_full,
          std::size_t budget, std::size_t rotation, Plan& out);

// Plans an aligned digest of `state` (whose fingerprint is `fingerprint`)
// under the salt `salt` within `budget` bytes. False when it does not fit:
// plan a hashed one instead.
bool plan_aligned(const ClusterState& state, std::uint64_t salt, std::uint64_t fingerprint,
                  std::span<const std::uint8_t> speaks, std::size_t budget, Plan& out);
// False when not even one compact entry fits the budget: send the base digest.
bool usable(const Plan& plan);

// Bytes of the SynPb / SynAckPb fields the plan fills: the base digest
// field and the compact one.
std::size_t digest_fields_size(const Plan& plan);
// Writes the base digest field (2) or the compact one (16).
void write_full(wire::Writer& w, const ClusterState& state, const Plan& plan);
void write_compact(wire::Writer& w, const Plan& plan);

// The packets, with `room` bytes of capacity left past them for what is
// appended (our extensions announcement).
Bytes write_syn(std::string_view cluster_id, const ClusterState& state, const Plan& plan,
                std::size_t room = 0);
Bytes write_synack(std::string_view cluster_id, const ClusterState& state, const Plan& plan,
                   const DeltaPlan& delta, std::size_t room = 0);
// The DeltaPb budget of a compact SynAck within `max_payload_size`.
std::size_t synack_delta_budget(std::string_view cluster_id, std::size_t max_payload_size,
                                const Plan& plan);

// What reading a compact digest found, for Stats.
struct ReadReport {
  std::size_t resolved = 0;    // entries naming a member we know
  std::size_t unresolved = 0;  // hashes we know no member by, or more than one
  bool fingerprinted = false;  // the digest carried its sender's fingerprint
  std::uint64_t fingerprint = 0;
  bool aligned = false;     // an aligned digest
  bool mismatched = false;  // aligned, but not on our membership: read as covering nothing
};

// Reusable buffers of read().
struct ReadScratch {
  std::uint64_t salt = 0;  // of the last digest read
  std::vector<const NodeState*> listed_in_full;
  // The members whose entries said they speak the compact digest, and the
  // aligned one.
  std::vector<const NodeState*> speakers;
  std::vector<const NodeState*> aligned_speakers;
};

// Reads the compact digest `body` of a resolved packet into its digest
// entries, as if the sender had sent them in full: every entry whose hash
// names exactly one member we know, and for a partial digest, every member
// we know outside its covered range as if the sender held what we hold (so
// it is neither sent nor taken for unknown). False when the body is
// malformed (no salt, broken varints, more than `max_entries` entries,
// hashes out of order or out of range): the packet is dropped. The members
// are looked up in the table of `hashes` for the digest's salt.
//
// `ours` is our fingerprint when we speak the aligned digest (nullptr: a
// fingerprint or aligned entries make the digest malformed, as they would
// for a node that predates them). An aligned digest whose fingerprint or
// count is not ours is read as a partial digest covering nothing.
bool read(ClusterState& state, ByteView body, std::size_t max_entries, wire::PacketView& packet,
          HashCache hashes, const std::uint64_t* ours, ReadScratch& scratch, ReadReport& report);

}  // namespace aiocluster::compact
