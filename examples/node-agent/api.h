// The agent's HTTP API: routes a request to the node and answers in JSON.
//
//   GET    /                        the dashboard (one embedded HTML page)
//   GET    /metrics                 Prometheus text exposition
//   GET    /v1/cluster              the cluster as this node sees it
//   GET    /v1/nodes/{name}/keys    one member's key-values (?prefix=P)
//   GET    /v1/keys/{key}           that key on every member
//   PUT    /v1/keys/{key}           sets this node's key; the body is the value
//                                   (?ttl=true: set_with_ttl; a JSON string when
//                                   the Content-Type is application/json)
//   DELETE /v1/keys/{key}           deletes this node's key
//   GET    /v1/events               Server-Sent Events: join, leave, key, cluster
//
// Errors are {"error", "status"}: 400 (bad input), 404 (no such endpoint,
// member or key), 405 (with Allow), 413 (a value beyond max_value_size).
// handle() runs on the node's loop.
#pragma once

#include <string>
#include <string_view>

#include "aiocluster/common/metrics.h"
#include "http_server.h"
#include "loops.h"
#include "node_control.h"

namespace aiocluster::agent {

struct ApiOptions {
  driver::MetricsOptions metrics;
};

class Api {
 public:
  // `loops` reports the events dropped on the way to the streams.
  Api(NodeControl& node, const Loops& loops, ApiOptions options)
      : node_(node), loops_(loops), options_(options) {}

  HttpResponse handle(const HttpRequest& request);
  // The /v1/cluster document, also streamed every interval as "cluster".
  std::string cluster() const;

 private:
  HttpResponse metrics(const HttpStats& http) const;
  HttpResponse member_keys(const HttpRequest& request, const std::string& name) const;
  HttpResponse get_key(const std::string& key) const;
  HttpResponse put_key(const HttpRequest& request, const std::string& key);
  HttpResponse delete_key(const std::string& key);

  NodeControl& node_;
  const Loops& loops_;
  ApiOptions options_;
};

}  // namespace aiocluster::agent
