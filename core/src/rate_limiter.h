// Per-source admission of expensive work (an internal header of the core: the
// Node answers datagram Syns through it), as a generic cell rate algorithm: each source keeps one
// Instant, when its bucket is full again, so a source costs one map entry
// while it is busy and no timer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <map>

#include "aiocluster/types.h"

namespace aiocluster {

class SourceRateLimiter {
 public:
  // `interval` between admissions on average, `burst` admissions at once,
  // at most `max_sources` sources remembered (zeros count as one).
  SourceRateLimiter(Duration interval, std::size_t burst, std::size_t max_sources)
      : interval_(interval),
        tolerance_(interval * static_cast<Duration::rep>(std::max<std::size_t>(burst, 1) - 1)),
        max_sources_(std::max<std::size_t>(max_sources, 1)) {}

  // True when `source` may have one more unit of work at `now`.
  bool admit(const PeerKey& source, Instant now) {
    auto it = busy_until_.find(source);
    if (it == busy_until_.end()) {
      make_room(now);
      it = busy_until_.emplace(source, now).first;
    }
    const Instant start = std::max(it->second, now);
    if (start - now > tolerance_) return false;
    it->second = start + interval_;
    return true;
  }

  // Sources remembered now.
  std::size_t sources() const { return busy_until_.size(); }

 private:
  // Below this many sources the map is not swept: sweeping a few entries
  // would cost more than it frees.
  static constexpr std::size_t kSweepAtLeast = 8;

  // Sources whose bucket is full again carry no information (a new entry
  // reads the same): they are forgotten whenever the map has doubled since
  // the last sweep, so that it holds at most twice the sources that were
  // busy then, for a constant cost per source, and always first when it is
  // full.
  // Under a flood of forged sources, forget the one closest to full.
  void make_room(Instant now) {
    if (busy_until_.size() >= sweep_at_) {
      forget_idle(now);
      sweep_at_ = std::max(2 * busy_until_.size(), kSweepAtLeast);
    }
    if (busy_until_.size() < max_sources_) return;
    forget_idle(now);
    if (busy_until_.size() < max_sources_) return;
    busy_until_.erase(
        std::min_element(busy_until_.begin(), busy_until_.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; }));
  }

  void forget_idle(Instant now) {
    std::erase_if(busy_until_, [&](const auto& entry) { return entry.second <= now; });
  }

  Duration interval_;
  Duration tolerance_;
  std::size_t max_sources_;
  std::size_t sweep_at_ = kSweepAtLeast;
  std::map<PeerKey, Instant> busy_until_;
};

}  // namespace aiocluster
