// The agent's report line: one JSON object of what this node sees, printed
// every --report-ms. Its fields are a contract (tests/bombard reads them):
//   {"t": seconds since start, "self": name, "live": [names], "dead": [names],
//    "kv": {name: {key: value}}, "counters": {...}}
// "kv" holds each member's visible keys, the incarnation a name stands for
// (live first, then the newest generation); "counters" what the node refused
// and what its sockets saw.
#pragma once

#include <string>

#include "node_control.h"

namespace aiocluster::agent {

// On the node's loop.
std::string report_line(const NodeControl& node, double seconds);

}  // namespace aiocluster::agent
