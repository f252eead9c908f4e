// The conditions a driver's waits test after every input (wait until N nodes
// are live, until a node's key has a value), written once for every driver.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "aiocluster/node.h"

namespace aiocluster::driver {

// True when a node named `node_name` holds `key` = `value`, visible.
bool has_key_value(const Node& node, std::string_view node_name, std::string_view key,
                   std::string_view value);

// True when at least `count` nodes are live, this one included.
inline bool live_at_least(const Node& node, std::size_t count) {
  return node.live_nodes().size() >= count;
}

// True when some node named `node_name` holds a visible key under `prefix`.
bool has_key_under(const Node& node, std::string_view node_name, std::string_view prefix);

// The same, as the predicates of waits.
std::function<bool(const Node&)> live_at_least(std::size_t count);
std::function<bool(const Node&)> has_key_value(std::string node_name, std::string key,
                                               std::string value);
std::function<bool(const Node&)> has_key_under(std::string node_name, std::string prefix);
// The live set (see Node::live_set) satisfies `condition`.
std::function<bool(const Node&)> live_set_matches(std::function<bool(const LiveSet&)> condition);

}  // namespace aiocluster::driver
