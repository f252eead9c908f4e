// Where the agent's work runs. The Cluster may only be touched on the
// node's loop, the HTTP server only on its own. With --driver libevent they
// are one loop and every hand-over is a plain call; with --driver asio the
// node runs on the Cluster's strand and HTTP on a thread of its own
// (EventLoopThread), and work crosses between them through these calls.
#pragma once

#include <cstdint>
#include <functional>

namespace aiocluster::agent {

class Loops {
 public:
  virtual ~Loops() = default;
  // From the HTTP loop: runs `work` on the node's loop.
  virtual void to_node(std::function<void()> work) = 0;
  // From the node's loop: runs `work` on the HTTP loop.
  virtual void to_http(std::function<void()> work) = 0;
  // The same for work that may be dropped when the HTTP loop falls behind
  // (a node's events for the event streams). False when dropped.
  virtual bool offer_to_http(std::function<void()> work) = 0;
  // How many offers were dropped.
  virtual std::uint64_t dropped() const = 0;
};

// Both loops are one.
class OneLoop final : public Loops {
 public:
  void to_node(std::function<void()> work) override { work(); }
  void to_http(std::function<void()> work) override { work(); }
  bool offer_to_http(std::function<void()> work) override {
    work();
    return true;
  }
  std::uint64_t dropped() const override { return 0; }
};

}  // namespace aiocluster::agent
