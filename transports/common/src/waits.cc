#include "aiocluster/common/waits.h"

namespace aiocluster::driver {

bool has_key_value(const Node& node, std::string_view node_name, std::string_view key,
                   std::string_view value) {
  for (const auto& [id, state] : node.cluster_state().nodes()) {
    if (id.name != node_name) continue;
    const std::optional<VersionedValue> entry = state.find(key);
    if (entry && entry->visible() && entry->value == value) return true;
  }
  return false;
}

}  // namespace aiocluster::driver
