// The TestNode of every driver: the drivers' Cluster classes share one API
// (and driver::Options), so one adapter serves them all; a harness only
// supplies its event loop.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "aiocluster/common/options.h"
#include "harness.h"

namespace aiocluster::conformance {

// The driver options a spec stands for.
inline driver::Options driver_options(const NodeSpec& spec) {
  driver::Options o;
  o.transport =
      spec.transport == Transport::kUdp ? driver::Transport::kUdp : driver::Transport::kTcp;
  if (spec.tls) {
    o.tls.emplace();
    o.tls->cert_file = spec.tls->cert;
    o.tls->key_file = spec.tls->key;
    o.tls->ca_file = spec.tls->ca;
    o.tls->mutual = spec.transport == Transport::kMutualTls;
    o.tls->server_hostname = spec.tls_server_hostname;
    o.tls->allow_nameless_peers = spec.allow_nameless_peers;
  }
  o.listen = spec.listen;
  o.max_large_frame_bytes = spec.max_large_frame_bytes;
  o.connect_timeout = o.read_timeout = o.write_timeout = spec.io_timeout;
  o.max_inbound_connections = spec.max_inbound_connections;
  o.max_waiting_per_host = spec.max_waiting_per_host;
  o.hook_queue_capacity = spec.hook_queue_capacity;
  return o;
}

// `Cluster` is a driver's cluster class, built on `LoopHandle` (an
// io_context&, an event_base*...).
template <typename Cluster>
class ClusterNode final : public TestNode {
 public:
  template <typename LoopHandle>
  ClusterNode(LoopHandle&& loop, const NodeSpec& spec)
      : cluster_(loop, make_config(spec), spec.key_values, driver_options(spec)) {
    cluster_.start();
  }

  const NodeId& id() const override { return cluster_.self_id(); }
  Address address() const override { return cluster_.local_address(); }
  const Node& node() const override { return cluster_.node(); }
  void set(std::string_view key, std::string_view value) override { cluster_.set(key, value); }
  void remove(std::string_view key) override { cluster_.remove(key); }
  void stop() override { cluster_.stop(); }

  HookCounters hook_counters() const override {
    const driver::HookStats s = cluster_.hook_stats();
    return {s.enqueued, s.processed, s.dropped, s.errors};
  }

  TransportCounters transport_counters() const override { return cluster_.driver_stats(); }

  void record_hooks(std::vector<HookRecord>& log) override {
    cluster_.on_node_join([&log](const NodeId& id) {
      log.push_back({HookRecord::Kind::kJoin, id, {}, {}, {}});
    });
    cluster_.on_node_leave([&log](const NodeId& id) {
      log.push_back({HookRecord::Kind::kLeave, id, {}, {}, {}});
    });
    cluster_.on_key_change([&log](const NodeId& id, const std::string& key,
                                  const std::optional<VersionedValue>& old_value,
                                  const VersionedValue& new_value) {
      log.push_back({HookRecord::Kind::kKeyChange, id, key, old_value, new_value});
    });
  }

  driver::ClusterBase& cluster() override { return cluster_; }

  void wait(std::function<bool(const Node&)> condition, Duration timeout,
            std::function<void(bool)> done) override {
    auto handler = [done = std::move(done)](std::error_code ec) { done(!ec); };
    if constexpr (requires { cluster_.async_wait(condition, timeout, handler); }) {
      cluster_.async_wait(std::move(condition), timeout, std::move(handler));
    } else {
      cluster_.wait(std::move(condition), timeout, std::move(handler));
    }
  }

  void add_throwing_hooks() override {
    cluster_.on_node_join([](const NodeId&) { throw std::runtime_error("join hook"); });
    cluster_.on_node_leave([](const NodeId&) { throw std::runtime_error("leave hook"); });
    cluster_.on_key_change([](const NodeId&, const std::string&,
                              const std::optional<VersionedValue>&,
                              const VersionedValue&) { throw 42; });
  }

 private:
  Cluster cluster_;
};

}  // namespace aiocluster::conformance
