// What the conformance tests check on a group of nodes, and how they start
// one: shared by the behavioural suite and the hostile-input suite.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "harness.h"

namespace aiocluster::conformance {

inline constexpr Duration kPatience = 20s;  // generous: sanitizers and a busy machine

inline std::set<std::string> live_names(const TestNode& n) {
  std::set<std::string> out;
  for (const auto& id : n.node().live_nodes()) out.insert(id.name);
  return out;
}

inline std::set<std::string> known_names(const TestNode& n) {
  std::set<std::string> out;
  for (const auto& [id, state] : n.node().cluster_state().nodes()) out.insert(id.name);
  return out;
}

inline bool dead_in(const TestNode& n, const NodeId& id) {
  const auto dead = n.node().dead_nodes();
  return std::find(dead.begin(), dead.end(), id) != dead.end() && !n.node().is_live(id);
}

// The visible value of `key` of the node called `name`, as `n` sees it.
inline std::optional<std::string> value_seen(const TestNode& n, std::string_view name,
                                             std::string_view key) {
  for (const auto& [id, state] : n.node().cluster_state().nodes()) {
    if (id.name != name) continue;
    const std::optional<VersionedValue> v = state.find(key);
    if (v && v->visible()) return v->value;
  }
  return std::nullopt;
}

using Nodes = std::vector<std::unique_ptr<TestNode>>;

// Every node lists every node live and sees every node's "id" key.
inline bool converged(const Nodes& nodes) {
  std::set<std::string> all;
  for (const auto& n : nodes) all.insert(n->id().name);
  for (const auto& n : nodes) {
    if (live_names(*n) != all) return false;
    for (const auto& m : nodes) {
      if (value_seen(*n, m->id().name, "id") != m->id().name) return false;
    }
  }
  return true;
}

// What each node sees, for the log of a failed check.
inline std::string describe(const Nodes& nodes) {
  std::string out;
  for (const auto& n : nodes) {
    const Stats& s = n->node().stats();
    const TransportCounters t = n->transport_counters();
    out += "\n  " + n->id().name + " live:";
    for (const auto& name : live_names(*n)) out += " " + name;
    out += " | known " + std::to_string(n->node().cluster_state().size()) + ", rounds " +
           std::to_string(s.rounds) + ", syn in/out " + std::to_string(s.packets_in.syn) + "/" +
           std::to_string(s.packets_out.syn) + ", synack in " +
           std::to_string(s.packets_in.synack) + ", ack in " + std::to_string(s.packets_in.ack) +
           ", tls failures " + std::to_string(t.tls_failures) + ", timeouts " +
           std::to_string(t.timeouts);
  }
  return out;
}

// Starts `count` nodes, each seeded with the previous one (the first with
// none), each holding key "id" = its name.
inline Nodes start_chain(Loop& loop, std::size_t count, NodeSpec base) {
  Nodes nodes;
  for (std::size_t i = 0; i < count; ++i) {
    NodeSpec spec = base;
    spec.name = base.name + std::to_string(i + 1);
    spec.key_values.emplace_back("id", spec.name);
    if (!nodes.empty()) spec.seeds = {nodes.back()->address()};
    nodes.push_back(loop.start(spec));
  }
  return nodes;
}

}  // namespace aiocluster::conformance
