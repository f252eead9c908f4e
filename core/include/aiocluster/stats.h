// Counters a Node keeps about its traffic and about what it refused. Every
// dropped input increments exactly one drop counter.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace aiocluster {

// Why a packet was dropped: one reason for each drop counter of Stats.
enum class DropReason : std::uint8_t {
  kOversized,       // larger than max_inbound_payload_size
  kMalformed,       // not a PacketPb, or fields out of range
  kUnknownMessage,  // no known message in the oneof
  kWrongCluster,    // another cluster id (a Syn is answered with BadCluster)
  kOutOfPlace,      // a message its channel does not expect
  kTlsName,         // a Syn naming no node of the peer's certificate
  kTlsNameless,     // a Syn over a verified certificate naming nothing
  kRateLimited,     // a datagram Syn beyond its source's rate
  // Sealed gossip (proto/README.md section 4), with a keyring only.
  kUnsealed,        // plaintext, while SealMode::kRequired
  kSealMalformed,   // sealed, but too short or of an unknown version
  kSealUnknownKey,  // sealed under a key id none of ours has
  kSealForged,      // the tag does not verify: another key or cluster, a changed byte
  kSealStale,       // stamped outside the replay window, or before what we remember
  kSealReplayed,    // a counter of its sender we accepted already
  // Compression (proto/README.md section 5), with the extension on only.
  kDecompressOversized,  // its frame declares more than max_inbound_payload_size
  kDecompressMalformed,  // not exactly one zstd frame that decodes to its declared size
  // New reasons go above: kDropReasonCount counts up to this last one.
};

// How many reasons there are: DropReason{0} .. DropReason{kDropReasonCount - 1}.
inline constexpr std::size_t kDropReasonCount =
    static_cast<std::size_t>(DropReason::kDecompressMalformed) + 1;

// "oversized", "malformed", ...: the counter's name without "dropped_".
std::string_view to_string(DropReason reason);

// The refusals of sealed gossip (proto/README.md 4.2), in the order checked.
inline constexpr std::array<DropReason, 6> kSealDropReasons = {
    DropReason::kUnsealed,   DropReason::kSealMalformed, DropReason::kSealUnknownKey,
    DropReason::kSealForged, DropReason::kSealStale,     DropReason::kSealReplayed};

// The refusals of compressed packets (proto/README.md 5).
inline constexpr std::array<DropReason, 2> kCompressionDropReasons = {
    DropReason::kDecompressOversized, DropReason::kDecompressMalformed};

struct MessageCounts {
  std::uint64_t syn = 0;
  std::uint64_t synack = 0;
  std::uint64_t ack = 0;
  std::uint64_t bad_cluster = 0;
};

struct Stats {
  MessageCounts packets_in;
  MessageCounts packets_out;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  // Packets accepted although larger than max_payload_size (within
  // max_inbound_payload_size): Python aiocluster 1.1.0 budgets only the
  // delta of a SynAck, so its SynAcks in large clusters come out larger.
  std::uint64_t packets_in_above_max_payload = 0;

  // Packets dropped, by reason.
  std::uint64_t dropped_oversized = 0;         // larger than max_inbound_payload_size
  std::uint64_t dropped_malformed = 0;         // not a PacketPb, or fields out of range
  std::uint64_t dropped_unknown_message = 0;   // no known message in the oneof
  std::uint64_t dropped_wrong_cluster = 0;     // another cluster id (a Syn is answered)
  std::uint64_t dropped_out_of_place = 0;      // a message its channel does not expect
  std::uint64_t dropped_tls_name = 0;          // a Syn naming no node of the peer's certificate
  std::uint64_t dropped_tls_nameless = 0;      // a Syn over a verified certificate naming nothing
  std::uint64_t dropped_rate_limited = 0;      // a datagram Syn beyond its source's rate
  std::uint64_t dropped_unsealed = 0;          // plaintext, while sealing is required
  std::uint64_t dropped_seal_malformed = 0;    // sealed, but too short or of another version
  std::uint64_t dropped_seal_unknown_key = 0;  // sealed under a key we do not hold
  std::uint64_t dropped_seal_forged = 0;       // sealed, and the tag does not verify
  std::uint64_t dropped_seal_stale = 0;        // stamped outside the replay window
  std::uint64_t dropped_seal_replayed = 0;     // accepted once already
  std::uint64_t dropped_decompress_oversized = 0;  // its frame declares too many bytes
  std::uint64_t dropped_decompress_malformed = 0;  // not one zstd frame of its declared size

