#include "aiocluster/common/members.h"

namespace aiocluster::driver {

MemberState member_state(const Node& node, const NodeId& id) {
  if (node.is_live(id)) return MemberState::kLive;
  const NodeState* state = node.node_state(id);
  if (state != nullptr && state->scheduled_for_deletion())
    return MemberState::kScheduledForDeletion;
  return MemberState::kDead;
}

std::string_view to_string(MemberState state) {
  switch (state) {
    case MemberState::kLive:
      return "live";
    case MemberState::kDead:
      return "dead";
    case MemberState::kScheduledForDeletion:
      return "scheduled_for_deletion";
  }
  return "dead";
}

bool stands_for_name(const Node& node, const NodeId& candidate, const NodeId& held) {
  const bool live = node.is_live(candidate);
  if (live != node.is_live(held)) return live;
  return candidate.generation_id > held.generation_id;
}

std::optional<NodeId> member_by_name(const Node& node, std::string_view name) {
  std::optional<NodeId> best;
  for (const auto& [id, state] : node.cluster_state().nodes()) {
    if (id.name == name && (!best || stands_for_name(node, id, *best))) best = id;
  }
  return best;
}

}  // namespace aiocluster::driver
