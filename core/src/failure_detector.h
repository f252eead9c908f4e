// Phi accrual failure detection (PROTOCOL.md section 6; an internal header of
// the core): per node, a window of heartbeat inter-arrival times, and phi
// from the silence since the last arrival, by the linear model of the
// protocol or the paper's normal one. Users set it through
// FailureDetectorConfig and read phi and liveness through Node.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "aiocluster/config.h"
#include "aiocluster/types.h"

namespace aiocluster {

// The phi of the normal model for a silence `y` standard deviations beyond
// the expected interval: -log10 of the normal tail beyond y.
double normal_phi(double y);

class ArrivalWindow {
 public:
  // The prior interval counts as this many samples in the mean.
  static constexpr std::int64_t kPriorWeight = 5;

  // An interval that began before `resumed` (this node's own pause ended
  // then) is not recorded: it measures our stall, not the peer.
  void record(Instant now, const FailureDetectorConfig& config, Instant resumed = Instant::min());
  // nullopt until two arrivals have been seen (one with a stated detection
  // time). Silence before `resumed` does
  // not count. `config` must be resolved.
  std::optional<double> phi(Instant now, const FailureDetectorConfig& config,
                            Instant resumed = Instant::min()) const;
  std::size_t intervals() const { return count_; }

 private:
  std::vector<std::int64_t> ring_;  // nanoseconds, at most sampling_window_size
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::int64_t sum_ = 0;
  double sum_squares_ = 0;  // of the intervals in seconds, for the normal model
  std::size_t arrivals_ = 0;
  Instant last_arrival_{};
};

// The windows of many nodes, each named by a small number the caller picks
// and reuses (a Node uses each replica's NodeState::slot()): finding a
// node's window is an index, not a search.
class FailureDetector {
 public:
  using Slot = std::uint32_t;

  // `gossip_interval` completes the config's unset fields (see
  // FailureDetectorConfig::resolve).
  explicit FailureDetector(const FailureDetectorConfig& config, Duration gossip_interval = 1s)
      : config_(config.resolve(gossip_interval)) {}

  void report_heartbeat(Slot node, Instant now);
  // nullopt while fewer than two arrivals are known.
  std::optional<double> phi(Slot node, Instant now) const;
  bool is_live(Slot node, Instant now) const;
  // Live only because the silence during this node's own pause is not
  // counted: without note_local_pause it would be convicted.
  bool spared_by_pause(Slot node, Instant now) const;
  // This node did not run until `resumed`: the silence before it counts
  // against nobody, so every node gets a whole detection time from then for
  // fresh heartbeats to arrive.
  void note_local_pause(Instant resumed) { resumed_ = resumed; }
  // Drops the node's window: on death, so a return starts afresh, and before
  // its slot names another node.
  void forget(Slot node);

  // Resolved: every optional set.
  const FailureDetectorConfig& config() const { return config_; }

 private:
  FailureDetectorConfig config_;
  std::vector<ArrivalWindow> windows_;  // by slot
  Instant resumed_ = Instant::min();
};

}  // namespace aiocluster
