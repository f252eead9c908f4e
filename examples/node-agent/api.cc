#include "api.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "aiocluster/common/members.h"
#include "aiocluster/common/state_json.h"
#include "dashboard.h"

namespace aiocluster::agent {

namespace {

constexpr std::string_view kReadOnly = "GET, HEAD";
constexpr std::string_view kKeyMethods = "GET, HEAD, PUT, DELETE";

std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

HttpResponse not_allowed(std::string_view allow) {
  HttpResponse response =
      HttpResponse::error(405, "method not allowed; allowed: " + std::string(allow));
  response.allow = allow;
  return response;
}

bool is_read(const HttpRequest& request) {
  return request.method == "GET" || request.method == "HEAD";
}

bool path_is(const HttpRequest& request, std::initializer_list<std::string_view> segments) {
  return std::equal(request.path.begin(), request.path.end(), segments.begin(), segments.end());
}

// "/v1/keys/a/b" names the key "a/b", as does "/v1/keys/a%2Fb".
std::optional<std::string> key_of(const HttpRequest& request) {
  const auto& p = request.path;
  if (p.size() < 3 || p[0] != "v1" || p[1] != "keys") return std::nullopt;
  std::string key = p[2];
  for (std::size_t i = 3; i < p.size(); ++i) key += "/" + p[i];
  return key;
}

// ?ttl=true|false (or 1|0); nullopt when it is something else.
std::optional<bool> ttl_of(const HttpRequest& request) {
  const auto it = request.query.find("ttl");
  if (it == request.query.end()) return false;
  if (it->second == "true" || it->second == "1") return true;
  if (it->second == "false" || it->second == "0") return false;
  return std::nullopt;
}

HttpResponse key_entry(std::string_view key, const VersionedValue& entry) {
  return HttpResponse::json(200, dump({{"key", key},
                                       {"value", entry.value},
                                       {"version", entry.version},
                                       {"status", driver::to_string(entry.status)}}));
}

}  // namespace

HttpResponse Api::handle(const HttpRequest& request) {
  if (!request.query_ok) return HttpResponse::error(400, "malformed query string");
  if (request.path.empty()) {
    if (!is_read(request)) return not_allowed(kReadOnly);
    return HttpResponse{200, "text/html; charset=utf-8", std::string(dashboard_html()), {}, false};
  }
  if (path_is(request, {"metrics"})) {
    return is_read(request) ? metrics(request.server_stats) : not_allowed(kReadOnly);
  }
  if (path_is(request, {"v1", "cluster"})) {
    return is_read(request) ? HttpResponse::json(200, cluster()) : not_allowed(kReadOnly);
  }
  if (path_is(request, {"v1", "events"})) {
    return request.method == "GET" ? HttpResponse::stream() : not_allowed("GET");
  }
  const auto& p = request.path;
  if (p.size() == 4 && p[0] == "v1" && p[1] == "nodes" && p[3] == "keys") {
    return is_read(request) ? member_keys(request, p[2]) : not_allowed(kReadOnly);
  }
  if (const auto key = key_of(request)) {
    if (key->empty()) return HttpResponse::error(400, "the key is empty");
    if (is_read(request)) return get_key(*key);
    if (request.method == "PUT") return put_key(request, *key);
    if (request.method == "DELETE") return delete_key(*key);
    return not_allowed(kKeyMethods);
  }
  return HttpResponse::error(404, "no such endpoint");
}

std::string Api::cluster() const {
  return driver::cluster_json(node_.node(), node_.driver_stats(), node_.hook_stats());
}

HttpResponse Api::metrics(const HttpStats& http) const {
  std::string text = driver::prometheus_metrics(node_.node(), node_.driver_stats(),
                                                node_.hook_stats(), options_.metrics);
  driver::PrometheusWriter agent;
  write_http_metrics(agent, http);
  agent.counter("aiocluster_http_events_dropped_total",
                "Node events not streamed: the hand-over to the HTTP loop was full.",
                loops_.dropped());
  text += agent.text();
  return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", std::move(text), {}, false};
}

HttpResponse Api::member_keys(const HttpRequest& request, const std::string& name) const {
  const std::optional<NodeId> member = driver::member_by_name(node_.node(), name);
  if (!member) return HttpResponse::error(404, "no member named " + name);
  const auto prefix = request.query.find("prefix");
  return HttpResponse::json(
      200, driver::member_keys_json(node_.node(), *member,
                                    prefix == request.query.end() ? "" : prefix->second));
}

HttpResponse Api::get_key(const std::string& key) const {
  const Node& node = node_.node();
  for (const auto& [id, state] : node.cluster_state().nodes()) {
    if (state.find(key)) return HttpResponse::json(200, driver::key_json(node, key));
  }
  return HttpResponse::error(404, "no member holds the key " + key);
}

HttpResponse Api::put_key(const HttpRequest& request, const std::string& key) {
  std::string value = request.body;
  if (request.content_type.starts_with("application/json")) {
    const auto body = nlohmann::ordered_json::parse(request.body, nullptr, false);
    if (!body.is_string()) return HttpResponse::error(400, "the body must be a JSON string");
    value = body.get<std::string>();
  }
  const auto ttl = ttl_of(request);
  if (!ttl) return HttpResponse::error(400, "ttl: expected true or false");
  const Limits& limits = node_.node().config().limits;
  if (value.size() > limits.max_value_size) {
    return HttpResponse::error(413, "the value exceeds max_value_size (" +
                                        std::to_string(limits.max_value_size) + " bytes)");
  }
  try {
    node_.set(key, value, *ttl);
  } catch (const std::invalid_argument& e) {
    return HttpResponse::error(400, e.what());
  }
  const Node& node = node_.node();
  return key_entry(key, *node.node_state(node.self_id())->find(key));
}

HttpResponse Api::delete_key(const std::string& key) {
  const Node& node = node_.node();
  const std::optional<VersionedValue> entry = node.node_state(node.self_id())->find(key);
  if (!entry || !entry->visible()) {
    return HttpResponse::error(404, "this node holds no key " + key);
  }
  node_.remove(key);
  return key_entry(key, *node.node_state(node.self_id())->find(key));
}

}  // namespace aiocluster::agent
