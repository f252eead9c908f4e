// The agent's HTTP side: the server, the API behind it, and the event
// streams of /v1/events (the node's joins, leaves and key changes as they
// happen, and the whole cluster document every interval). It lives on the
// HTTP loop and reaches the node only through Loops, so the same code runs
// on one libevent loop or beside an Asio strand.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "aiocluster/events.h"
#include "api.h"
#include "http_server.h"
#include "loops.h"

struct event;
struct event_base;

namespace aiocluster::agent {

struct AgentHttpOptions {
  Address listen;
  HttpLimits limits;
  std::chrono::milliseconds cluster_interval{1000};  // the streams' "cluster" event
};

class AgentHttp {
 public:
  // Binds at once (std::system_error when it cannot). `base` is the HTTP
  // loop's; `api` and `loops` must outlive this object.
  AgentHttp(event_base* base, const AgentHttpOptions& options, Api& api, Loops& loops);
  ~AgentHttp();
  AgentHttp(const AgentHttp&) = delete;
  AgentHttp& operator=(const AgentHttp&) = delete;

  Address local_address() const { return server_->local_address(); }

  // From the node's loop (a hook): streams the event, when anyone listens.
  void publish(const Event& event);
  // On the HTTP loop: closes the server and stops the interval. Idempotent.
  void close();

 private:
  static void on_interval(int, short, void* arg);
  void handle(HttpRequest request, HttpServer::Respond respond);

  Api& api_;
  Loops& loops_;
  std::unique_ptr<HttpServer> server_;
  event* interval_ = nullptr;
};

// Streams the node events of `cluster` (either driver) through `http`.
template <typename Cluster>
void stream_events(Cluster& cluster, AgentHttp& http) {
  cluster.on_node_join([&http](const NodeId& id) { http.publish(NodeJoined{id}); });
  cluster.on_node_leave([&http](const NodeId& id) { http.publish(NodeLeft{id}); });
  cluster.on_key_change([&http](const NodeId& id, const std::string& key,
                                const std::optional<VersionedValue>& old_value,
                                const VersionedValue& new_value) {
    http.publish(KeyChanged{id, key, old_value, new_value});
  });
}

}  // namespace aiocluster::agent
