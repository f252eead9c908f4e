// The Asio driver's side of the conformance suite.
#include <asio/io_context.hpp>
#include <stdexcept>

#include "aiocluster/asio/cluster.h"
#include "harness.h"

namespace aiocluster::conformance {

namespace {

namespace ad = aiocluster::asio_driver;

class AsioNode final : public TestNode {
 public:
  AsioNode(::asio::io_context& io, const NodeSpec& spec)
      : cluster_(io, make_config(spec), spec.key_values, options(spec)) {
    cluster_.start();
  }

  const NodeId& id() const override { return cluster_.self_id(); }
  Address address() const override { return cluster_.local_address(); }
  const Node& node() const override { return cluster_.node(); }
  void set(std::string_view key, std::string_view value) override { cluster_.set(key, value); }
  void remove(std::string_view key) override { cluster_.remove(key); }
  void stop() override { cluster_.stop(); }

  HookCounters hook_counters() const override {
    const ad::HookStats s = cluster_.hook_stats();
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

  void add_throwing_hooks() override {
    cluster_.on_node_join([](const NodeId&) { throw std::runtime_error("join hook"); });
    cluster_.on_node_leave([](const NodeId&) { throw std::runtime_error("leave hook"); });
    cluster_.on_key_change([](const NodeId&, const std::string&,
                              const std::optional<VersionedValue>&,
                              const VersionedValue&) { throw 42; });
  }

 private:
  static ad::Options options(const NodeSpec& spec) {
    ad::Options o;
    o.transport = spec.transport == Transport::kUdp ? ad::Transport::kUdp : ad::Transport::kTcp;
    if (spec.tls) {
      o.tls = ad::TlsOptions{spec.tls->cert, spec.tls->key, spec.tls->ca,
                             spec.transport == Transport::kMutualTls};
    }
    o.connect_timeout = o.read_timeout = o.write_timeout = spec.io_timeout;
    o.max_inbound_connections = spec.max_inbound_connections;
    o.max_waiting_per_host = spec.max_waiting_per_host;
    o.hook_queue_capacity = spec.hook_queue_capacity;
    return o;
  }

  ad::Cluster cluster_;
};

class AsioLoop final : public Loop {
 public:
  std::unique_ptr<TestNode> start(const NodeSpec& spec) override {
    return std::make_unique<AsioNode>(io_, spec);
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
