#include "aiocluster/failure_detector.h"

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

void FailureDetector::report_heartbeat(const NodeId& node, Instant now) {
  auto it = windows_.find(node);
  if (it == windows_.end()) it = windows_.emplace(node, ArrivalWindow{}).first;
  it->second.record(now, config_);
}

std::optional<double> FailureDetector::phi(const NodeId& node, Instant now) const {
  const auto it = windows_.find(node);
  if (it == windows_.end()) return std::nullopt;
  return it->second.phi(now, config_);
}

bool FailureDetector::is_live(const NodeId& node, Instant now) const {
  const auto p = phi(node, now);
  return p && *p <= config_.phi_threshold;
}

}  // namespace aiocluster
