#include "aiocluster/common/cluster_base.h"

#include "aiocluster/common/waits.h"
#include "driver_common/driver_core.h"

namespace aiocluster::driver {

void ClusterBase::build(detail::DriverCore& core, Config config,
                        const KeyValues& initial_key_values,
                        const std::function<Address(const Config&)>& bind) {
  // Port 0 is ours to fill in after binding, generation 0 from the clock;
  // everything else is checked before touching a socket.
  detail::DriverCore::check(config, core.options());
  Address bound = bind(config);
  core.build(std::move(config), initial_key_values, std::move(bound));
  core_ = &core;
}

bool ClusterBase::running() const { return core_->started() && !core_->stopped(); }
const NodeId& ClusterBase::self_id() const { return core_->node().self_id(); }
Address ClusterBase::local_address() const { return core_->bound(); }

void ClusterBase::set(std::string_view key, std::string_view value) {
  core_->mutate([&](Node& node) { node.set(key, value); });
}
void ClusterBase::remove(std::string_view key) {
  core_->mutate([&](Node& node) { node.remove(key); });
}
void ClusterBase::set_with_ttl(std::string_view key, std::string_view value) {
  core_->mutate([&](Node& node) { node.set_with_ttl(key, value); });
}
void ClusterBase::delete_after_ttl(std::string_view key) {
  core_->mutate([&](Node& node) { node.delete_after_ttl(key); });
}
std::optional<std::string> ClusterBase::get(std::string_view key) const {
  return core_->node().get(key);
}

void ClusterBase::install_key(const SealKey& key) {
  core_->mutate([&](Node& node) { node.install_key(key); });
}
void ClusterBase::make_primary_key(const SealKey& key) {
  core_->mutate([&](Node& node) { node.make_primary_key(key); });
}
bool ClusterBase::remove_key(const SealKey& key) {
  bool removed = false;
  core_->mutate([&](Node& node) { removed = node.remove_key(key); });
  return removed;
}
void ClusterBase::set_keyring(const Keyring& keyring) {
  core_->mutate([&](Node& node) { node.set_keyring(keyring); });
}
void ClusterBase::set_seal_mode(SealMode mode) {
  core_->mutate([&](Node& node) { node.set_seal_mode(mode); });
}

std::vector<NodeId> ClusterBase::live_nodes() const { return core_->node().live_nodes(); }
std::vector<NodeId> ClusterBase::dead_nodes() const { return core_->node().dead_nodes(); }
ClusterSnapshot ClusterBase::snapshot() const { return core_->node().snapshot(); }
const Stats& ClusterBase::stats() const { return core_->node().stats(); }
DriverStats ClusterBase::driver_stats() const { return core_->stats(); }
HookStats ClusterBase::hook_stats() const { return core_->hooks().stats(); }
const Node& ClusterBase::node() const { return core_->node(); }

void ClusterBase::on_node_join(NodeHook hook) { core_->hooks().add_join(std::move(hook)); }
void ClusterBase::on_node_leave(NodeHook hook) { core_->hooks().add_leave(std::move(hook)); }
void ClusterBase::on_key_change(KeyChangeHook hook) {
  core_->hooks().add_key_change(std::move(hook));
}

void ClusterBase::on_key_change(std::string prefix, KeyChangeHook hook) {
  core_->hooks().add_key_change(std::move(hook), std::move(prefix));
}
void ClusterBase::on_replica_reset(NodeHook hook) {
  core_->hooks().add_replica_reset(std::move(hook));
}
void ClusterBase::on_live_set(LiveSetHook hook) { core_->watch_live_set(std::move(hook)); }
LiveSet ClusterBase::live_set() const { return core_->node().live_set(); }

bool ClusterBase::has_key_value(const Node& node, std::string_view node_name, std::string_view key,
                                std::string_view value) {
  return driver::has_key_value(node, node_name, key, value);
}

}  // namespace aiocluster::driver
