// Phi accrual failure detection (PROTOCOL.md section 6; an internal header of
// the core): per node, a window of heartbeat inter-arrival times, and phi
// from the silence since the last arrival, by the linear model of the
// protocol or the paper's normal one. Users set it through
// FailureDetectorConfig and read phi and liveness through Node.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "aiocluster/config.h"
#include "aiocluster/types.h"

namespace aiocluster {

// The phi of the normal model for a silence `y` standard deviations beyond
// the expected interval: -log10 of the normal tail beyond y.
double normal_phi(double y);

// A window of heartbeat inter-arrival times. A node keeps one per known
// node, so it is small: intervals are stored as 16-bit counts of a unit (a
// fraction of the gossip interval, see FailureDetector::unit()), in a ring
// that grows as intervals arrive, with exact integer sums. Phi differs
// from one computed on the exact intervals only by that rounding.
class ArrivalWindow {
 public:
  // The prior interval counts as this many samples in the mean.
  static constexpr std::int64_t kPriorWeight = 5;

  ArrivalWindow() = default;
  ArrivalWindow(const ArrivalWindow& other);
  ArrivalWindow(ArrivalWindow&&) noexcept = default;
  ArrivalWindow& operator=(ArrivalWindow other) noexcept;
  ~ArrivalWindow() = default;

  // An interval that began before `resumed` (this node's own pause ended
  // then) is not recorded: it measures our stall, not the peer. Intervals
  // are rounded to `unit`, and those above 65535 units are clamped.
  void record(Instant now, const FailureDetectorConfig& config, Duration unit,
              Instant resumed = Instant::min());
  // nullopt until two arrivals have been seen (one with a stated detection
  // time). Silence before `resumed` does not count. `config` must be
  // resolved. Inline: asked for every node every round.
  std::optional<double> phi(Instant now, const FailureDetectorConfig& config, Duration unit,
                            Instant resumed = Instant::min()) const {
    // The protocol's prior (5 rounds by default) is a guess, so it waits
    // for a second arrival. A stated detection time makes the prior the
    // round itself: one beat heard since we learned of the node is enough.
    const std::uint32_t needed = config.detection_time ? 1 : 2;
    if (arrivals_ < needed) return std::nullopt;
    const double prior = static_cast<double>(config.initial_interval->count());
    const double weight = static_cast<double>(count_) + kPriorWeight;
    const double sum = static_cast<double>(sum_) * static_cast<double>(unit.count());
    const double mean = (sum + kPriorWeight * prior) / weight;
    const double elapsed = static_cast<double>((now - std::max(last_arrival_, resumed)).count());
    if (config.model == PhiModel::kLinear) return elapsed / mean;
    return normal_model_phi(elapsed, mean, weight, config, unit);
  }
  std::size_t intervals() const { return count_; }
  // The ring's room, in intervals: it grows as they arrive.
  std::size_t capacity() const { return capacity_; }

 private:
  double normal_model_phi(double elapsed, double mean, double weight,
                          const FailureDetectorConfig& config, Duration unit) const;

  // Laid out in 48 bytes.
  std::unique_ptr<std::uint16_t[]> ring_;  // intervals in units; capacity_ of them
  std::uint32_t capacity_ = 0;
  std::uint32_t count_ = 0;        // at most sampling_window_size
  std::uint32_t head_ = 0;         // the oldest, once the ring is full
  std::uint32_t arrivals_ = 0;     // counted up to 2: all phi needs to know
  std::uint64_t sum_ = 0;          // of the intervals, in units
  std::uint64_t sum_squares_ = 0;  // in units squared, for the normal model
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
      : config_(config.resolve(gossip_interval)), unit_(unit_for(config_, gossip_interval)) {}

  void report_heartbeat(Slot node, Instant now);
  // Asks for a node's window ahead of a pass over many nodes (phi of each).
  void prefetch_window(Slot node) const {
    if (node < windows_.size()) __builtin_prefetch(&windows_[node]);
  }
  // nullopt while fewer than two arrivals are known.
  std::optional<double> phi(Slot node, Instant now) const {
    if (node >= windows_.size()) return std::nullopt;
    return windows_[node].phi(now, config_, unit_, resumed_);
  }
  bool is_live(Slot node, Instant now) const {
    const auto p = phi(node, now);
    return p && *p <= config_.phi_threshold;
  }
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
  // What windows count intervals in: 1/4096 of the gossip interval (about
  // 0.25 ms at 1 s rounds), coarser only so that max_interval fits in 16
  // bits, yet never coarser than 1/64 of the gossip interval (longer
  // intervals are then clamped).
  Duration unit() const { return unit_; }
  static Duration unit_for(const FailureDetectorConfig& resolved, Duration gossip_interval);

 private:
  FailureDetectorConfig config_;
  Duration unit_;
  std::vector<ArrivalWindow> windows_;  // by slot
  Instant resumed_ = Instant::min();
};

}  // namespace aiocluster
