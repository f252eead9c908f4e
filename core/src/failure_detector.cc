#include "failure_detector.h"

#include <algorithm>

namespace aiocluster {

void ArrivalWindow::record(Instant now, const FailureDetectorConfig& config) {
  if (arrivals_ > 0) {
    const std::int64_t interval = (now - last_arrival_).count();
    if (interval >= 0 && interval <= config.max_interval.count()) {
      if (ring_.size() < config.sampling_window_size) {
        ring_.push_back(interval);
        ++count_;
      } else {
        sum_ -= ring_[head_];
        ring_[head_] = interval;
        head_ = (head_ + 1) % ring_.size();
      }
      sum_ += interval;
    }
  }
  ++arrivals_;
  last_arrival_ = now;
}

std::optional<double> ArrivalWindow::phi(Instant now, const FailureDetectorConfig& config) const {
  if (arrivals_ < 2) return std::nullopt;
  const double prior = static_cast<double>(config.initial_interval.count());
  const double mean = (static_cast<double>(sum_) + kPriorWeight * prior) /
                      static_cast<double>(static_cast<std::int64_t>(count_) + kPriorWeight);
  const double elapsed = static_cast<double>((now - last_arrival_).count());
  return elapsed / mean;
}

void FailureDetector::report_heartbeat(Slot node, Instant now) {
  if (node >= windows_.size()) windows_.resize(node + 1);
  windows_[node].record(now, config_);
}

std::optional<double> FailureDetector::phi(Slot node, Instant now) const {
  if (node >= windows_.size()) return std::nullopt;
  return windows_[node].phi(now, config_);
}

bool FailureDetector::is_live(Slot node, Instant now) const {
  const auto p = phi(node, now);
  return p && *p <= config_.phi_threshold;
}

void FailureDetector::forget(Slot node) {
  if (node < windows_.size()) windows_[node] = ArrivalWindow{};
}

}  // namespace aiocluster
