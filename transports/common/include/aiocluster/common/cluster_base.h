// What every driver's Cluster offers besides its event loop: this node's
// key-values, the cluster as it sees it, the counters and the hooks. The
// Asio and libevent Clusters derive from it, so code written against a
// ClusterBase& runs on either. Call it on the driver's loop (see each
// driver's threading notes).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aiocluster/common/hooks.h"
#include "aiocluster/common/stats.h"
#include "aiocluster/config.h"
#include "aiocluster/node.h"
#include "aiocluster/sealing.h"
#include "aiocluster/stats.h"
#include "aiocluster/types.h"

namespace aiocluster::driver {

namespace detail {
class DriverCore;
}

class ClusterBase {
 public:
  using Predicate = std::function<bool(const Node&)>;

  ClusterBase(const ClusterBase&) = delete;
  ClusterBase& operator=(const ClusterBase&) = delete;

  // Started and not yet stopped.
  bool running() const;
  const NodeId& self_id() const;
  // The bound address (numeric).
  Address local_address() const;

  // --- This node's key-values (PROTOCOL.md section 4). ---
  void set(std::string_view key, std::string_view value);
  void remove(std::string_view key);
  void set_with_ttl(std::string_view key, std::string_view value);
  void delete_after_ttl(std::string_view key);
  std::optional<std::string> get(std::string_view key) const;

  // --- Sealed gossip (proto/README.md section 4): the keyring and mode at
  // run time, as Node's calls of the same names (the node's config sets
  // them at start). Each takes effect with the next packet. ---
  void install_key(const SealKey& key);
  void make_primary_key(const SealKey& key);
  // False when not installed; throws std::invalid_argument for the primary.
  bool remove_key(const SealKey& key);
  // Throws std::invalid_argument when empty.
  void set_keyring(const Keyring& keyring);
  void set_seal_mode(SealMode mode);

  // --- The cluster as this node sees it. ---
  std::vector<NodeId> live_nodes() const;  // self included
  std::vector<NodeId> dead_nodes() const;
  ClusterSnapshot snapshot() const;
  const Stats& stats() const;
  DriverStats driver_stats() const;
  HookStats hook_stats() const;
  // Read access to the core, for what the shortcuts above leave out.
  const Node& node() const;

  // --- Hooks: any number of each, called in registration order. ---
  void on_node_join(NodeHook hook);
  void on_node_leave(NodeHook hook);
  void on_key_change(KeyChangeHook hook);
  // Only the changes of keys that start with `prefix`.
  void on_key_change(std::string prefix, KeyChangeHook hook);
  // The replica of a node was reset (see aiocluster::ReplicaReset).
  void on_replica_reset(NodeHook hook);
  // The live set, now and whenever it changes (coalesced, see LiveSetHook).
  void on_live_set(LiveSetHook hook);
  // The live nodes with their visible key-values, this one included.
  LiveSet live_set() const;

  // True when a node named `node_name` holds `key` = `value`, visible.
  static bool has_key_value(const Node& node, std::string_view node_name, std::string_view key,
                            std::string_view value);

 protected:
  ClusterBase() = default;
  ~ClusterBase() = default;
  // The driver's constructor: checks `config` and the options, binds
  // (`bind` returns the bound address, numeric) and builds the node in `core`.
  void build(detail::DriverCore& core, Config config, const KeyValues& initial_key_values,
             const std::function<Address(const Config&)>& bind);

 private:
  detail::DriverCore* core_ = nullptr;
};

}  // namespace aiocluster::driver
