// Phi accrual failure detection (PROTOCOL.md section 6; an internal header of
// the core): per node, a window of heartbeat inter-arrival times, and phi =
// time since the last arrival over the smoothed mean interval. Users read phi
// and liveness through Node.
#pragma once

#include <cstddef>
#include <cstdint>
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

// The windows of many nodes, each named by a small number the caller picks
// and reuses (a Node uses each replica's NodeState::slot()): finding a
// node's window is an index, not a search.
class FailureDetector {
 public:
  using Slot = std::uint32_t;

  explicit FailureDetector(FailureDetectorConfig config) : config_(config) {}

  void report_heartbeat(Slot node, Instant now);
  // nullopt while fewer than two arrivals are known.
  std::optional<double> phi(Slot node, Instant now) const;
  bool is_live(Slot node, Instant now) const;
  // Drops the node's window: on death, so a return starts afresh, and before
  // its slot names another node.
  void forget(Slot node);

  const FailureDetectorConfig& config() const { return config_; }

 private:
  FailureDetectorConfig config_;
  std::vector<ArrivalWindow> windows_;  // by slot
};

}  // namespace aiocluster
