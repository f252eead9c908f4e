// What the agent's report and HTTP API need of a Cluster, whichever driver
// runs it: one interface, so they are written once. Every call must be made
// on the node's own loop (the libevent base, or the Asio strand).
#pragma once

#include <string_view>

#include "aiocluster/common/hooks.h"
#include "aiocluster/common/stats.h"
#include "aiocluster/node.h"

namespace aiocluster::agent {

class NodeControl {
 public:
  virtual ~NodeControl() = default;
  virtual const Node& node() const = 0;
  virtual driver::DriverStats driver_stats() const = 0;
  virtual driver::HookStats hook_stats() const = 0;
  // set(), or set_with_ttl() when `ttl`; throws std::invalid_argument as they do.
  virtual void set(std::string_view key, std::string_view value, bool ttl) = 0;
  virtual void remove(std::string_view key) = 0;
};

// A Cluster of either driver (their methods share names and meanings).
template <typename Cluster>
class ClusterControl final : public NodeControl {
 public:
  explicit ClusterControl(Cluster& cluster) : cluster_(cluster) {}

  const Node& node() const override { return cluster_.node(); }
  driver::DriverStats driver_stats() const override { return cluster_.driver_stats(); }
  driver::HookStats hook_stats() const override { return cluster_.hook_stats(); }
  void set(std::string_view key, std::string_view value, bool ttl) override {
    if (ttl) {
      cluster_.set_with_ttl(key, value);
    } else {
      cluster_.set(key, value);
    }
  }
  void remove(std::string_view key) override { cluster_.remove(key); }

 private:
  Cluster& cluster_;
};

}  // namespace aiocluster::agent
