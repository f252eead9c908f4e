// Nodes wired together in memory on virtual time, for the core's tests: every
// Syn a node emits is carried through a whole stream exchange at once, unless
// a link is cut.
#pragma once

#include <aiocluster/aiocluster.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace testing {

using namespace aiocluster;
using namespace std::chrono_literals;

inline Instant t0() { return Instant{} + 1000h; }

inline Config make_config(int index, std::vector<int> seeds = {}) {
  Config config;
  config.cluster_id = "test-cluster";
  config.node_id = NodeId{"node" + std::to_string(index), 1,
                          Address{"127.0.0.1", static_cast<std::uint16_t>(7000 + index)}, ""};
  for (int s : seeds)
    config.seeds.push_back(Address{"127.0.0.1", static_cast<std::uint16_t>(7000 + s)});
  return config;
}

struct MemCluster {
  std::vector<std::unique_ptr<Node>> nodes;
  std::vector<bool> down;             // crashed: neither sends nor answers
  std::set<std::pair<int, int>> cut;  // directed links that lose every packet
  Instant now = t0();
  std::function<void(ByteView)> on_packet;  // sees every packet sent
  std::size_t exchanges = 0;

  // Nodes 0..n-1, node i seeded with node (i+1) % n.
  static MemCluster ring(int n, const std::function<void(Config&)>& tweak = {}) {
    MemCluster c;
    for (int i = 0; i < n; ++i) {
      Config config = make_config(i, {(i + 1) % n});
      if (tweak) tweak(config);
      c.add(std::move(config), {{"cluster", std::to_string(i)}});
    }
    return c;
  }

  Node& add(Config config, const KeyValues& kvs = {}) {
    nodes.push_back(std::make_unique<Node>(std::move(config), now, 42 + nodes.size(), kvs));
    down.push_back(false);
    return *nodes.back();
  }

  int index_of(const Address& addr) const {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i]->self_id().gossip_advertise_addr == addr) return static_cast<int>(i);
    }
    return -1;
  }

  bool link_up(int from, int to) const {
    return !down[to] && !down[from] && !cut.contains({from, to});
  }

  void exchange(int from, const Transmit& tx) {
    const int to = index_of(tx.to);
    if (to < 0) {
      if (on_packet) on_packet(tx.payload);
      return;
    }
    if (link_up(from, to)) ++exchanges;
    StreamExchange initiating = StreamExchange::initiate(tx.payload);
    StreamExchange responding = StreamExchange::respond();
    run_in_process(*nodes[from], initiating, *nodes[to], responding, now,
                   [&](ByteView packet, StreamExchange::Role sender) {
                     if (on_packet) on_packet(packet);
                     return sender == StreamExchange::Role::kInitiator ? link_up(from, to)
                                                                       : link_up(to, from);
                   });
  }

  // Advances virtual time by `step`, running every due round.
  void step(Duration step = 1s) {
    now += step;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (down[i]) continue;
      nodes[i]->handle_timeout(now);
      while (auto tx = nodes[i]->poll_transmit()) exchange(static_cast<int>(i), *tx);
    }
  }

  void run(Duration total, Duration step_size = 1s) {
    for (Duration t{}; t < total; t += step_size) step(step_size);
  }

  // Every up node sees every other up node live, with its max_version.
  bool converged() const {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (down[i]) continue;
      for (std::size_t j = 0; j < nodes.size(); ++j) {
        if (down[j]) continue;
        const NodeId& id = nodes[j]->self_id();
        if (!nodes[i]->is_live(id)) return false;
        const NodeState* st = nodes[i]->node_state(id);
        if (st == nullptr || st->max_version() != nodes[j]->cluster_state().self().max_version())
          return false;
      }
    }
    return true;
  }

  std::optional<std::string> value_seen(int observer, int owner, const std::string& key) const {
    const NodeState* st = nodes[observer]->node_state(nodes[owner]->self_id());
    if (st == nullptr) return std::nullopt;
    return st->value(key);
  }

  std::vector<Event> drain(int i) {
    std::vector<Event> out;
    while (auto ev = nodes[i]->poll_event()) out.push_back(std::move(*ev));
    return out;
  }
};

}  // namespace testing
