#include "http_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>

namespace aiocluster::agent {

namespace {

// New connections are taken in hand at this priority, ahead of the
// default one at which their input is read.
constexpr int kAdoptPriority = 0;

std::string method_name(evhttp_cmd_type type) {
  switch (type) {
    case EVHTTP_REQ_GET:
      return "GET";
    case EVHTTP_REQ_POST:
      return "POST";
    case EVHTTP_REQ_HEAD:
      return "HEAD";
    case EVHTTP_REQ_PUT:
      return "PUT";
    case EVHTTP_REQ_DELETE:
      return "DELETE";
    case EVHTTP_REQ_OPTIONS:
      return "OPTIONS";
    case EVHTTP_REQ_TRACE:
      return "TRACE";
    case EVHTTP_REQ_CONNECT:
      return "CONNECT";
    case EVHTTP_REQ_PATCH:
      return "PATCH";
  }
  return "UNKNOWN";
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

// Percent-decoding by libevent; `plus` also turns '+' into a space (query
// strings). The result may hold any byte, NUL included.
std::string uri_decode(const std::string& text, bool plus) {
  std::size_t size = 0;
  char* decoded = evhttp_uridecode(text.c_str(), plus ? 1 : 0, &size);
  if (decoded == nullptr) return {};
  std::string out(decoded, size);
  std::free(decoded);
  return out;
}

std::vector<std::string> path_segments(const char* path) {
  std::vector<std::string> out;
  if (path == nullptr) return out;
  std::string_view rest(path);
  if (rest.starts_with('/')) rest.remove_prefix(1);
  if (rest.empty()) return out;
  while (true) {
    const auto slash = rest.find('/');
    out.push_back(uri_decode(std::string(rest.substr(0, slash)), false));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return out;
}

bool parse_query(const char* query, std::multimap<std::string, std::string>& out) {
  if (query == nullptr) return true;
  evkeyvalq pairs{};
  if (evhttp_parse_query_str(query, &pairs) != 0) {
    evhttp_clear_headers(&pairs);
    return false;
  }
  for (evkeyval* kv = pairs.tqh_first; kv != nullptr; kv = kv->next.tqe_next) {
    out.emplace(kv->key, kv->value);
  }
  evhttp_clear_headers(&pairs);
  return true;
}

std::uint16_t bound_port(evhttp_bound_socket* bound) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&address),
                    &length) != 0) {
    return 0;
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
}

std::size_t output_backlog(evhttp_connection* evcon) {
  return evbuffer_get_length(bufferevent_get_output(evhttp_connection_get_bufferevent(evcon)));
}

}  // namespace

HttpResponse HttpResponse::json(int status, std::string body) {
  return HttpResponse{status, "application/json", std::move(body), {}, false};
}

