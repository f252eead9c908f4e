// Phi accrual failure detection (PROTOCOL.md section 6): per node, a window of
// heartbeat inter-arrival times, and phi = time since the last arrival over
// the smoothed mean interval.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "aiocluster/config.h"
#include "aiocluster/types.h"

namespace aiocluster {

class ArrivalWindow {
 public:
  // The prior interval counts as this many samples in the mean.
  static constexpr std::int64_t kPriorWeight = 5;

  void record(Instant now, const FailureDetectorConfig& config);
  // Mean inter-arrival interval with additive smoothing; nullopt until two
  // arrivals have been seen.
  std::optional<double> phi(Instant now, const FailureDetectorConfig& config) const;
  std::size_t intervals() const { return count_; }

 private:
  std::vector<std::int64_t> ring_;  // nanoseconds, at most sampling_window_size
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::int64_t sum_ = 0;
  std::size_t arrivals_ = 0;
  Instant last_arrival_{};
};

class FailureDetector {
 public:
  // Calls about nodes in increasing id order (a digest, a walk of the known
  // nodes) can carry a cursor from one call to the next: the next window is
  // tried before a search. Any cursor is safe to use; a stale one is slower.
  class Cursor {
    friend class FailureDetector;
    std::size_t at_ = 0;
  };

  explicit FailureDetector(FailureDetectorConfig config) : config_(config) {}
  FailureDetector(const FailureDetector& other);
  FailureDetector& operator=(const FailureDetector& other);
  FailureDetector(FailureDetector&&) = default;
  FailureDetector& operator=(FailureDetector&&) = default;

  void report_heartbeat(const NodeId& node, Instant now);
  void report_heartbeat(const NodeId& node, Instant now, Cursor& cursor);
  // nullopt while fewer than two arrivals are known.
  std::optional<double> phi(const NodeId& node, Instant now) const;
  bool is_live(const NodeId& node, Instant now) const;
  bool is_live(const NodeId& node, Instant now, Cursor& cursor) const;
  // Drops the node's window: on death, so a return starts afresh, and on removal.
  void forget(const NodeId& node);

  const FailureDetectorConfig& config() const { return config_; }

 private:
  struct Entry {
    NodeId node;
    ArrivalWindow window;
  };
  // The position of `node`, or where it belongs: a short scan of the
  // fingerprints from `hint` (calls in id order skip few nodes), then a
  // binary search.
  std::size_t seek(const NodeId& node, std::size_t hint) const;
  const ArrivalWindow* find(const NodeId& node, Cursor& cursor) const;

  FailureDetectorConfig config_;
  // In id order, by pointer: walking it in order touches one small
  // contiguous array instead of chasing tree nodes, which matters with a
  // thousand nodes; inserting moves pointers only.
  std::vector<std::unique_ptr<Entry>> windows_;
  // std::hash of each node, by position: most entries are told apart
  // without touching them (a match is still compared in full).
  std::vector<std::size_t> fingerprints_;
};

}  // namespace aiocluster
