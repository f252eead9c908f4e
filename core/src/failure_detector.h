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
#include <utility>
#include <vector>

#include "aiocluster/config.h"
#include "aiocluster/types.h"
#include "storage.h"  // SlabPool

namespace aiocluster {

// The phi of the normal model for a silence `y` standard deviations beyond
// the expected interval: -log10 of the normal tail beyond y.
double normal_phi(double y);

// The rings of one FailureDetector's windows (see ArrivalWindow), in the
// slabs of a pool. Rings grow at about the same round all through a run,
// and the blocks they leave are seldom of a size asked for again: counted,
// so that the detector moves the rings into fresh slabs once the slabs hold
// a 32nd more than the rings use, and a slab. (Every ring grows at about
// the same round, so the waste allowed is there at the peak: an eighth
// took a keyless replica at 1,000 nodes from 193 to 201 bytes.)
class RingPool {
 public:
  std::uint8_t* allocate(std::size_t bytes) {
    if (bytes <= SlabPool::kLargest) in_slabs_ += SlabPool::block_size(bytes);
    return static_cast<std::uint8_t*>(slabs_.allocate(bytes, 1));
  }
  void deallocate(std::uint8_t* ring, std::size_t bytes) {
    if (bytes <= SlabPool::kLargest) in_slabs_ -= SlabPool::block_size(bytes);
    slabs_.deallocate(ring, bytes, 1);
  }
  bool wasteful() const { return slabs_.held() > in_slabs_ + in_slabs_ / 32 + SlabPool::kSlab; }
  std::size_t held() const { return slabs_.held(); }

 private:
  SlabPool slabs_;
  std::size_t in_slabs_ = 0;  // bytes of the blocks of the rings in slabs
};

// A window of heartbeat inter-arrival times. A node keeps one per known
// node, so it is small (24 bytes): intervals are stored as counts of a unit
// (a fraction of the gossip interval, see FailureDetector::unit()), one byte
// each when max_interval fits 255 units, two bytes otherwise (see
// sample_bytes()), in a ring that grows as intervals arrive, with an exact
// integer sum. Phi differs from one computed on the exact intervals only by
// that rounding. At most kMaxWindow intervals are kept, whatever
// sampling_window_size asks (65535 rounds, 18 hours at 1 s rounds): so the
// count fits 16 bits and the sum 32. The normal model's sum of squares is
// kept by the caller (see FailureDetector), as the linear model has no use
// for it. The ring comes from a pool the owner passes in and goes back to
// it by release(): a node's rings then sit together in its pool's slabs,
// not anywhere in the heap, and cost no malloc header (from malloc, a
// converged round of 4,000 nodes went from about 4 s to 5 or 6.5 s by
// round 25 as rings grew, in malloc and in record()'s misses). Not
// copyable: see copy().
class ArrivalWindow {
 public:
  // The prior interval counts as this many samples in the mean.
  static constexpr std::int64_t kPriorWeight = 5;
  static constexpr std::size_t kMaxWindow = UINT16_MAX;

  ArrivalWindow() = default;
  ArrivalWindow(ArrivalWindow&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)),
        last_arrival_(other.last_arrival_),
        sum_(other.sum_),
        count_(other.count_),
        head_(other.head_) {}
  // Only the owner knows the pool a ring goes back to (release()).
  ArrivalWindow& operator=(ArrivalWindow&&) = delete;
  ~ArrivalWindow() = default;
  // The most intervals a window of `config` keeps.
  static std::size_t window_of(const FailureDetectorConfig& config) {
    return std::min(config.sampling_window_size, kMaxWindow);
  }
  // A deep copy, its ring from `pool`, of a window of `window` intervals
  // (window_of) that stores samples of `sample_bytes`.
  ArrivalWindow copy(std::size_t window, std::size_t sample_bytes, RingPool& pool) const;
  // Gives the ring back to the pool it came from and empties the window.
  void release(std::size_t window, std::size_t sample_bytes, RingPool& pool);
  // Moves the ring from the pool it came from to `to`.
  void move_ring(std::size_t window, std::size_t sample_bytes, RingPool& from, RingPool& to);

  // The bytes of a sample counted in `unit`: one when max_interval (the
  // longest interval recorded) takes at most 255 units, else two.
  static std::size_t sample_bytes(const FailureDetectorConfig& config, Duration unit) {
    return config.max_interval <= unit * UINT8_MAX ? 1 : 2;
  }

