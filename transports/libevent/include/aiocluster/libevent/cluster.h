// A cluster member over an application-owned libevent event_base: it owns
// the sockets (bufferevents for TCP and TLS, a non-blocking UDP socket) and
// one timer, feeds an aiocluster::Node with bytes and the steady clock, and
// runs the application's hooks from the event_base.
//
//   event_base* base = event_base_new();
//   aiocluster::Config config;
//   config.cluster_id = "prod";
//   config.node_id = {"node-1", generation, {"10.0.0.1", 7000}, ""};
//   config.seeds = {{"10.0.0.2", 7000}};
//   aiocluster::libevent_driver::Cluster cluster(base, config, {{"role", "db"}});
//   cluster.on_node_join([](const aiocluster::NodeId& id) { ... });
//   cluster.start();
//   cluster.wait_live(3, 30s, [](std::error_code ec) { ... });
//   event_base_dispatch(base);
//
// Threading: libevent style, one thread. Call the methods of Cluster on the
// thread that runs the event_base (or before it runs). The base must outlive
// the Cluster; after stop() nothing of the Cluster stays registered on it
// except wait completions not yet delivered, so run the base until it is
// out of events before freeing it.
//
// Like every libevent program, ignore SIGPIPE (libevent writes to sockets
// with plain write calls): a peer closing mid-write must not kill the process.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "aiocluster/common/cluster_base.h"
#include "aiocluster/common/stats.h"
#include "aiocluster/config.h"
#include "aiocluster/libevent/hooks.h"
#include "aiocluster/libevent/options.h"
#include "aiocluster/node.h"
#include "aiocluster/stats.h"
#include "aiocluster/types.h"

struct event_base;
struct evdns_base;

namespace aiocluster::libevent_driver {

using driver::DriverStats;

namespace detail {
struct ClusterImpl;
}

// The key-values, the view of the cluster, the counters and the hooks are
// those of every driver (driver::ClusterBase): set, remove, set_with_ttl,
// delete_after_ttl, get; live_nodes, dead_nodes, live_set, snapshot, stats,
// driver_stats, hook_stats, node; on_node_join, on_node_leave,
// on_key_change (all keys or under a prefix), on_replica_reset, on_live_set;
// self_id, local_address, running. Waits take any predicate over the Node,
// such as those of aiocluster/common/waits.h (live_set_matches,
// has_key_under).
class Cluster : public driver::ClusterBase {
 public:
  // Completion of a wait: no error, std::errc::timed_out, or
  // std::errc::operation_canceled when the cluster stops.
  using WaitHandler = std::function<void(std::error_code)>;

  // Binds the socket at once, so that port 0 resolves to the real port
  // before the node's id is fixed, and builds the node. Throws ConfigError
  // for a bad config, std::invalid_argument for bad options, and
  // std::system_error when binding or loading TLS files fails.
  Cluster(event_base* base, Config config, const KeyValues& initial_key_values = {},
          Options options = {});
  // Stops, if still running.
  ~Cluster();

  // Starts accepting, receiving and gossiping. Call once.
  void start();
  // Graceful stop: the timer is removed, every socket closed (TLS
  // connections with a close_notify), pending exchanges abandoned, waits
  // completed with std::errc::operation_canceled, and the hooks already
  // queued run for at most Options::hook_drain_timeout. Nothing of this
  // Cluster stays registered on the event_base but the wait completions.
  // Idempotent; may be called from a hook or a wait completion.
  void stop();

  event_base* base() const;
  // Resolves host names of TCP targets through the application's evdns_base,
  // which must outlive the Cluster. Without one, libevent resolves them with
  // the system resolver, blocking the loop. Numeric addresses (the usual
  // case) are never resolved.
  void use_dns(evdns_base* dns);

  // --- Waits, completed through a callback run from the event_base (never
  // inside the call that starts the wait): with no error once the condition
  // holds (checked at once and after every input), std::errc::timed_out
  // after `timeout`, std::errc::operation_canceled when the cluster stops. ---

  // Until `predicate(node())` holds.
  void wait(Predicate predicate, Duration timeout, WaitHandler handler);
  // Until at least `count` nodes are live, this one included.
  void wait_live(std::size_t count, Duration timeout, WaitHandler handler);
  // Until a node named `node_name` shows `key` with `value`.
  void wait_key(std::string node_name, std::string key, std::string value, Duration timeout,
                WaitHandler handler);

 private:
  // Shared with the hook runner while it runs, so a hook may destroy the
  // Cluster.
  std::shared_ptr<detail::ClusterImpl> impl_;
};

}  // namespace aiocluster::libevent_driver
