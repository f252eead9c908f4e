// The libevent driver's side of the conformance suite.
#include <event2/event.h>

#include <csignal>
#include <stdexcept>

#include "aiocluster/libevent/cluster.h"
#include "cluster_node.h"
#include "harness.h"

namespace aiocluster::conformance {

namespace {

class LibeventLoop final : public Loop {
 public:
  LibeventLoop() : base_(event_base_new()) {
    if (base_ == nullptr) throw std::runtime_error("event_base_new failed");
    // As every libevent program must: a peer closing mid-write is an error
    // to handle, not a signal that kills the test.
    std::signal(SIGPIPE, SIG_IGN);
  }
  ~LibeventLoop() override { event_base_free(base_); }
  LibeventLoop(const LibeventLoop&) = delete;
  LibeventLoop& operator=(const LibeventLoop&) = delete;

  std::unique_ptr<TestNode> start(const NodeSpec& spec) override {
    return std::make_unique<ClusterNode<libevent_driver::Cluster>>(base_, spec);
  }

  bool run_until(const std::function<bool()>& done, Duration timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      run_for(5ms);
    }
    return true;
  }

  bool run_until_idle(Duration timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (event_base_get_num_events(base_, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE) == 0)
        return true;
      run_for(50ms);
    }
    return false;
  }

 private:
  // Runs the loop for `slice`; the exit timer keeps an empty base from
  // returning at once.
  void run_for(Duration slice) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(slice).count();
    const timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
    event_base_loopexit(base_, &tv);
    event_base_dispatch(base_);
  }

  event_base* base_;
};

}  // namespace

std::string driver_name() { return "libevent"; }
std::unique_ptr<Loop> make_loop() { return std::make_unique<LibeventLoop>(); }

}  // namespace aiocluster::conformance
