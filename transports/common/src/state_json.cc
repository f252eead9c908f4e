#include "aiocluster/common/state_json.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "aiocluster/common/members.h"

namespace aiocluster::driver {

namespace {

// Objects keep their keys sorted (std::map): a member may hold a million
// keys, and an insertion-ordered object finds each key by a linear search.
using Json = nlohmann::json;

// The core only holds UTF-8; should anything else slip in, it is replaced
// rather than thrown at the caller.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

void add_id_fields(Json& j, const NodeId& id) {
  j["name"] = id.name;
  j["generation"] = std::to_string(id.generation_id);
  j["address"] = id.gossip_advertise_addr.to_string();
  j["tls_name"] = id.tls_name;
}

Json id_json(const NodeId& id) {
  Json j = Json::object();
  add_id_fields(j, id);
  return j;
}

Json value_json(const VersionedValue& v) {
  return Json{{"value", v.value}, {"version", v.version}, {"status", to_string(v.status)}};
}

Json stats_json(const Stats& s) {
  const auto counts = [](const MessageCounts& c) {
    return Json{
        {"syn", c.syn}, {"synack", c.synack}, {"ack", c.ack}, {"bad_cluster", c.bad_cluster}};
  };
  Json out{{"packets_in", counts(s.packets_in)},
           {"packets_out", counts(s.packets_out)},
           {"bytes_in", s.bytes_in},
           {"bytes_out", s.bytes_out},
           {"packets_in_above_max_payload", s.packets_in_above_max_payload},
           {"packets_dropped", s.packets_dropped()},
           {"dropped_oversized", s.dropped_oversized},
           {"dropped_malformed", s.dropped_malformed},
           {"dropped_unknown_message", s.dropped_unknown_message},
           {"dropped_wrong_cluster", s.dropped_wrong_cluster},
           {"dropped_out_of_place", s.dropped_out_of_place},
           {"dropped_tls_name", s.dropped_tls_name},
           {"dropped_tls_nameless", s.dropped_tls_nameless},
           {"dropped_rate_limited", s.dropped_rate_limited},
           {"packets_sealed", s.packets_sealed},
           {"packets_opened", s.packets_opened},
           {"packets_compressed", s.packets_compressed},
           {"packets_decompressed", s.packets_decompressed},
           {"node_deltas_applied", s.node_deltas_applied},
           {"resets_applied", s.resets_applied},
           {"rejected_gap", s.rejected_gap},
           {"rejected_reset", s.rejected_reset},
           {"rejected_stale", s.rejected_stale},
           {"rejected_malformed", s.rejected_malformed},
           {"rejected_limit", s.rejected_limit},
           {"key_values_applied", s.key_values_applied},
           {"key_value_bytes_copied", s.key_value_bytes_copied},
           {"completeness_capped", s.completeness_capped},
           {"rounds", s.rounds},
           {"local_pauses", s.local_pauses},
           {"convictions_deferred", s.convictions_deferred},
           {"nodes_refused", s.nodes_refused},
           {"nodes_removed", s.nodes_removed},
           {"nodes_revived", s.nodes_revived},
           {"tombstones_removed", s.tombstones_removed},
           {"digests_truncated", s.digests_truncated},
           {"compact_digests_out", s.compact_digests_out},
           {"partial_digests_out", s.partial_digests_out},
           {"compact_digests_in", s.compact_digests_in},
           {"compact_digests_rejected", s.compact_digests_rejected},
           {"compact_entries_unresolved", s.compact_entries_unresolved},
           {"aligned_digests_out", s.aligned_digests_out},
           {"aligned_digests_in", s.aligned_digests_in},
           {"aligned_digests_mismatched", s.aligned_digests_mismatched},
           {"announcements_malformed", s.announcements_malformed},
           {"exchanges_evicted", s.exchanges_evicted}};
  for (const DropReason reason : kSealDropReasons) {
    out["dropped_" + std::string(to_string(reason))] = s.dropped(reason);
  }
  for (const DropReason reason : kCompressionDropReasons) {
    out["dropped_" + std::string(to_string(reason))] = s.dropped(reason);
  }
  return out;
}

Json driver_json(const DriverStats& d) {
  return Json{{"exchanges_started", d.exchanges_started},
              {"exchanges_completed", d.exchanges_completed},
              {"exchanges_refused", d.exchanges_refused},
              {"exchanges_skipped_busy", d.exchanges_skipped_busy},
              {"connections_accepted", d.connections_accepted},
              {"connections_refused", d.connections_refused},
              {"connections_evicted", d.connections_evicted},
              {"connect_failures", d.connect_failures},
              {"tls_failures", d.tls_failures},
              {"timeouts", d.timeouts},
              {"framing_errors", d.framing_errors},
              {"large_frames_refused", d.large_frames_refused},
              {"io_errors", d.io_errors},
              {"datagrams_in", d.datagrams_in},
              {"datagrams_out", d.datagrams_out}};
}

Json hooks_json(const HookStats& h) {
  return Json{{"enqueued", h.enqueued},
              {"processed", h.processed},
              {"dropped", h.dropped},
              {"errors", h.errors}};
}

Json member_json(const Node& node, const NodeId& id, const NodeState& state) {
  Json j = Json::object();
  add_id_fields(j, id);
  j["state"] = to_string(member_state(node, id));
  j["self"] = id == node.self_id();
  if (const auto phi = node.phi(id)) {
    j["phi"] = *phi;
  } else {
    j["phi"] = nullptr;
  }
  j["heartbeat"] = state.heartbeat();
  j["max_version"] = state.max_version();
  j["last_gc_version"] = state.last_gc_version();
  j["keys"] = state.size();
  return j;
}

}  // namespace

std::string_view to_string(KeyStatus status) {
  switch (status) {
    case KeyStatus::kSet:
      return "set";
    case KeyStatus::kDeleted:
      return "deleted";
    case KeyStatus::kDeleteAfterTtl:
      return "delete_after_ttl";
  }
  return "set";
}

std::string snapshot_json(const ClusterSnapshot& snapshot) {
  Json nodes = Json::array();
  for (const NodeSnapshot& n : snapshot.nodes) {
    Json key_values = Json::object();
    for (const auto& [key, value] : n.key_values) key_values[key] = value_json(value);
    nodes.push_back(Json{{"id", id_json(n.id)},
                         {"heartbeat", n.heartbeat},
                         {"max_version", n.max_version},
                         {"last_gc_version", n.last_gc_version},
                         {"live", n.live},
                         {"key_values", std::move(key_values)}});
  }
  return dump(Json{{"self", id_json(snapshot.self)}, {"nodes", std::move(nodes)}});
}

std::string cluster_json(const Node& node, const DriverStats& driver, const HookStats& hooks) {
  Json members = Json::array();
  for (const auto& [id, state] : node.cluster_state().nodes()) {
    members.push_back(member_json(node, id, state));
  }
  const Config& config = node.config();
  return dump(
      Json{{"self", id_json(node.self_id())},
           {"cluster_id", config.cluster_id},
           {"phi_threshold", node.failure_detector().phi_threshold},
           {"gossip_interval_ms",
            std::chrono::duration_cast<std::chrono::milliseconds>(config.gossip_interval).count()},
           {"live", node.live_nodes().size()},
           {"dead", node.dead_nodes().size()},
           {"members", std::move(members)},
           {"stats", stats_json(node.stats())},
           {"driver", driver_json(driver)},
           {"hooks", hooks_json(hooks)}});
}

std::string member_keys_json(const Node& node, const NodeId& member, std::string_view prefix) {
  Json key_values = Json::object();
  if (const NodeState* state = node.node_state(member)) {
    state->for_each([&](std::string_view key, const VersionedValue& value) {
      if (key.starts_with(prefix)) key_values[std::string(key)] = value_json(value);
    });
  }
  return dump(Json{{"member", id_json(member)},
                   {"state", to_string(member_state(node, member))},
                   {"key_values", std::move(key_values)}});
}

std::string key_json(const Node& node, std::string_view key) {
  Json members = Json::array();
  for (const auto& [id, state] : node.cluster_state().nodes()) {
    const std::optional<VersionedValue> value = state.find(key);
    if (!value) continue;
    Json j = value_json(*value);
    add_id_fields(j, id);
    members.push_back(std::move(j));
  }
  return dump(Json{{"key", key}, {"members", std::move(members)}});
}

std::string event_json(const Event& event) {
  return std::visit(
      [](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, KeyChanged>) {
          return dump(Json{{"type", "key"},
                           {"member", id_json(e.node)},
                           {"key", e.key},
                           {"old", e.old_value ? value_json(*e.old_value) : Json(nullptr)},
                           {"new", value_json(e.new_value)}});
        } else {
          const char* type = std::is_same_v<E, NodeJoined> ? "join"
                             : std::is_same_v<E, NodeLeft> ? "leave"
                                                           : "reset";
          return dump(Json{{"type", type}, {"member", id_json(e.node)}});
        }
      },
      event);
}

}  // namespace aiocluster::driver
