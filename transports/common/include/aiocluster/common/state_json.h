// JSON documents of what a node sees, for an application that serves them
// from its own HTTP endpoint or writes them to a log; the node agent's HTTP
// API answers with exactly these. Call them where the node may be read (the
// loop of a libevent Cluster, the strand of an Asio Cluster).
//
//   reply(200, "application/json", aiocluster::driver::cluster_json(
//       cluster.node(), cluster.driver_stats(), cluster.hook_stats()));
//
// Node ids appear as {"name", "generation", "address", "tls_name"}; the
// generation is a string of decimal digits, as 64-bit integers do not survive
// JavaScript's numbers. Key-values appear as {"value", "version", "status"},
// status one of "set", "deleted", "delete_after_ttl".
#pragma once

#include <string>
#include <string_view>

#include "aiocluster/common/hooks.h"
#include "aiocluster/common/stats.h"
#include "aiocluster/events.h"
#include "aiocluster/node.h"

namespace aiocluster::driver {

// Everything a snapshot holds: {"self": id, "nodes": [{"id", "heartbeat",
// "max_version", "last_gc_version", "live", "key_values": {key: value}}]}.
std::string snapshot_json(const ClusterSnapshot& snapshot);

// The cluster at a glance: {"self": id, "cluster_id", "phi_threshold",
// "gossip_interval_ms", "live", "dead", "members": [{id fields, "state",
// "self", "phi" (null while undefined), "heartbeat", "max_version",
// "last_gc_version", "keys" (entries, tombstones included)}], "stats",
// "driver", "hooks"} -- the counters under their C++ field names.
std::string cluster_json(const Node& node, const DriverStats& driver, const HookStats& hooks);

// One member's key-values whose key starts with `prefix`, tombstones
// included: {"member": id, "state", "key_values": {key: value}}.
std::string member_keys_json(const Node& node, const NodeId& member, std::string_view prefix = {});

// `key` on every member that holds it, tombstones included:
// {"key", "members": [{id fields, "value", "version", "status"}]}.
std::string key_json(const Node& node, std::string_view key);

// A node event: {"type": "join" | "leave", "member": id} or {"type": "key",
// "member": id, "key", "old" (a value or null), "new": value}.
std::string event_json(const Event& event);

// "set", "deleted", "delete_after_ttl": a key's status as these documents
// write it.
std::string_view to_string(KeyStatus status);

}  // namespace aiocluster::driver