  // An interval that began before `resumed` (this node's own pause ended
  // then) is not recorded: it measures our stall, not the peer. Intervals
  // are rounded to the nearest `unit`, and those above the largest sample
  // (255 or 65535 units) are clamped. `squares`, if given, keeps the sum of
  // the squares of the window's intervals (in units squared) for the normal
  // model.
  void record(Instant now, const FailureDetectorConfig& config, Duration unit, RingPool& pool,
              Instant resumed = Instant::min(), std::uint64_t* squares = nullptr);
  // nullopt until two arrivals have been seen (one with a stated detection
  // time). Silence before `resumed` does not count. `config` must be
  // resolved; `squares` is what record() kept, for the normal model.
  // Inline: asked for every node every round.
  std::optional<double> phi(Instant now, const FailureDetectorConfig& config, Duration unit,
                            Instant resumed = Instant::min(), std::uint64_t squares = 0) const {
    // The protocol's prior (5 rounds by default) is a guess, so it waits
    // for a second arrival. A stated detection time makes the prior the
    // round itself: one beat heard since we learned of the node is enough.
    const std::uint32_t needed = config.detection_time ? 1 : 2;
    if (arrivals() < needed) return std::nullopt;
    const double prior = static_cast<double>(config.initial_interval->count());
    const double weight = static_cast<double>(count_) + kPriorWeight;
    const double sum = static_cast<double>(sum_) * static_cast<double>(unit.count());
    const double mean = (sum + kPriorWeight * prior) / weight;
    const double elapsed = static_cast<double>((now - std::max(last_arrival_, resumed)).count());
    if (config.model == PhiModel::kLinear) {
      const double floor =
          config.min_mean_interval ? static_cast<double>(config.min_mean_interval->count()) : 0.0;
      return elapsed / std::max(mean, floor);
    }
    return normal_model_phi(elapsed, mean, weight, squares, config, unit);
  }
  std::size_t intervals() const { return count_; }
  // The ring's room, in intervals, for a window of `window` intervals of
  // `sample_bytes`: it grows as they arrive, by size classes of about an
  // eighth.
  std::size_t capacity(std::size_t window, std::size_t sample_bytes) const {
    return room(count_, window, sample_bytes);
  }
  // The room a ring holding `count` intervals has: the smallest size class
  // (16k + 8 bytes, what a 16-byte-granular allocator hands out for whole
  // granules, in steps of about an eighth) of at least `count`, at most the
  // window.
  static std::size_t room(std::size_t count, std::size_t window, std::size_t sample_bytes);

 private:
  // The bytes of the ring a window of `window` intervals holding count_ of
  // them has: what it was given and what it gives back.
  std::size_t ring_bytes(std::size_t window, std::size_t sample_bytes) const {
    return capacity(window, sample_bytes) * sample_bytes;
  }
  // Arrivals counted up to 2: all phi needs to know. A recorded interval
  // means two arrivals; head_ counts them while the ring is empty.
  std::uint32_t arrivals() const { return count_ > 0 ? 2 : head_; }
  double normal_model_phi(double elapsed, double mean, double weight, std::uint64_t squares,
                          const FailureDetectorConfig& config, Duration unit) const;
  // record() for samples of kBytes: the width decided once, not per access.
  template <std::size_t kBytes>
  void record_as(Instant now, const FailureDetectorConfig& config, Duration unit, RingPool& pool,
                 Instant resumed, std::uint64_t* squares);
  template <std::size_t kBytes>
  std::uint32_t sample(std::size_t i) const;
  template <std::size_t kBytes>
  void set_sample(std::size_t i, std::uint32_t value);

  // Laid out in 24 bytes.
  std::uint8_t* ring_ = nullptr;  // intervals in units; room(count_, window) of them
  Instant last_arrival_{};
  std::uint32_t sum_ = 0;    // of the intervals, in units: below 65535 x 65535
  std::uint16_t count_ = 0;  // at most the window (and kMaxWindow)
  std::uint16_t head_ = 0;   // the oldest once the ring is full; arrivals while it is empty
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
      : config_(config.resolve(gossip_interval)),
        unit_(unit_for(config_, gossip_interval)),
        sample_bytes_(ArrivalWindow::sample_bytes(config_, unit_)) {}
  FailureDetector(const FailureDetector& other);
  FailureDetector& operator=(const FailureDetector&) = delete;
  ~FailureDetector();

  void report_heartbeat(Slot node, Instant now);
  // Asks for a node's window ahead of a pass over many nodes (phi of each).
  void prefetch_window(Slot node) const {
    if (node < windows_.size()) __builtin_prefetch(&windows_[node]);
  }
  // nullopt while fewer than two arrivals are known.
  std::optional<double> phi(Slot node, Instant now) const {
    if (node >= windows_.size()) return std::nullopt;
    return windows_[node].phi(now, config_, unit_, resumed_, squares(node));
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
  // What windows count intervals in. One-byte samples when that costs
  // little precision: the finest fraction 1/k of the gossip interval at
  // which max_interval takes at most 255 units, if k is at least 16 (1/25
  // of a round, 40 ms, at 1 s rounds and the default 10 s max_interval).
  // Otherwise two-byte samples of 1/4096 of the gossip interval (about
  // 0.25 ms at 1 s rounds), coarser only so that max_interval fits in 16
  // bits, yet never coarser than 1/64 of the gossip interval (longer
  // intervals are then clamped).
  Duration unit() const { return unit_; }
  // 1 or 2: see ArrivalWindow::sample_bytes.
  std::size_t sample_bytes() const { return sample_bytes_; }
  static Duration unit_for(const FailureDetectorConfig& resolved, Duration gossip_interval);
  // Bytes of the slabs the windows' rings are carved from (rings too large
  // for a slab not counted).
  std::size_t ring_slab_bytes() const { return rings_->held(); }

 private:
  std::uint64_t squares(Slot node) const { return node < squares_.size() ? squares_[node] : 0; }
  // Moves every ring into a fresh pool, in slot order.
  void repack();

  FailureDetectorConfig config_;
  Duration unit_;
  std::size_t sample_bytes_;
  // The windows' rings; declared first, so it outlives them.
  std::unique_ptr<RingPool> rings_ = std::make_unique<RingPool>();
  std::vector<ArrivalWindow> windows_;  // by slot
  // By slot, for the normal model only: each window's sum of squares.
  std::vector<std::uint64_t> squares_;
  Instant resumed_ = Instant::min();
};

}  // namespace aiocluster
