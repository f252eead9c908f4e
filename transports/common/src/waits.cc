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

bool has_key_under(const Node& node, std::string_view node_name, std::string_view prefix) {
  for (const auto& [id, state] : node.cluster_state().nodes()) {
    if (id.name != node_name) continue;
    bool found = false;
    state.for_each([&](std::string_view key, const VersionedValue& vv) {
      found = found || (vv.visible() && key.starts_with(prefix));
    });
    if (found) return true;
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

std::function<bool(const Node&)> has_key_under(std::string node_name, std::string prefix) {
  return [node_name = std::move(node_name), prefix = std::move(prefix)](const Node& node) {
    return has_key_under(node, node_name, prefix);
  };
}

std::function<bool(const Node&)> live_set_matches(std::function<bool(const LiveSet&)> condition) {
  return
      [condition = std::move(condition)](const Node& node) { return condition(node.live_set()); };
}

}  // namespace aiocluster::driver
