// Application hooks of a Cluster (PROTOCOL.md section 8) and the counters of
// the bounded queue that feeds them, the same for every driver. Hooks run on
// the driver's event loop, in the order the events happened; an exception
// thrown by a hook is caught and counted, never propagated into the loop.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "aiocluster/events.h"
#include "aiocluster/types.h"

namespace aiocluster::driver {

// A node entered (on_node_join) or left (on_node_leave) the live set.
using NodeHook = std::function<void(const NodeId& node)>;

// A key of `node` changed: `old_value` is none for a new key. Deletions
// arrive as a new value with status kDeleted.
using KeyChangeHook = std::function<void(const NodeId& node, const std::string& key,
                                         const std::optional<VersionedValue>& old_value,
                                         const VersionedValue& new_value)>;

// The live set changed: every live node (this one included) with its
// visible key-values. Changes are coalesced: a hook sees the set as it is
// when hooks run, at most once per batch of events, and never the same set
// twice in a row.
using LiveSetHook = std::function<void(const LiveSet& live)>;

struct HookStats {
  std::uint64_t enqueued = 0;   // events accepted into the queue
  std::uint64_t processed = 0;  // events handed to every matching hook
  std::uint64_t dropped = 0;    // events refused (queue full) or left over at stop
  std::uint64_t errors = 0;     // hook calls that threw
};

}  // namespace aiocluster::driver
