#include "scenario.h"

#include <stdexcept>
#include <string>

namespace fuzz {

using namespace aiocluster;

Config scenario_config(int index) {
  Config config;
  config.cluster_id = kClusterId;
  const auto port = static_cast<std::uint16_t>(7000 + index);
  config.node_id = NodeId{"node-" + std::to_string(index), 1, Address{"127.0.0.1", port},
                          "node-" + std::to_string(index) + ".test"};
  config.seeds.push_back(
      Address{"127.0.0.1", static_cast<std::uint16_t>(index == 0 ? 7001 : 7000)});
  config.marked_for_deletion_grace_period = 20s;
  config.dead_node_grace_period = 120s;
  return config;
}

Node& MemCluster::add(Config config, const KeyValues& kvs) {
  nodes.push_back(std::make_unique<Node>(std::move(config), now, 1000 + nodes.size(), kvs));
  down.push_back(false);
  return *nodes.back();
}

int MemCluster::index_of(const Address& addr) const {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i]->self_id().gossip_advertise_addr == addr) return static_cast<int>(i);
  }
  return -1;
}

void MemCluster::exchange(int from, const Transmit& tx) {
  const int to = index_of(tx.to);
  if (to < 0 || down[static_cast<std::size_t>(to)]) return;
  StreamExchange initiating = StreamExchange::initiate(tx.payload);
  StreamExchange responding = StreamExchange::respond();
  run_in_process(*nodes[static_cast<std::size_t>(from)], initiating,
                 *nodes[static_cast<std::size_t>(to)], responding, now,
                 [&](ByteView packet, StreamExchange::Role sender) {
                   const bool forward = sender == StreamExchange::Role::kInitiator;
                   // The stage the receiving end reads it at.
                   const Stage stage = forward ? responding.stage() : initiating.stage();
                   if (observer) observer(forward ? from : to, forward ? to : from, stage, packet);
                   return true;
                 });
}

void MemCluster::step(Duration step) {
  now += step;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (down[i]) continue;
    nodes[i]->handle_timeout(now);
    while (auto tx = nodes[i]->poll_transmit()) exchange(static_cast<int>(i), *tx);
    while (nodes[i]->poll_event()) {
    }
  }
}

void MemCluster::run(Duration total) {
  for (Duration t{}; t < total; t += 1s) step(1s);
}

bool MemCluster::converged() const {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (down[i]) continue;
    for (std::size_t j = 0; j < nodes.size(); ++j) {
      if (down[j]) continue;
      const NodeId& id = nodes[j]->self_id();
      const NodeState* st = nodes[i]->node_state(id);
      if (!nodes[i]->is_live(id) || st == nullptr ||
          st->max_version() != nodes[j]->cluster_state().self().max_version()) {
        return false;
      }
    }
  }
  return true;
}

MemCluster build_scenario() {
  MemCluster c;
  for (int i = 0; i < 5; ++i) {
    c.add(scenario_config(i),
          {{"role", "r" + std::to_string(i)}, {"zone", "z" + std::to_string(i % 2)}});
  }
  c.run(20s);

  // Keys, tombstones of both kinds, and TTL values on two owners.
  Node& n1 = *c.nodes[1];
  for (int k = 0; k < 10; ++k) n1.set("k" + std::to_string(k), "value-" + std::to_string(k));
  n1.remove("k3");
  n1.delete_after_ttl("k5");
  n1.set_with_ttl("lease", "held");
  Node& n2 = *c.nodes[2];
  n2.set("a", "1");
  n2.set("b", "2");
  n2.remove("a");
  c.run(10s);
  // Past the tombstone grace: owners and replicas collect them, so
  // last_gc_version is above zero.
  c.run(25s);
  n1.set("k10", "after-gc");
  n1.set("k1", "rewritten");
  n2.set("c", "3");
  c.run(5s);

  // Node 4 crashes; run until node 0 has scheduled it for deletion.
  c.down[4] = true;
  const NodeId crashed = c.nodes[4]->self_id();
  for (int i = 0; i < 300; ++i) {
    const NodeState* st = c.nodes[0]->node_state(crashed);
    if (st != nullptr && st->scheduled_for_deletion()) break;
    c.step(1s);
  }
  const NodeState* st = c.nodes[0]->node_state(crashed);
  if (st == nullptr || !st->scheduled_for_deletion() ||
      c.nodes[0]->cluster_state().nodes().at(c.nodes[1]->self_id()).last_gc_version() == 0) {
    throw std::logic_error("the fuzz scenario did not reach its intended state");
  }
  return c;
}

}  // namespace fuzz
