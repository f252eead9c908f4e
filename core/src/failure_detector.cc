#include "aiocluster/failure_detector.h"

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

FailureDetector::FailureDetector(const FailureDetector& other)
    : config_(other.config_), fingerprints_(other.fingerprints_) {
  windows_.reserve(other.windows_.size());
  for (const auto& entry : other.windows_) windows_.push_back(std::make_unique<Entry>(*entry));
}

FailureDetector& FailureDetector::operator=(const FailureDetector& other) {
  if (this != &other) *this = FailureDetector(other);
  return *this;
}

std::size_t FailureDetector::seek(const NodeId& node, std::size_t hint) const {
  constexpr std::size_t kScan = 32;
  const std::size_t n = windows_.size();
  const std::size_t fingerprint = std::hash<NodeId>{}(node);
  for (std::size_t i = hint, end = std::min(n, hint + kScan); i < end; ++i) {
    if (fingerprints_[i] == fingerprint && windows_[i]->node == node) {
      // Ask for the windows the walk reaches next, so their loads overlap.
      if (i + 3 < n) {
        const auto* next = reinterpret_cast<const char*>(windows_[i + 3].get());
        __builtin_prefetch(next);
        __builtin_prefetch(next + 64);
        __builtin_prefetch(next + 128);
      }
      return i;
    }
  }
  const auto it =
      std::lower_bound(windows_.begin(), windows_.end(), node,
                       [](const auto& entry, const NodeId& key) { return entry->node < key; });
  return static_cast<std::size_t>(it - windows_.begin());
}

const ArrivalWindow* FailureDetector::find(const NodeId& node, Cursor& cursor) const {
  const std::size_t at = seek(node, cursor.at_);
  cursor.at_ = at;
  return at < windows_.size() && windows_[at]->node == node ? &windows_[at]->window : nullptr;
}

void FailureDetector::report_heartbeat(const NodeId& node, Instant now) {
  Cursor cursor;
  cursor.at_ = windows_.size();
  report_heartbeat(node, now, cursor);
}

void FailureDetector::report_heartbeat(const NodeId& node, Instant now, Cursor& cursor) {
  const std::size_t at = seek(node, cursor.at_);
  cursor.at_ = at;
  if (at == windows_.size() || windows_[at]->node != node) {
    windows_.insert(windows_.begin() + static_cast<std::ptrdiff_t>(at),
                    std::make_unique<Entry>(Entry{node, ArrivalWindow{}}));
    fingerprints_.insert(fingerprints_.begin() + static_cast<std::ptrdiff_t>(at),
                         std::hash<NodeId>{}(node));
  }
  windows_[at]->window.record(now, config_);
}

std::optional<double> FailureDetector::phi(const NodeId& node, Instant now) const {
  Cursor cursor;
  cursor.at_ = windows_.size();
  const ArrivalWindow* window = find(node, cursor);
  if (window == nullptr) return std::nullopt;
  return window->phi(now, config_);
}

bool FailureDetector::is_live(const NodeId& node, Instant now) const {
  const auto p = phi(node, now);
  return p && *p <= config_.phi_threshold;
}

bool FailureDetector::is_live(const NodeId& node, Instant now, Cursor& cursor) const {
  const ArrivalWindow* window = find(node, cursor);
  if (window == nullptr) return false;
  const auto p = window->phi(now, config_);
  return p && *p <= config_.phi_threshold;
}

void FailureDetector::forget(const NodeId& node) {
  const std::size_t at = seek(node, windows_.size());
  if (at < windows_.size() && windows_[at]->node == node) {
    windows_.erase(windows_.begin() + static_cast<std::ptrdiff_t>(at));
    fingerprints_.erase(fingerprints_.begin() + static_cast<std::ptrdiff_t>(at));
  }
}

}  // namespace aiocluster
