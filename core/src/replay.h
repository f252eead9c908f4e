// Replay protection for sealed packets (proto/README.md section 4.3): a
// timestamp window, then per sender a sliding bitmap of counters, with memory
// bounded per sender and in total (an internal header of the core).
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace aiocluster {

class ReplayGuard {
 public:
  // Counters this far below a sender's highest are still told apart.
  static constexpr std::uint32_t kBitmapBits = 128;

  enum class Verdict : std::uint8_t { kFresh, kStale, kReplayed };

  // Refuses packets stamped before `floor_ms` (this node's start: nothing
  // sent earlier can be meant for this incarnation) or further than
  // `window_ms` from the receiver's clock.
  ReplayGuard(std::int64_t floor_ms, std::int64_t window_ms, std::size_t max_senders);

  // Judges an authenticated packet and, when fresh, remembers it.
  Verdict admit(std::uint64_t sender, std::uint32_t counter, std::int64_t timestamp_ms,
                std::int64_t now_ms);
  // Forgets senders heard last outside the window: the window alone now
  // refuses everything they sent.
  void expire(std::int64_t now_ms);

  std::size_t senders() const { return senders_.size(); }
  std::int64_t floor_ms() const { return floor_ms_; }

 private:
  struct Window {
    std::uint32_t highest = 0;
    std::uint64_t seen[2] = {0, 0};  // bit i: highest - i was accepted
    std::int64_t last_ms = 0;        // latest timestamp accepted
  };
  bool test_and_set(Window& w, std::uint32_t counter);
  void evict_one();

  std::int64_t floor_ms_;
  std::int64_t window_ms_;
  std::size_t max_senders_;
  std::unordered_map<std::uint64_t, Window> senders_;
};

}  // namespace aiocluster
