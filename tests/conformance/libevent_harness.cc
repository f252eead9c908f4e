// The libevent driver's side of the conformance suite.
#include <event2/event.h>

#include <csignal>
#include <stdexcept>

#include "aiocluster/libevent/cluster.h"
#include "harness.h"

namespace aiocluster::conformance {

namespace {

namespace ld = aiocluster::libevent_driver;

class LibeventNode final : public TestNode {
 public:
  LibeventNode(event_base* base, const NodeSpec& spec)
      : cluster_(base, make_config(spec), spec.key_values, options(spec)) {
    cluster_.start();
  }

  const NodeId& id() const override { return cluster_.self_id(); }
  Address address() const override { return cluster_.local_address(); }
  const Node& node() const override { return cluster_.node(); }
  void set(std::string_view key, std::string_view value) override { cluster_.set(key, value); }
  void remove(std::string_view key) override { cluster_.remove(key); }
  void stop() override { cluster_.stop(); }

  HookCounters hook_counters() const override {
    const ld::HookStats s = cluster_.hook_stats();
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
  static ld::Options options(const NodeSpec& spec) {
    ld::Options o;
    o.transport = spec.transport == Transport::kUdp ? ld::Transport::kUdp : ld::Transport::kTcp;
    if (spec.tls) {
      o.tls = ld::TlsOptions{spec.tls->cert, spec.tls->key, spec.tls->ca,
                             spec.transport == Transport::kMutualTls};
    }
    o.connect_timeout = o.read_timeout = o.write_timeout = spec.io_timeout;
    o.max_inbound_connections = spec.max_inbound_connections;
    o.max_waiting_per_host = spec.max_waiting_per_host;
    o.hook_queue_capacity = spec.hook_queue_capacity;
    return o;
  }

  ld::Cluster cluster_;
};

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
    return std::make_unique<LibeventNode>(base_, spec);
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
