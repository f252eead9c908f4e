#include "failure_detector.h"

#include <algorithm>
#include <cmath>
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

ArrivalWindow::ArrivalWindow(const ArrivalWindow& other)
    : capacity_(other.capacity_),
      count_(other.count_),
      head_(other.head_),
      arrivals_(other.arrivals_),
      sum_(other.sum_),
      sum_squares_(other.sum_squares_),
      last_arrival_(other.last_arrival_) {
  if (capacity_ == 0) return;
  ring_ = std::make_unique_for_overwrite<std::uint16_t[]>(capacity_);
  std::copy_n(other.ring_.get(), count_, ring_.get());
}

ArrivalWindow& ArrivalWindow::operator=(ArrivalWindow other) noexcept {
  std::swap(ring_, other.ring_);
  capacity_ = other.capacity_;
  count_ = other.count_;
  head_ = other.head_;
  arrivals_ = other.arrivals_;
  sum_ = other.sum_;
  sum_squares_ = other.sum_squares_;
  last_arrival_ = other.last_arrival_;
  return *this;
}

void ArrivalWindow::record(Instant now, const FailureDetectorConfig& config, Duration unit,
                           Instant resumed) {
  if (arrivals_ > 0 && last_arrival_ >= resumed) {
    const Duration interval = now - last_arrival_;
    if (interval >= Duration::zero() && interval <= config.max_interval) {
      const std::int64_t units = (interval.count() + unit.count() / 2) / unit.count();
      const auto sample = static_cast<std::uint16_t>(std::min<std::int64_t>(units, UINT16_MAX));
      const std::size_t window = std::min<std::size_t>(config.sampling_window_size, UINT32_MAX);
      if (count_ < window) {
        if (count_ == capacity_) {
          // Lazily, by an eighth: most windows never fill. Rounded up to
          // what the allocator hands out anyway (16-byte granules less an
          // 8-byte header, 24 bytes at least): as much memory, half the
          // reallocations.
          const std::size_t wanted = grown_capacity(capacity_, count_ + 1, window);
          const std::size_t granular =
              std::max<std::size_t>(12, ((wanted + 3) & ~std::size_t{7}) + 4);
          const auto grown = static_cast<std::uint32_t>(std::min(granular, window));
          auto ring = std::make_unique_for_overwrite<std::uint16_t[]>(grown);
          std::copy_n(ring_.get(), count_, ring.get());
          ring_ = std::move(ring);
          capacity_ = grown;
        }
        ring_[count_++] = sample;  // not full yet: head_ is 0
      } else if (count_ > 0) {
        const std::uint64_t old = ring_[head_];
        sum_ -= old;
        sum_squares_ -= old * old;
        ring_[head_] = sample;
        head_ = (head_ + 1) % count_;
      }
      if (window > 0) {
        sum_ += sample;
        sum_squares_ += std::uint64_t{sample} * sample;
      }
    }
  }
  if (arrivals_ < 2) ++arrivals_;
  last_arrival_ = now;
}

double ArrivalWindow::normal_model_phi(double elapsed, double mean, double weight,
                                       const FailureDetectorConfig& config, Duration unit) const {
  // The prior counts in the spread too, as kPriorWeight samples at the mean.
  const double unit_s = seconds(unit);
  const double mean_s = mean * 1e-9;
  const double prior_s = seconds(*config.initial_interval);
  const double squares =
      static_cast<double>(sum_squares_) * unit_s * unit_s + kPriorWeight * prior_s * prior_s;
  const double variance = std::max(0.0, squares / weight - mean_s * mean_s);
  const double std_dev = std::max(std::sqrt(variance), seconds(*config.min_std_deviation));
  const double expected = mean_s + seconds(config.acceptable_heartbeat_pause);
  return aiocluster::normal_phi((elapsed * 1e-9 - expected) / std_dev);
}

Duration FailureDetector::unit_for(const FailureDetectorConfig& resolved,
                                   Duration gossip_interval) {
  const Duration fine = gossip_interval / 4096;
  const Duration coarsest = gossip_interval / 64;
  // The unit at which max_interval takes 65535 of them, rounded up.
  const Duration fitting = resolved.max_interval / UINT16_MAX + Duration(1);
  return std::max(Duration(1), std::min(coarsest, std::max(fine, fitting)));
}

void FailureDetector::report_heartbeat(Slot node, Instant now) {
  if (node >= windows_.size()) {
    reserve_more(windows_, node + 1 - windows_.size());
    windows_.resize(node + 1);
  }
  windows_[node].record(now, config_, unit_, resumed_);
}

bool FailureDetector::spared_by_pause(Slot node, Instant now) const {
  if (node >= windows_.size() || resumed_ == Instant::min()) return false;
  const auto counted = windows_[node].phi(now, config_, unit_);
  return counted && *counted > config_.phi_threshold && is_live(node, now);
}

void FailureDetector::forget(Slot node) {
  if (node < windows_.size()) windows_[node] = ArrivalWindow{};
}

}  // namespace aiocluster
