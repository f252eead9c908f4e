// The conformance suite's view of a driver: each driver (Asio, libevent, ...)
// implements Loop and TestNode in its own harness file and links the shared
// suite, so every driver passes the very same real-socket tests.
//
// A harness defines two functions:
//   std::string driver_name();
//   std::unique_ptr<Loop> make_loop();
// Nodes of one test share one Loop and run on the test's thread: the suite
// only touches a node between calls to run_until().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aiocluster/common/cluster_base.h"
#include "aiocluster/common/options.h"
#include "aiocluster/common/stats.h"
#include "aiocluster/config.h"
#include "aiocluster/node.h"
#include "aiocluster/types.h"

namespace aiocluster::conformance {

using namespace std::chrono_literals;

enum class Transport : std::uint8_t { kTcp, kUdp, kTls, kMutualTls };

struct TlsFiles {
  std::string cert;
  std::string key;
  std::string ca;
};

// One node as a test wants it; by default the harness binds 127.0.0.1 port 0.
struct NodeSpec {
  std::string name;
  std::string cluster_id = "conformance";
  Transport transport = Transport::kTcp;
  std::vector<Address> seeds;
  KeyValues key_values;
  std::string tls_name;
  std::optional<TlsFiles> tls;      // for kTls and kMutualTls
  std::string tls_server_hostname;  // driver::TlsOptions::server_hostname
  bool allow_nameless_peers = false;
  // Where to listen (and what to advertise): a numeric host and a port,
  // 0 for an ephemeral one.
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  // Where to bind instead (driver::Options::listen), e.g. "[::]:0" for a
  // dual-stack socket advertising an IPv4 host.
  std::optional<Address> listen;
  // Leave generation_id 0 for the driver to fill in from the clock; else
  // the suite picks a unique one.
  bool driver_generation = false;
  std::size_t max_inbound_payload_size = Config{}.max_inbound_payload_size;
  std::size_t max_large_frame_bytes = driver::Options{}.max_large_frame_bytes;
  Duration gossip_interval = 50ms;
  Duration io_timeout = 5s;  // connect, read and write
  std::size_t max_inbound_connections = 256;
  std::size_t max_waiting_per_host = 32;
  std::size_t hook_queue_capacity = 10'000;
  Limits limits;  // the core's
  Duration tombstone_grace = Config{}.marked_for_deletion_grace_period;
  std::function<bool(const NodeState&)> extra_liveness;  // Config::extra_liveness
  SealingConfig sealing;                                 // Config::sealing
};

// The core config a spec stands for: shared so every driver runs the same
// protocol settings (fast rounds, a failure detector scaled to them).
Config make_config(const NodeSpec& spec);

// One hook call, as recorded by TestNode::record_hooks.
struct HookRecord {
  enum class Kind : std::uint8_t { kJoin, kLeave, kKeyChange };
  Kind kind;
  NodeId node;
  std::string key;
  std::optional<VersionedValue> old_value;
  std::optional<VersionedValue> new_value;
};

// The driver's hook queue counters.
struct HookCounters {
  std::uint64_t enqueued = 0;
  std::uint64_t processed = 0;
  std::uint64_t dropped = 0;
  std::uint64_t errors = 0;
};

// The driver's socket-level counters, the same for every driver.
using TransportCounters = driver::DriverStats;

class TestNode {
 public:
  virtual ~TestNode() = default;
  virtual const NodeId& id() const = 0;
  virtual Address address() const = 0;  // bound, numeric
  virtual const Node& node() const = 0;
  virtual void set(std::string_view key, std::string_view value) = 0;
  virtual void remove(std::string_view key) = 0;
  // Graceful stop; the node object stays readable.
  virtual void stop() = 0;
  virtual HookCounters hook_counters() const = 0;
  virtual TransportCounters transport_counters() const = 0;
  // Appends every hook call to `log`, which outlives the node.
  virtual void record_hooks(std::vector<HookRecord>& log) = 0;
  // Adds a hook of each kind that throws on every call.
  virtual void add_throwing_hooks() = 0;
  // The driver's Cluster, through the API every driver shares.
  virtual driver::ClusterBase& cluster() = 0;
  // A wait on `condition`: done(true) once it holds, done(false) at the
  // timeout or stop.
  virtual void wait(std::function<bool(const Node&)> condition, Duration timeout,
                    std::function<void(bool)> done) = 0;
};

class Loop {
 public:
  virtual ~Loop() = default;
  // Builds and starts a node; it runs when the loop runs.
  virtual std::unique_ptr<TestNode> start(const NodeSpec& spec) = 0;
  // Runs the loop until done() holds (checked between slices of at most a
  // few milliseconds) or `timeout` passes; returns done().
  virtual bool run_until(const std::function<bool()>& done, Duration timeout) = 0;
  // Runs the loop until it has no work left; false when still busy at `timeout`.
  virtual bool run_until_idle(Duration timeout) = 0;
};

std::string driver_name();
std::unique_ptr<Loop> make_loop();

}  // namespace aiocluster::conformance
