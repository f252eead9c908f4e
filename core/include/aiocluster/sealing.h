// Sealed gossip (proto/README.md section 4): the keys a node seals and opens
// packets with, and how strictly it asks for them. Plain values; the crypto
// (AES-256-GCM) lives in the core's sources.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "aiocluster/types.h"

namespace aiocluster {

// An AES-256 key, shared by every node that may gossip with this one.
using SealKey = std::array<std::uint8_t, 32>;

// The installed keys: the first is the primary, which seals; every key opens.
// Rotation: install the new key everywhere, make it primary everywhere, then
// remove the old one.
class Keyring {
 public:
  Keyring() = default;
  // The first key is the primary; repeats are ignored.
  explicit Keyring(std::vector<SealKey> keys);

  // Adds a key that opens packets (a no-op when installed already).
  void install(const SealKey& key);
  // Installs `key` if needed and makes it the one that seals.
  void make_primary(const SealKey& key);
  // Removes a key; false when it is not installed. The primary cannot be
  // removed while it is the primary (throws std::invalid_argument): make
  // another key primary first.
  bool remove(const SealKey& key);

  bool empty() const { return keys_.empty(); }
  const SealKey* primary() const { return keys_.empty() ? nullptr : &keys_.front(); }
  // Primary first.
  const std::vector<SealKey>& keys() const { return keys_; }
  bool contains(const SealKey& key) const;

 private:
  std::vector<SealKey> keys_;
};

// The id a sealed packet names its key by (proto/README.md 4.1): the first
// four bytes of SHA-256("aiocluster seal key id" || key). Shows which keys a
// node holds without revealing them.
std::uint32_t seal_key_id(const SealKey& key);

// What a node with a keyring sends and accepts. The rollout of a keyring on
// a running cluster goes through them in order: every node kOpenOnly, then
// every node kPermissive, then every node kRequired.
enum class SealMode : std::uint8_t {
  // Sends plaintext; opens sealed packets and accepts plaintext ones.
  kOpenOnly,
  // Seals what it sends (a plaintext packet is answered in plaintext);
  // accepts plaintext too.
  kPermissive,
  // Seals everything; refuses plaintext (Stats::dropped_unsealed).
  kRequired,
};

struct SealingConfig {
  // Empty: no sealing at all; the node speaks the base protocol unchanged.
  Keyring keyring;
  SealMode mode = SealMode::kRequired;
  // A sealed packet whose timestamp is further than this from our clock is
  // refused (Stats::dropped_seal_stale): replays older than this never get
  // in, so node clocks must agree within it.
  Duration replay_window = std::chrono::seconds(60);
  // Senders whose replay state is kept (about 48 bytes each); past it the
  // least recently heard is forgotten and its old packets refused.
  std::size_t max_replay_senders = 10'000;
  // The wall-clock time (since the Unix epoch) at the Instant the Node is
  // built; drivers set it from the system clock. Unset: Instant's own
  // time_since_epoch, which is enough when every node shares one clock (the
  // simulator, tests).
  std::optional<std::chrono::nanoseconds> wall_clock_at_start;
};

}  // namespace aiocluster
