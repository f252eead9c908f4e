#include "aiocluster/stats.h"

namespace aiocluster {

std::string_view to_string(DropReason reason) {
  switch (reason) {
    case DropReason::kOversized:
      return "oversized";
    case DropReason::kMalformed:
      return "malformed";
    case DropReason::kUnknownMessage:
      return "unknown_message";
    case DropReason::kWrongCluster:
      return "wrong_cluster";
    case DropReason::kOutOfPlace:
      return "out_of_place";
    case DropReason::kTlsName:
      return "tls_name";
    case DropReason::kTlsNameless:
      return "tls_nameless";
    case DropReason::kRateLimited:
      return "rate_limited";
    case DropReason::kUnsealed:
      return "unsealed";
    case DropReason::kSealMalformed:
      return "seal_malformed";
    case DropReason::kSealUnknownKey:
      return "seal_unknown_key";
    case DropReason::kSealForged:
      return "seal_forged";
    case DropReason::kSealStale:
      return "seal_stale";
    case DropReason::kSealReplayed:
      return "seal_replayed";
    case DropReason::kDecompressOversized:
      return "decompress_oversized";
    case DropReason::kDecompressMalformed:
      return "decompress_malformed";
  }
  return "unknown";
}

namespace {

// The member of `stats` (const or not) that counts `reason`.
template <typename S>
auto& counter(S& stats, DropReason reason) {
  switch (reason) {
    case DropReason::kOversized:
      return stats.dropped_oversized;
    case DropReason::kMalformed:
      return stats.dropped_malformed;
    case DropReason::kUnknownMessage:
      return stats.dropped_unknown_message;
    case DropReason::kWrongCluster:
      return stats.dropped_wrong_cluster;
    case DropReason::kOutOfPlace:
      return stats.dropped_out_of_place;
    case DropReason::kTlsName:
      return stats.dropped_tls_name;
    case DropReason::kTlsNameless:
      return stats.dropped_tls_nameless;
    case DropReason::kUnsealed:
      return stats.dropped_unsealed;
    case DropReason::kSealMalformed:
      return stats.dropped_seal_malformed;
    case DropReason::kSealUnknownKey:
      return stats.dropped_seal_unknown_key;
    case DropReason::kSealForged:
      return stats.dropped_seal_forged;
    case DropReason::kSealStale:
      return stats.dropped_seal_stale;
    case DropReason::kSealReplayed:
      return stats.dropped_seal_replayed;
    case DropReason::kDecompressOversized:
      return stats.dropped_decompress_oversized;
    case DropReason::kDecompressMalformed:
      return stats.dropped_decompress_malformed;
    case DropReason::kRateLimited:
      break;
  }
  return stats.dropped_rate_limited;
}

}  // namespace

std::uint64_t Stats::dropped(DropReason reason) const { return counter(*this, reason); }
std::uint64_t& Stats::dropped(DropReason reason) { return counter(*this, reason); }

}  // namespace aiocluster
