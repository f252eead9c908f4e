#include "failure_detector.h"

#include <algorithm>
#include <cmath>
#include <numbers>

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

void ArrivalWindow::record(Instant now, const FailureDetectorConfig& config, Instant resumed) {
  if (arrivals_ > 0 && last_arrival_ >= resumed) {
    const std::int64_t interval = (now - last_arrival_).count();
    if (interval >= 0 && interval <= config.max_interval.count()) {
      const double s = static_cast<double>(interval) * 1e-9;
      if (ring_.size() < config.sampling_window_size) {
        ring_.push_back(interval);
        ++count_;
      } else {
        const double old = static_cast<double>(ring_[head_]) * 1e-9;
        sum_ -= ring_[head_];
        sum_squares_ -= old * old;
        ring_[head_] = interval;
        head_ = (head_ + 1) % ring_.size();
      }
      sum_ += interval;
      sum_squares_ += s * s;
    }
  }
  ++arrivals_;
  last_arrival_ = now;
}

std::optional<double> ArrivalWindow::phi(Instant now, const FailureDetectorConfig& config,
                                         Instant resumed) const {
  // The protocol's prior (5 rounds by default) is a guess, so it waits for
  // a second arrival. A stated detection time makes the prior the round
  // itself: one beat heard since we learned of the node is enough.
  const std::size_t needed = config.detection_time ? 1 : 2;
  if (arrivals_ < needed) return std::nullopt;
  const double prior = static_cast<double>(config.initial_interval->count());
  const double weight = static_cast<double>(static_cast<std::int64_t>(count_) + kPriorWeight);
  const double mean = (static_cast<double>(sum_) + kPriorWeight * prior) / weight;
  const double elapsed = static_cast<double>((now - std::max(last_arrival_, resumed)).count());
  if (config.model == PhiModel::kLinear) return elapsed / mean;
  // The prior counts in the spread too, as kPriorWeight samples at the mean.
  const double mean_s = mean * 1e-9;
  const double prior_s = prior * 1e-9;
  const double squares = sum_squares_ + kPriorWeight * prior_s * prior_s;
  const double variance = std::max(0.0, squares / weight - mean_s * mean_s);
  const double std_dev = std::max(std::sqrt(variance), seconds(*config.min_std_deviation));
  const double expected = mean_s + seconds(config.acceptable_heartbeat_pause);
  return normal_phi((elapsed * 1e-9 - expected) / std_dev);
}

void FailureDetector::report_heartbeat(Slot node, Instant now) {
  if (node >= windows_.size()) windows_.resize(node + 1);
  windows_[node].record(now, config_, resumed_);
}

std::optional<double> FailureDetector::phi(Slot node, Instant now) const {
  if (node >= windows_.size()) return std::nullopt;
  return windows_[node].phi(now, config_, resumed_);
}

bool FailureDetector::is_live(Slot node, Instant now) const {
  const auto p = phi(node, now);
  return p && *p <= config_.phi_threshold;
}

bool FailureDetector::spared_by_pause(Slot node, Instant now) const {
  if (node >= windows_.size() || resumed_ == Instant::min()) return false;
  const auto counted = windows_[node].phi(now, config_);
  return counted && *counted > config_.phi_threshold && is_live(node, now);
}

void FailureDetector::forget(Slot node) {
  if (node < windows_.size()) windows_[node] = ArrivalWindow{};
}

}  // namespace aiocluster
