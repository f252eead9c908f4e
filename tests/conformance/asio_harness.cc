// The Asio driver's side of the conformance suite.
#include <asio/io_context.hpp>
#include <stdexcept>

#include "aiocluster/asio/cluster.h"
#include "cluster_node.h"
#include "harness.h"

namespace aiocluster::conformance {

namespace {

class AsioLoop final : public Loop {
 public:
  std::unique_ptr<TestNode> start(const NodeSpec& spec) override {
    return std::make_unique<ClusterNode<asio_driver::Cluster>>(io_, spec);
  }

  bool run_until(const std::function<bool()>& done, Duration timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      if (io_.stopped()) io_.restart();
      io_.run_for(5ms);
    }
    return true;
  }

  bool run_until_idle(Duration timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    io_.restart();
    while (std::chrono::steady_clock::now() < deadline) {
      io_.run_for(50ms);
      if (io_.stopped()) return true;  // run() returned: no work left
    }
    return false;
  }

 private:
  ::asio::io_context io_;
};

}  // namespace

std::string driver_name() { return "asio"; }
std::unique_ptr<Loop> make_loop() { return std::make_unique<AsioLoop>(); }

}  // namespace aiocluster::conformance
