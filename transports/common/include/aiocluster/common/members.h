// How this node sees each member it knows (live, dead, or dead long enough
// to be scheduled for deletion), and which incarnation a bare name means.
// The JSON documents, the metrics and the node agent share these answers.
#pragma once

#include <optional>
#include <string_view>

#include "aiocluster/node.h"

namespace aiocluster::driver {

enum class MemberState {
  kLive,
  kDead,                  // phi above the threshold
  kScheduledForDeletion,  // dead for half the dead-node grace period (PROTOCOL.md section 6)
};

MemberState member_state(const Node& node, const NodeId& id);
// "live", "dead", "scheduled_for_deletion".
std::string_view to_string(MemberState state);

// The incarnation a name stands for when several share it (a restarted
// node keeps its name): the live one, else the newest generation. nullopt
// when the node knows no member of that name.
std::optional<NodeId> member_by_name(const Node& node, std::string_view name);
// That rule for two incarnations of one name: whether `candidate` rather
// than `held` is the one the name stands for.
bool stands_for_name(const Node& node, const NodeId& candidate, const NodeId& held);

}  // namespace aiocluster::driver
