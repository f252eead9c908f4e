#include "report.h"

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "aiocluster/common/members.h"
#include "keyring_file.h"

namespace aiocluster::agent {

namespace {

// Sorted objects: "kv" may hold every key of the cluster, and an
// insertion-ordered object finds each key by a linear search.
using Json = nlohmann::json;

Json sorted_names(const std::vector<NodeId>& ids) {
  std::set<std::string> names;
  for (const auto& id : ids) names.insert(id.name);
  return Json(names);
}

Json counters(const Stats& s, const driver::DriverStats& d) {
  Json out{
      {"packets_dropped", s.packets_dropped()},
      {"dropped_malformed", s.dropped_malformed},
      {"dropped_wrong_cluster", s.dropped_wrong_cluster},
      {"dropped_out_of_place", s.dropped_out_of_place},
      {"dropped_rate_limited", s.dropped_rate_limited},
      {"dropped_tls_nameless", s.dropped_tls_nameless},
      {"packets_sealed", s.packets_sealed},
      {"packets_opened", s.packets_opened},
      {"packets_compressed", s.packets_compressed},
      {"packets_decompressed", s.packets_decompressed},
      {"nodes_refused", s.nodes_refused},
      {"packets_in_above_max_payload", s.packets_in_above_max_payload},
      {"completeness_capped", s.completeness_capped},
      {"compact_digests_out", s.compact_digests_out},
      {"compact_digests_in", s.compact_digests_in},
      {"compact_digests_rejected", s.compact_digests_rejected},
      {"aligned_digests_out", s.aligned_digests_out},
      {"aligned_digests_in", s.aligned_digests_in},
      {"aligned_digests_mismatched", s.aligned_digests_mismatched},
      {"rejected_deltas", s.rejected_gap + s.rejected_reset + s.rejected_stale +
                              s.rejected_malformed + s.rejected_limit},
      {"connections_accepted", d.connections_accepted},
      {"connections_evicted", d.connections_evicted},
      {"connections_refused", d.connections_refused},
      {"framing_errors", d.framing_errors},
      {"large_frames_refused", d.large_frames_refused},
      {"timeouts", d.timeouts},
      {"io_errors", d.io_errors},
      {"datagrams_in", d.datagrams_in},
  };
  for (const DropReason reason : kSealDropReasons) {
    out["dropped_" + std::string(to_string(reason))] = s.dropped(reason);
  }
  for (const DropReason reason : kCompressionDropReasons) {
    out["dropped_" + std::string(to_string(reason))] = s.dropped(reason);
  }
  return out;
}

// The keyring in use, by key id (primary first), and the mode; null
// without one.
Json sealing(const SealingConfig& config) {
  if (config.keyring.empty()) return nullptr;
  Json keys = Json::array();
  for (const SealKey& key : config.keyring.keys()) keys.push_back(key_id_hex(key));
  const char* mode = config.mode == SealMode::kOpenOnly     ? "open-only"
                     : config.mode == SealMode::kPermissive ? "permissive"
                                                            : "required";
  return Json{{"mode", mode}, {"keys", std::move(keys)}};
}

}  // namespace

std::string report_line(const NodeControl& control, double seconds) {
  const Node& node = control.node();
  // Ids by value: nodes() decodes each as it goes.
  std::map<std::string, std::pair<NodeId, const NodeState*>> by_name;
  for (const auto& [id, state] : node.cluster_state().nodes()) {
    auto [it, fresh] = by_name.try_emplace(id.name, id, &state);
    if (!fresh && driver::stands_for_name(node, id, it->second.first)) it->second = {id, &state};
  }
  Json kv = Json::object();
  for (const auto& [name, member] : by_name) {
    Json keys = Json::object();
    member.second->for_each([&](std::string_view key, const VersionedValue& value) {
      if (value.visible()) keys[std::string(key)] = value.value;
    });
    kv[std::string(name)] = std::move(keys);
  }
  const Json line{{"t", std::round(seconds * 1000) / 1000},
                  {"self", node.self_id().name},
                  {"live", sorted_names(node.live_nodes())},
                  {"dead", sorted_names(node.dead_nodes())},
                  {"kv", std::move(kv)},
                  {"sealing", sealing(node.config().sealing)},
                  {"counters", counters(node.stats(), control.driver_stats())}};
  return line.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace aiocluster::agent
