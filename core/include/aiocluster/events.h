// What a Node tells its application, in the order it happens
// (PROTOCOL.md section 8).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "aiocluster/types.h"

namespace aiocluster {

// A node entered the live set: the failure detector hears it, and
// Config::extra_liveness (if any) holds for its key-values.
struct NodeJoined {
  NodeId node;
};

// A node left the live set: the failure detector no longer hears it, or
// Config::extra_liveness stopped holding.
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

// This node's replica of `node` was wiped and rebuilt from the owner's full
// state: the owner had garbage-collected deletions this node never saw. The
// keys that went meanwhile come as KeyChanged deletions; an application that
// derives state from the node's keys may want to rebuild it.
struct ReplicaReset {
  NodeId node;
};

using Event = std::variant<NodeJoined, NodeLeft, KeyChanged, ReplicaReset>;

// Whether a key change is one a subscription to `prefix` receives.
inline bool under_prefix(const KeyChanged& change, std::string_view prefix) {
  return std::string_view(change.key).starts_with(prefix);
}

// One member of the live set: its id and visible key-values.
struct LiveMember {
  NodeId id;
  std::map<std::string, std::string, std::less<>> key_values;
  bool operator==(const LiveMember&) const = default;
};

// The live nodes, this one included, in id order.
using LiveSet = std::vector<LiveMember>;

}  // namespace aiocluster
