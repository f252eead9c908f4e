#include "agent_http.h"

#include <event2/event.h>

#include "aiocluster/common/state_json.h"

namespace aiocluster::agent {

AgentHttp::AgentHttp(event_base* base, const AgentHttpOptions& options, Api& api, Loops& loops)
    : api_(api), loops_(loops) {
  server_ = std::make_unique<HttpServer>(base, options.listen, options.limits,
                                         [this](HttpRequest request, HttpServer::Respond respond) {
                                           handle(std::move(request), std::move(respond));
                                         });
  interval_ = event_new(base, -1, EV_PERSIST, &AgentHttp::on_interval, this);
  const auto ms = options.cluster_interval.count();
  const timeval period{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
  event_add(interval_, &period);
}

AgentHttp::~AgentHttp() { close(); }

void AgentHttp::close() {
  if (interval_ != nullptr) event_free(interval_);
  interval_ = nullptr;
  server_->close();
}

void AgentHttp::handle(HttpRequest request, HttpServer::Respond respond) {
  loops_.to_node([this, request = std::move(request), respond = std::move(respond)]() mutable {
    loops_.to_http([response = api_.handle(request), respond = std::move(respond)]() mutable {
      respond(std::move(response));
    });
  });
}

void AgentHttp::publish(const Event& event) {
  if (!server_->has_event_streams()) return;
  const char* name = std::holds_alternative<NodeJoined>(event)     ? "join"
                     : std::holds_alternative<NodeLeft>(event)     ? "leave"
                     : std::holds_alternative<ReplicaReset>(event) ? "reset"
                                                                   : "key";
  loops_.offer_to_http(
      [this, name, data = driver::event_json(event)] { server_->publish(name, data); });
}

void AgentHttp::on_interval(int, short, void* arg) {
  auto* self = static_cast<AgentHttp*>(arg);
  if (!self->server_->has_event_streams()) return;
  self->loops_.to_node([self] {
    self->loops_.offer_to_http(
        [self, data = self->api_.cluster()] { self->server_->publish("cluster", data); });
  });
}

}  // namespace aiocluster::agent
