#include "sealer.h"

#include <chrono>

#include "envelope.h"

namespace aiocluster {

namespace {
std::chrono::nanoseconds wall_at(const SealingConfig& config, Instant start) {
  return config.wall_clock_at_start.value_or(start.time_since_epoch());
}
std::int64_t to_ms(std::chrono::nanoseconds t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t).count();
}
}  // namespace

Sealer::Sealer(const SealingConfig& config, Instant start, std::uint64_t sender)
    : keyring_(config.keyring),
      mode_(config.mode),
      start_(start),
      wall_at_start_(wall_at(config, start)),
      sender_(sender),
      // Nothing stamped before this node started was sent to it.
      replay_(to_ms(wall_at_start_) - 1, to_ms(config.replay_window), config.max_replay_senders) {
  index_keys();
}

std::int64_t Sealer::wall_ms(Instant now) const { return to_ms(wall_at_start_ + (now - start_)); }

void Sealer::set_keyring(const Keyring& keyring) {
  keyring_ = keyring;
  index_keys();
}

void Sealer::index_keys() {
  key_ids_.clear();
  ciphers_.clear();
  for (const SealKey& key : keyring_.keys()) {
    key_ids_.push_back(envelope::key_id(key));
    ciphers_.emplace_back(key);
  }
}

Bytes Sealer::seal(ByteView plaintext, std::string_view cluster_id, Instant now) {
  // A nonce is never used twice under a key: past 2^32 packets this node
  // takes a new sender id (a mix of the old one, so still its own).
  if (counter_ == UINT32_MAX) {
    sender_ = sender_ * 0x9e3779b97f4a7c15ULL + 1;
    counter_ = 0;
  }
  const envelope::Header header{key_ids_.front(), sender_, ++counter_, wall_ms(now)};
  return ciphers_.front().seal(header, cluster_id, plaintext);
}

Sealer::Opened Sealer::open(ByteView packet, std::string_view cluster_id, Instant now) {
  Opened out;
  if (!envelope::looks_sealed(packet)) {
    if (mode_ == SealMode::kRequired) out.refused = DropReason::kUnsealed;
    return out;
  }
  out.sealed = true;
  const std::optional<envelope::Header> header = envelope::read_header(packet);
  if (!header) {
    out.refused = DropReason::kSealMalformed;
    return out;
  }
  bool known_key = false;
  bool authentic = false;
  for (std::size_t i = 0; i < key_ids_.size(); ++i) {
    if (key_ids_[i] != header->key_id) continue;
    known_key = true;
    if (auto plaintext = ciphers_[i].open(packet, cluster_id)) {
      out.plaintext = std::move(*plaintext);
      authentic = true;
      break;
    }
  }
  if (!known_key) {
    out.refused = DropReason::kSealUnknownKey;
  } else if (!authentic) {
    out.refused = DropReason::kSealForged;
  } else {
    switch (replay_.admit(header->sender, header->counter, header->timestamp_ms, wall_ms(now))) {
      case ReplayGuard::Verdict::kFresh:
        break;
      case ReplayGuard::Verdict::kStale:
        out.refused = DropReason::kSealStale;
        break;
      case ReplayGuard::Verdict::kReplayed:
        out.refused = DropReason::kSealReplayed;
        break;
    }
  }
  return out;
}

}  // namespace aiocluster
