// A node's side of sealed gossip (proto/README.md section 4): its keyring and
// mode, the nonces it seals with, and the replay state of what it opened (an
// internal header of the core).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "aiocluster/sealing.h"
#include "aiocluster/stats.h"
#include "aiocluster/types.h"
#include "envelope.h"
#include "replay.h"

namespace aiocluster {

class Sealer {
 public:
  // `sender` names this node's packets (the first half of every nonce): drawn
  // from the node's seeded generator, mixed with its identity.
  Sealer(const SealingConfig& config, Instant start, std::uint64_t sender);

  // What receive() made of a packet.
  struct Opened {
    std::optional<DropReason> refused;
    bool sealed = false;  // it came sealed: the reply is sealed too
    Bytes plaintext;      // when it came sealed
  };
  Opened open(ByteView packet, std::string_view cluster_id, Instant now);
  // Seals under the primary key, with the next nonce.
  Bytes seal(ByteView plaintext, std::string_view cluster_id, Instant now);

  // Whether what this node starts (its Syns) goes out sealed.
  bool seals() const { return mode_ != SealMode::kOpenOnly; }
  SealMode mode() const { return mode_; }
  void set_mode(SealMode mode) { mode_ = mode; }
  const Keyring& keyring() const { return keyring_; }
  void set_keyring(const Keyring& keyring);
  void expire(Instant now) { replay_.expire(wall_ms(now)); }
  std::size_t replay_senders() const { return replay_.senders(); }
  // Seals as `sender` from its first counter on (a fork of the node).
  void take_sender(std::uint64_t sender) {
    sender_ = sender;
    counter_ = 0;
  }

 private:
  std::int64_t wall_ms(Instant now) const;
  void index_keys();

  Keyring keyring_;
  std::vector<std::uint32_t> key_ids_;     // of keyring_.keys(), in order
  std::vector<envelope::Cipher> ciphers_;  // likewise
  SealMode mode_;
  Instant start_;
  std::chrono::nanoseconds wall_at_start_;
  std::uint64_t sender_;
  std::uint32_t counter_ = 0;
  ReplayGuard replay_;
};

}  // namespace aiocluster