HttpResponse HttpResponse::error(int status, std::string_view message) {
  const nlohmann::ordered_json body{{"error", message}, {"status", status}};
  return json(status, body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

HttpResponse HttpResponse::stream() { return HttpResponse{200, "text/event-stream", {}, {}, true}; }

HttpServer::HttpServer(event_base* base, const Address& listen, HttpLimits limits, Handler handler)
    : limits_(limits), handler_(std::move(handler)) {
  if (event_base_get_npriorities(base) < 2) {
    throw std::invalid_argument("HttpServer: the event_base needs two priorities");
  }
  http_ = evhttp_new(base);
  adopt_event_ = event_new(base, -1, 0, &HttpServer::on_adopt, this);
  if (http_ == nullptr || adopt_event_ == nullptr) {
    close();
    throw std::runtime_error("HttpServer: out of memory");
  }
  event_priority_set(adopt_event_, kAdoptPriority);
  // Every method reaches the handler, which answers 405 where it must.
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                        EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
  evhttp_set_max_headers_size(http_, static_cast<ev_ssize_t>(limits_.max_header_bytes));
  evhttp_set_max_body_size(http_, static_cast<ev_ssize_t>(limits_.max_body_bytes));
  evhttp_set_timeout(http_, static_cast<int>(limits_.idle_timeout.count()));
  evhttp_set_bevcb(http_, &HttpServer::on_accept, this);
  evhttp_set_gencb(http_, &HttpServer::on_request, this);
  evhttp_bound_socket* bound =
      evhttp_bind_socket_with_handle(http_, listen.host.c_str(), listen.port);
  if (bound == nullptr) {
    const int error = errno;
    close();
    throw std::system_error(error != 0 ? error : EADDRNOTAVAIL, std::generic_category(),
                            "http: cannot listen on " + listen.to_string());
  }
  local_ = Address{listen.host, bound_port(bound)};
}

HttpServer::~HttpServer() { close(); }

void HttpServer::close() {
  if (http_ == nullptr && adopt_event_ == nullptr) return;
  // Answered, a waiting request is libevent's again, freed with its connection.
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (const auto& [id, req] : waiting) {
    send(req, HttpResponse::error(503, "the node is stopping"));
  }
  // Frees every connection (their close callbacks run) and the requests
  // still attached to them, event streams included.
  if (http_ != nullptr) evhttp_free(http_);
  http_ = nullptr;
  if (adopt_event_ != nullptr) event_free(adopt_event_);
  adopt_event_ = nullptr;
  // Connections never adopted were freed above without a close callback:
  // only their records remain.
  accepted_.clear();
  streams_.clear();
  set_has_streams();
}

bufferevent* HttpServer::on_accept(event_base* base, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  bufferevent* bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) return nullptr;  // libevent makes its own; it goes uncounted
  auto connection = std::make_unique<Connection>();
  connection->server = self;
  connection->bev = bev;
  connection->on_input =
      evbuffer_add_cb(bufferevent_get_input(bev), &HttpServer::on_input, connection.get());
  connection->on_output =
      evbuffer_add_cb(bufferevent_get_output(bev), &HttpServer::on_output, connection.get());
  self->accepted_.push_back(std::move(connection));
  // evhttp makes the connection object once this returns; the adopt event
  // runs before any of the connection's own events can.
  event_active(self->adopt_event_, EV_TIMEOUT, 0);
  return bev;
}

void HttpServer::on_adopt(int, short, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  auto accepted = std::move(self->accepted_);
  self->accepted_.clear();
  for (auto& connection : accepted) self->adopt(std::move(connection));
}

void HttpServer::adopt(std::unique_ptr<Connection> connection) {
  void* evcon_arg = nullptr;
  bufferevent_getcb(connection->bev, nullptr, nullptr, nullptr, &evcon_arg);
  auto* evcon = static_cast<evhttp_connection*>(evcon_arg);
  if (evcon == nullptr) return;  // not an evhttp connection: cannot happen
  ++stats_.connections_accepted;
  if (open_.size() >= limits_.max_connections) {
    ++stats_.connections_refused;
    forget_callbacks(*connection);
    evhttp_connection_free(evcon);
    return;
  }
  connection->evcon = evcon;
  evhttp_connection_set_closecb(evcon, &HttpServer::on_close, this);
  open_.emplace(evcon, std::move(connection));
  stats_.connections_open = open_.size();
}

void HttpServer::forget_callbacks(Connection& connection) {
  evbuffer_remove_cb_entry(bufferevent_get_input(connection.bev), connection.on_input);
  evbuffer_remove_cb_entry(bufferevent_get_output(connection.bev), connection.on_output);
}

void HttpServer::on_close(evhttp_connection* evcon, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  auto it = self->open_.find(evcon);
  if (it == self->open_.end()) return;
  self->forget_callbacks(*it->second);
  self->open_.erase(it);
  self->stats_.connections_open = self->open_.size();
  auto stream = self->streams_.find(evcon);
  if (stream != self->streams_.end()) {
    // A client that went away (or timed out) leaves its request detached
    // and ours to free; otherwise libevent frees it with the connection.
    if (evhttp_request_get_connection(stream->second) == nullptr) {
      evhttp_request_free(stream->second);
    }
    self->streams_.erase(stream);
    self->stats_.event_streams = self->streams_.size();
    self->set_has_streams();
  }
}

void HttpServer::on_input(evbuffer*, const evbuffer_cb_info* info, void* arg) {
  static_cast<Connection*>(arg)->bytes_in += info->n_added;
}

void HttpServer::on_output(evbuffer* buffer, const evbuffer_cb_info* info, void* arg) {
  const auto* connection = static_cast<const Connection*>(arg);
  if (info->n_added == 0 || connection->server->sending_) return;
  // libevent writes the status line of its own answers in one piece:
  // "HTTP/1.1 413 ...".
  char line[12];
  evbuffer_ptr start;
  if (evbuffer_ptr_set(buffer, &start, info->orig_size, EVBUFFER_PTR_SET) != 0) return;
  if (evbuffer_copyout_from(buffer, &start, line, sizeof line) != sizeof line) return;
  if (std::memcmp(line, "HTTP/1.", 7) != 0) return;
  const int status = std::atoi(std::string(line + 9, 3).c_str());
  if (status >= 200) connection->server->count_refusal(*connection, status);
}

void HttpServer::count_refusal(const Connection& connection, int status) {
  ++stats_.responses[status];
  if (status == 413) {
    ++stats_.bodies_too_large;
  } else if (status == 400 && connection.bytes_in > limits_.max_header_bytes) {
    ++stats_.headers_too_large;
  } else {
    ++stats_.malformed;
  }
}

void HttpServer::on_request(evhttp_request* req, void* arg) {
  static_cast<HttpServer*>(arg)->dispatch(req);
}

void HttpServer::dispatch(evhttp_request* req) {
  ++stats_.requests;
  if (auto it = open_.find(evhttp_request_get_connection(req)); it != open_.end()) {
    it->second->bytes_in = 0;
  }
  const std::uint64_t id = next_id_++;
  waiting_.emplace(id, req);
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  if (uri == nullptr) {  // libevent parses every URI it dispatches; never trust it blindly
    finish(id, HttpResponse::error(400, "malformed request target"));
    return;
  }
  HttpRequest request;
  request.method = method_name(evhttp_request_get_command(req));
  request.path = path_segments(evhttp_uri_get_path(uri));
  request.query_ok = parse_query(evhttp_uri_get_query(uri), request.query);
  if (const char* type =
          evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type")) {
    request.content_type = type;
  }
  evbuffer* body = evhttp_request_get_input_buffer(req);
  request.body.resize(evbuffer_get_length(body));
  evbuffer_copyout(body, request.body.data(), request.body.size());
  request.server_stats = stats_;
  handler_(std::move(request),
           [this, id](HttpResponse response) { finish(id, std::move(response)); });
}

void HttpServer::finish(std::uint64_t id, HttpResponse response) {
  auto it = waiting_.find(id);
  if (it == waiting_.end()) return;  // answered at close()
  evhttp_request* req = it->second;
  waiting_.erase(it);
  if (evhttp_request_get_connection(req) == nullptr) {
    evhttp_request_free(req);  // the client went away meanwhile
    return;
  }
  if (response.event_stream) {
    start_stream(req);
  } else {
    send(req, response);
  }
}

void HttpServer::send(evhttp_request* req, const HttpResponse& response) {
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  if (!response.content_type.empty()) {
    evhttp_add_header(headers, "Content-Type", response.content_type.c_str());
  }
  if (!response.allow.empty()) evhttp_add_header(headers, "Allow", response.allow.c_str());
  evhttp_add_header(headers, "Cache-Control", "no-store");
  evbuffer* body = evbuffer_new();
  evbuffer_add(body, response.body.data(), response.body.size());
  ++stats_.responses[response.status];
  sending_ = true;
  evhttp_send_reply(req, response.status, reason_phrase(response.status), body);
  sending_ = false;
  evbuffer_free(body);
}

void HttpServer::start_stream(evhttp_request* req) {
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Content-Type", "text/event-stream");
  evhttp_add_header(headers, "Cache-Control", "no-store");
  ++stats_.responses[200];
  sending_ = true;
  evhttp_send_reply_start(req, 200, "OK");
  sending_ = false;
  streams_.emplace(evhttp_request_get_connection(req), req);
  stats_.event_streams = streams_.size();
  set_has_streams();
}

void HttpServer::publish(std::string_view name, std::string_view data) {
  if (streams_.empty()) return;
  std::string frame;
  frame.reserve(name.size() + data.size() + 16);
  frame.append("event: ").append(name).append("\ndata: ").append(data).append("\n\n");
  std::vector<evhttp_connection*> too_slow;
  for (const auto& [evcon, req] : streams_) {
    evbuffer* chunk = evbuffer_new();
    evbuffer_add(chunk, frame.data(), frame.size());
    sending_ = true;
    evhttp_send_reply_chunk(req, chunk);
    sending_ = false;
    evbuffer_free(chunk);
    if (output_backlog(evcon) > limits_.max_event_backlog_bytes) too_slow.push_back(evcon);
  }
  for (evhttp_connection* evcon : too_slow) cut(evcon);
}

void HttpServer::cut(evhttp_connection* evcon) {
  // Forgotten first: libevent frees the stream's request with the
  // connection, and the close callback then finds nothing to do.
  streams_.erase(evcon);
  stats_.event_streams = streams_.size();
  ++stats_.event_streams_cut;
  set_has_streams();
  evhttp_connection_free(evcon);
}

void write_http_metrics(driver::PrometheusWriter& w, const HttpStats& s) {
  w.counter("aiocluster_http_connections_accepted_total", "HTTP connections accepted.",
            s.connections_accepted);
  w.counter("aiocluster_http_connections_refused_total",
            "HTTP connections closed on accept at the connection limit.", s.connections_refused);
  w.gauge("aiocluster_http_connections", "HTTP connections open.",
          static_cast<double>(s.connections_open));
  w.counter("aiocluster_http_requests_total", "HTTP requests handed to the API.", s.requests);
  w.family("aiocluster_http_requests_refused_total", "counter",
           "HTTP requests refused by the parser, by reason.");
  w.sample({{"reason", "malformed"}}, s.malformed);
  w.sample({{"reason", "headers_too_large"}}, s.headers_too_large);
  w.sample({{"reason", "body_too_large"}}, s.bodies_too_large);
  w.family("aiocluster_http_responses_total", "counter", "HTTP responses, by status code.");
  for (const auto& [status, count] : s.responses) {
    w.sample({{"code", std::to_string(status)}}, count);
  }
  w.gauge("aiocluster_http_event_streams", "Open /v1/events streams.",
          static_cast<double>(s.event_streams));
  w.counter("aiocluster_http_event_streams_cut_total",
            "Event streams cut off for not reading their events.", s.event_streams_cut);
}

}  // namespace aiocluster::agent
