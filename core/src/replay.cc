#include "replay.h"

#include <algorithm>

namespace aiocluster {

ReplayGuard::ReplayGuard(std::int64_t floor_ms, std::int64_t window_ms, std::size_t max_senders)
    : floor_ms_(floor_ms),
      window_ms_(window_ms),
      max_senders_(std::max<std::size_t>(max_senders, 1)) {}

ReplayGuard::Verdict ReplayGuard::admit(std::uint64_t sender, std::uint32_t counter,
                                        std::int64_t timestamp_ms, std::int64_t now_ms) {
  if (timestamp_ms < now_ms - window_ms_ || timestamp_ms > now_ms + window_ms_) {
    return Verdict::kStale;
  }
  auto it = senders_.find(sender);
  if (it == senders_.end()) {
    // A sender we hold nothing of: new, or forgotten. Everything a forgotten
    // one sent is at or below the floor.
    if (timestamp_ms <= floor_ms_) return Verdict::kStale;
    if (senders_.size() >= max_senders_) evict_one();
    it = senders_.emplace(sender, Window{counter, {1, 0}, timestamp_ms}).first;
    return Verdict::kFresh;
  }
  if (!test_and_set(it->second, counter)) return Verdict::kReplayed;
  it->second.last_ms = std::max(it->second.last_ms, timestamp_ms);
  return Verdict::kFresh;
}

bool ReplayGuard::test_and_set(Window& w, std::uint32_t counter) {
  if (counter > w.highest) {
    const std::uint32_t shift = counter - w.highest;
    if (shift >= kBitmapBits) {
      w.seen[0] = w.seen[1] = 0;
    } else if (shift >= 64) {
      w.seen[1] = w.seen[0] << (shift - 64);
      w.seen[0] = 0;
    } else {
      w.seen[1] = (w.seen[1] << shift) | (w.seen[0] >> (64 - shift));
      w.seen[0] <<= shift;
    }
    w.seen[0] |= 1;
    w.highest = counter;
    return true;
  }
  const std::uint32_t age = w.highest - counter;
  // Too far behind to tell: refused, as a replay may be.
  if (age >= kBitmapBits) return false;
  std::uint64_t& word = w.seen[age / 64];
  const std::uint64_t bit = std::uint64_t{1} << (age % 64);
  if ((word & bit) != 0) return false;
  word |= bit;
  return true;
}

// The sender heard least recently goes; the floor rises to what it sent
// last, so none of its packets gets in again.
void ReplayGuard::evict_one() {
  auto oldest = std::min_element(
      senders_.begin(), senders_.end(),
      [](const auto& a, const auto& b) { return a.second.last_ms < b.second.last_ms; });
  floor_ms_ = std::max(floor_ms_, oldest->second.last_ms);
  senders_.erase(oldest);
}

void ReplayGuard::expire(std::int64_t now_ms) {
  std::erase_if(senders_,
                [&](const auto& entry) { return entry.second.last_ms < now_ms - window_ms_; });
}

}  // namespace aiocluster