  // The counter of one reason.
  std::uint64_t dropped(DropReason reason) const;
  std::uint64_t& dropped(DropReason reason);

  // Every packet dropped, whatever the reason.
  std::uint64_t packets_dropped() const {
    return dropped_oversized + dropped_malformed + dropped_unknown_message + dropped_wrong_cluster +
           dropped_out_of_place + dropped_tls_name + dropped_tls_nameless + dropped_rate_limited +
           seal_refusals() + dropped_decompress_oversized + dropped_decompress_malformed;
  }
  // Packets dropped by the checks of sealed gossip, whatever the reason.
  std::uint64_t seal_refusals() const {
    return dropped_unsealed + dropped_seal_malformed + dropped_seal_unknown_key +
           dropped_seal_forged + dropped_seal_stale + dropped_seal_replayed;
  }

  // Node deltas inside accepted packets.
  std::uint64_t node_deltas_applied = 0;
  std::uint64_t resets_applied = 0;
  std::uint64_t rejected_gap = 0;
  std::uint64_t rejected_reset = 0;
  std::uint64_t rejected_stale = 0;  // see NodeDeltaOutcome::kRejectedStale
  std::uint64_t rejected_malformed = 0;
  std::uint64_t rejected_limit = 0;
  std::uint64_t key_values_applied = 0;
  // Bytes of those copied out of their packet rather than kept where they
  // arrived (see Node::handle_packet(Bytes&&)).
  std::uint64_t key_value_bytes_copied = 0;
  // Node deltas that claimed a max_version beyond what they carried (see
  // ClusterState::apply): the replica asks for the rest in its next exchange.
  std::uint64_t completeness_capped = 0;

  std::uint64_t rounds = 0;
  // Gaps between two inputs longer than the local pause threshold: this node
  // itself did not run, and the silence it slept through counted against
  // no one.
  std::uint64_t local_pauses = 0;
  // Liveness checks (one per node per round) that found a node live only
  // because that silence was not counted.
  std::uint64_t convictions_deferred = 0;
  std::uint64_t nodes_refused = 0;  // digest entries beyond max_nodes or max_node_id_size
  std::uint64_t nodes_removed = 0;  // dead nodes garbage-collected
  // Nodes scheduled for deletion that showed a fresh heartbeat in a digest
  // and were taken off the schedule.
  std::uint64_t nodes_revived = 0;
  std::uint64_t tombstones_removed = 0;
  std::uint64_t digests_truncated = 0;  // digests that did not fit one packet
  // Our extensions (proto/README.md).
  std::uint64_t compact_digests_out = 0;
  std::uint64_t partial_digests_out = 0;  // compact digests covering part of the members
  std::uint64_t compact_digests_in = 0;
  // Malformed compact digests: their packets were dropped (dropped_malformed).
  std::uint64_t compact_digests_rejected = 0;
  // Compact entries naming no member we know, or more than one.
  std::uint64_t compact_entries_unresolved = 0;
  // Aligned compact digests (by position, no hashes) sent and read, and
  // those read whose fingerprint or count was not ours: read as covering
  // nothing (also counted in aligned_digests_in).
  std::uint64_t aligned_digests_out = 0;
  std::uint64_t aligned_digests_in = 0;
  std::uint64_t aligned_digests_mismatched = 0;
  // PacketPb.extensions that were not a canonical ExtensionsPb: ignored.
  std::uint64_t announcements_malformed = 0;
  // Sealed gossip: packets sealed and sent, and sealed packets accepted.
  std::uint64_t packets_sealed = 0;
  std::uint64_t packets_opened = 0;
  // Compression: packets sent compressed, and compressed packets decoded.
  std::uint64_t packets_compressed = 0;
  std::uint64_t packets_decompressed = 0;
  // Datagram exchanges forgotten early to stay within limits.max_pending_exchanges.
  std::uint64_t exchanges_evicted = 0;
};

}  // namespace aiocluster
