#include "failure_detector.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <numbers>

#include "grow.h"

namespace aiocluster {

namespace {

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

// How many standard deviations past the mean the normal model reaches
// `threshold`: normal_phi is increasing, so bisect.
double deviations_at(double threshold) {
  double low = 0.0;
  double high = 64.0;
  for (int i = 0; i < 60; ++i) {
    const double mid = (low + high) / 2;
    (normal_phi(mid) < threshold ? low : high) = mid;
  }
  return high;
}

}  // namespace

double normal_phi(double y) {
  // Q(y) = erfc(y / sqrt 2) / 2 underflows past y of about 37; there the
  // asymptotic form -log10 Q(y) ~ (y^2 / 2 + ln(y sqrt(2 pi))) / ln 10 keeps
  // phi finite and increasing.
  if (y < 30.0) return -std::log10(0.5 * std::erfc(y / std::numbers::sqrt2));
  return (y * y / 2 + std::log(y * std::sqrt(2 * std::numbers::pi))) / std::numbers::ln10;
}

FailureDetectorConfig FailureDetectorConfig::resolve(Duration gossip_interval) const {
  FailureDetectorConfig r = *this;
  const Duration interval = gossip_interval;
  if (!r.min_std_deviation) r.min_std_deviation = interval / 4;
  if (!r.local_pause_threshold) r.local_pause_threshold = 3 * interval;
  if (!detection_time) {
    if (!r.initial_interval) r.initial_interval = std::min<Duration>(5 * interval, 5s);
    return r;
  }
  // Heartbeats arrive about once a round. The last one reaches a node about
  // a round after it was beaten, and liveness is judged once a round: the
  // silence to tolerate is a round shorter than the detection time.
  if (!r.initial_interval) r.initial_interval = interval;
  if (!r.min_mean_interval) r.min_mean_interval = interval;
  const double silence = seconds(*detection_time - interval);
  if (model == PhiModel::kLinear) {
    r.phi_threshold = silence / seconds(interval);
  } else {
    // Convicted at about mean + pause + k standard deviations, the mean
    // being about a round.
    const double margin = deviations_at(phi_threshold) * seconds(*r.min_std_deviation);
    const double pause = std::max(0.0, silence - seconds(interval) - margin);
    r.acceptable_heartbeat_pause =
        std::chrono::duration_cast<Duration>(std::chrono::duration<double>(pause));
  }
  return r;
}

std::size_t ArrivalWindow::room(std::size_t count, std::size_t window, std::size_t sample_bytes) {
  if (count == 0) return 0;
  // In bytes: steps of 16 up to 256, then of an eighth of the power of two
  // below, each class 8 bytes past a multiple of 16. Rounding up to a step
  // is idempotent and increasing, so the room at a count is the room the
  // ring was given when it last grew.
  const std::size_t bytes = count * sample_bytes;
  const std::size_t step = std::max<std::size_t>(16, std::bit_floor(bytes) / 8);
  const std::size_t rounded = bytes <= 24 ? 24 : (bytes - 8 + step - 1) / step * step + 8;
  return std::min(rounded / sample_bytes, window);
}

template <std::size_t kBytes>
std::uint32_t ArrivalWindow::sample(std::size_t i) const {
  if constexpr (kBytes == 1) {
    return ring_[i];
  } else {
    std::uint16_t v = 0;
    std::memcpy(&v, &ring_[2 * i], sizeof v);
    return v;
  }
}

template <std::size_t kBytes>
void ArrivalWindow::set_sample(std::size_t i, std::uint32_t value) {
  if constexpr (kBytes == 1) {
    ring_[i] = static_cast<std::uint8_t>(value);
  } else {
    const auto v = static_cast<std::uint16_t>(value);
    std::memcpy(&ring_[2 * i], &v, sizeof v);
  }
}

ArrivalWindow ArrivalWindow::copy(std::size_t window, std::size_t sample_bytes,
                                  RingPool& pool) const {
  ArrivalWindow w;
  w.last_arrival_ = last_arrival_;
  w.sum_ = sum_;
  w.count_ = count_;
  w.head_ = head_;
  if (ring_ == nullptr) return w;
  w.ring_ = pool.allocate(ring_bytes(window, sample_bytes));
  std::copy_n(ring_, count_ * sample_bytes, w.ring_);
  return w;
}

void ArrivalWindow::release(std::size_t window, std::size_t sample_bytes, RingPool& pool) {
  if (ring_ != nullptr) pool.deallocate(ring_, ring_bytes(window, sample_bytes));
  ring_ = nullptr;
  last_arrival_ = {};
  sum_ = 0;
  count_ = 0;
  head_ = 0;
}

void ArrivalWindow::move_ring(std::size_t window, std::size_t sample_bytes, RingPool& from,
                              RingPool& to) {
  if (ring_ == nullptr) return;
  const std::size_t bytes = ring_bytes(window, sample_bytes);
  std::uint8_t* ring = to.allocate(bytes);
  std::copy_n(ring_, count_ * sample_bytes, ring);
  from.deallocate(ring_, bytes);
  ring_ = ring;
}

void ArrivalWindow::record(Instant now, const FailureDetectorConfig& config, Duration unit,
                           RingPool& pool, Instant resumed, std::uint64_t* squares) {
  if (sample_bytes(config, unit) == 1) {
    record_as<1>(now, config, unit, pool, resumed, squares);
  } else {
    record_as<2>(now, config, unit, pool, resumed, squares);
  }
}

template <std::size_t kBytes>
void ArrivalWindow::record_as(Instant now, const FailureDetectorConfig& config, Duration unit,
                              RingPool& pool, Instant resumed, std::uint64_t* squares) {
  if (arrivals() > 0 && last_arrival_ >= resumed) {
    const Duration interval = now - last_arrival_;
    if (interval >= Duration::zero() && interval <= config.max_interval) {
      constexpr std::size_t width = kBytes;
      constexpr std::int64_t largest = kBytes == 1 ? UINT8_MAX : UINT16_MAX;
      const std::int64_t units = (interval.count() + unit.count() / 2) / unit.count();
      const auto sample = static_cast<std::uint32_t>(std::min(units, largest));
      const std::size_t window = window_of(config);
      if (count_ < window) {
        // Below the window a room is 0 or 16k + 8 bytes: that cheap test first.
        if (count_ == 0 || (count_ * width % 16 == 8 && count_ == room(count_, window, width))) {
          // Lazily: most windows never fill.
          std::uint8_t* ring = pool.allocate(room(count_ + 1, window, width) * width);
          if (ring_ != nullptr) {
            std::copy_n(ring_, count_ * width, ring);
            pool.deallocate(ring_, ring_bytes(window, width));
          }
          ring_ = ring;
        }
        if (count_ == 0) head_ = 0;  // it counted arrivals; from now on the ring's oldest is 0
        set_sample<kBytes>(count_++, sample);
      } else if (count_ > 0) {
        const std::uint32_t old = this->sample<kBytes>(head_);
        sum_ -= old;
        if (squares) *squares -= std::uint64_t{old} * old;
        set_sample<kBytes>(head_, sample);
        head_ = static_cast<std::uint16_t>(head_ + 1 == count_ ? 0 : head_ + 1);
      }
      if (window > 0) {
        sum_ += sample;
        if (squares) *squares += std::uint64_t{sample} * sample;
      }
    }
  }
  if (count_ == 0 && head_ < 2) ++head_;
  last_arrival_ = now;
}

double ArrivalWindow::normal_model_phi(double elapsed, double mean, double weight,
                                       std::uint64_t squares, const FailureDetectorConfig& config,
                                       Duration unit) const {
  // The prior counts in the spread too, as kPriorWeight samples at the mean.
  const double unit_s = seconds(unit);
  const double mean_s = mean * 1e-9;
  const double prior_s = seconds(*config.initial_interval);
  const double spread =
      static_cast<double>(squares) * unit_s * unit_s + kPriorWeight * prior_s * prior_s;
  const double variance = std::max(0.0, spread / weight - mean_s * mean_s);
  const double std_dev = std::max(std::sqrt(variance), seconds(*config.min_std_deviation));
  const double floor_s = config.min_mean_interval ? seconds(*config.min_mean_interval) : 0.0;
  const double expected = std::max(mean_s, floor_s) + seconds(config.acceptable_heartbeat_pause);
  return aiocluster::normal_phi((elapsed * 1e-9 - expected) / std_dev);
}

Duration FailureDetector::unit_for(const FailureDetectorConfig& resolved,
                                   Duration gossip_interval) {
  // One byte a sample: the finest whole fraction of the round (intervals
  // bunch at whole rounds, which then round exactly) at which max_interval
  // takes at most 255 of them, if it is at least a 16th.
  const std::int64_t parts =
      resolved.max_interval <= Duration::zero()
          ? 4096
          : std::min<std::int64_t>(
                4096, UINT8_MAX * gossip_interval.count() / resolved.max_interval.count());
  // Rounded up, so that max_interval fits.
  if (parts >= 16) return std::max(Duration(1), (gossip_interval + Duration(parts - 1)) / parts);
  const Duration fine = gossip_interval / 4096;
  const Duration coarsest = gossip_interval / 64;
  // The unit at which max_interval takes 65535 of them, rounded up.
  const Duration fitting = resolved.max_interval / UINT16_MAX + Duration(1);
  return std::max(Duration(1), std::min(coarsest, std::max(fine, fitting)));
}

FailureDetector::FailureDetector(const FailureDetector& other)
    : config_(other.config_),
      unit_(other.unit_),
      sample_bytes_(other.sample_bytes_),
      squares_(other.squares_),
      resumed_(other.resumed_) {
  const std::size_t window = ArrivalWindow::window_of(config_);
  windows_.reserve(other.windows_.size());
  for (const ArrivalWindow& w : other.windows_) {
    windows_.push_back(w.copy(window, sample_bytes_, *rings_));
  }
}

FailureDetector::~FailureDetector() {
  // Rings too large for the pool's slabs came from operator new.
  const std::size_t window = ArrivalWindow::window_of(config_);
  for (ArrivalWindow& w : windows_) w.release(window, sample_bytes_, *rings_);
}

void FailureDetector::report_heartbeat(Slot node, Instant now) {
  if (node >= windows_.size()) {
    reserve_more(windows_, node + 1 - windows_.size());
    windows_.resize(node + 1);
  }
  std::uint64_t* squares = nullptr;
  if (config_.model == PhiModel::kNormal) {
    if (node >= squares_.size()) {
      reserve_more(squares_, node + 1 - squares_.size());
      squares_.resize(node + 1);
    }
    squares = &squares_[node];
  }
  windows_[node].record(now, config_, unit_, *rings_, resumed_, squares);
  if (rings_->wasteful()) repack();
}

void FailureDetector::repack() {
  auto fresh = std::make_unique<RingPool>();
  const std::size_t window = ArrivalWindow::window_of(config_);
  for (ArrivalWindow& w : windows_) w.move_ring(window, sample_bytes_, *rings_, *fresh);
  rings_ = std::move(fresh);
}

bool FailureDetector::spared_by_pause(Slot node, Instant now) const {
  if (node >= windows_.size() || resumed_ == Instant::min()) return false;
  const auto counted = windows_[node].phi(now, config_, unit_, Instant::min(), squares(node));
  return counted && *counted > config_.phi_threshold && is_live(node, now);
}

void FailureDetector::forget(Slot node) {
  if (node < windows_.size()) {
    windows_[node].release(ArrivalWindow::window_of(config_), sample_bytes_, *rings_);
  }
  if (node < squares_.size()) squares_[node] = 0;
}

}  // namespace aiocluster
