// What a Node tells its application, in the order it happens
// (PROTOCOL.md section 8).
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "aiocluster/types.h"

namespace aiocluster {

// A node entered the live set.
struct NodeJoined {
  NodeId node;
};

// A node left the live set: the failure detector no longer hears it.
struct NodeLeft {
  NodeId node;
};

// A key of some node changed, by a local mutation or an applied delta.
struct KeyChanged {
  NodeId node;
  std::string key;
  std::optional<VersionedValue> old_value;
  VersionedValue new_value;
};

using Event = std::variant<NodeJoined, NodeLeft, KeyChanged>;

}  // namespace aiocluster
