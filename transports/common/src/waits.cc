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

std::function<bool(const Node&)> live_at_least(std::size_t count) {
  return [count](const Node& node) { return live_at_least(node, count); };
}

std::function<bool(const Node&)> has_key_value(std::string node_name, std::string key,
                                               std::string value) {
  return [node_name = std::move(node_name), key = std::move(key), value = std::move(value)](
             const Node& node) { return has_key_value(node, node_name, key, value); };
}

}  // namespace aiocluster::driver
