// A running 64-bit hash that summarizes a simulation: every delivery, drop,
// fault and event is mixed in, so two runs are identical exactly when their
// hashes are (with overwhelming probability). Fast enough to hash every byte
// of every packet of a 1,000-node run.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace aiocluster::sim {

class TraceHash {
 public:
  void add(std::uint64_t value);
  void add(std::string_view text);
  // Mixes in of(bytes): a packet's digest can be taken apart from the
  // trace (on another thread) and added in its place.
  void add(std::span<const std::uint8_t> bytes) { add(of(bytes)); }
  std::uint64_t value() const;

  // A 64-bit digest of `bytes`, the same whatever the trace holds.
  static std::uint64_t of(std::span<const std::uint8_t> bytes);
  static std::uint64_t of(std::string_view text);

 private:
  std::uint64_t state_ = 0x243f6a8885a308d3ULL;  // any fixed non-zero start
};

}  // namespace aiocluster::sim
