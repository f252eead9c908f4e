// The conditions a driver's waits test after every input (wait until N nodes
// are live, until a node's key has a value), written once for every driver.
#pragma once

#include <cstddef>
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

}  // namespace aiocluster::driver
