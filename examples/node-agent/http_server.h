// The agent's HTTP server: libevent's evhttp on one event_base, with limits
// on connections, header and body sizes, Server-Sent Event streams that cut
// off a client too slow to read, and counters of all of it. It knows no
// routes: every request goes to a Handler, which answers through a Respond
// callback, at once or later (from another thread's work, handed back to
// this loop).
//
// Requests that libevent's parser refuses itself (malformed, headers or body
// beyond the limits) never reach the handler: libevent 2.1 answers them with
// 400 or 413 and a short HTML page, and the server counts them by watching
// what libevent writes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "aiocluster/common/metrics.h"
#include "aiocluster/types.h"

struct bufferevent;
struct evbuffer;
struct evbuffer_cb_entry;
struct evbuffer_cb_info;
struct event;
struct event_base;
struct evhttp;
struct evhttp_connection;
struct evhttp_request;

namespace aiocluster::agent {

struct HttpLimits {
  std::size_t max_connections = 64;  // more are closed on accept
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 64 * 1024;
  // Bytes an event stream may have waiting in its connection's output; a
  // client that lets more pile up is cut off.
  std::size_t max_event_backlog_bytes = 1024 * 1024;
  // A connection idle this long (no request, or a reply it does not read)
  // is closed.
  std::chrono::seconds idle_timeout{30};
};

struct HttpStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;  // at max_connections
  std::size_t connections_open = 0;
  std::uint64_t requests = 0;              // handed to the handler
  std::uint64_t malformed = 0;             // refused by the parser: 400
  std::uint64_t headers_too_large = 0;     // refused by the parser: 400 past max_header_bytes
  std::uint64_t bodies_too_large = 0;      // refused by the parser: 413
  std::map<int, std::uint64_t> responses;  // by status code, every response
  std::size_t event_streams = 0;
  std::uint64_t event_streams_cut = 0;  // for letting max_event_backlog_bytes pile up
};

// The server's counters as Prometheus families (aiocluster_http_*).
void write_http_metrics(driver::PrometheusWriter& writer, const HttpStats& stats);

struct HttpRequest {
  std::string method;  // GET, PUT, ...
  // The path's segments, percent-decoded: "/v1/keys/a%2Fb" is
  // {"v1", "keys", "a/b"}, "/" is {}.
  std::vector<std::string> path;
  std::multimap<std::string, std::string> query;  // decoded
  bool query_ok = true;                           // false: the query string was malformed
  std::string content_type;
  std::string body;
  HttpStats server_stats;  // the server's counters when the request came in
};

struct HttpResponse {
  int status = 200;
  std::string content_type;
  std::string body;
  std::string allow;  // the Allow header of a 405
  // Keep the request open as a text/event-stream: publish() writes to it.
  bool event_stream = false;

  static HttpResponse json(int status, std::string body);
  // {"error": message, "status": status}
  static HttpResponse error(int status, std::string_view message);
  static HttpResponse stream();
};

class HttpServer {
 public:
  using Respond = std::function<void(HttpResponse)>;
  using Handler = std::function<void(HttpRequest, Respond)>;

  // Binds `listen` at once (port 0 takes an ephemeral port); throws
  // std::system_error when it cannot. The base must have two priorities
  // (event_base_priority_init(base, 2) before any event was added): the
  // server takes each new connection in hand at the higher one, before any
  // of its input is read. Respond must be called on the base's thread.
  HttpServer(event_base* base, const Address& listen, HttpLimits limits, Handler handler);
  // Closes, if still open.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  Address local_address() const { return local_; }
  const HttpStats& stats() const { return stats_; }
  // Whether an event stream is open; may be read from any thread.
  bool has_event_streams() const { return has_streams_.load(std::memory_order_relaxed); }

  // One event to every open stream: "event: <name>\ndata: <data>\n\n".
  // `data` must not contain line breaks (JSON text never does).
  void publish(std::string_view name, std::string_view data);
  // Stops listening, answers waiting requests with 503 and closes every
  // connection. Idempotent.
  void close();

 private:
  // One accepted connection, from libevent's bufferevent callback (when
  // it has no evhttp_connection yet) until its close callback.
  struct Connection {
    HttpServer* server = nullptr;
    bufferevent* bev = nullptr;
    evhttp_connection* evcon = nullptr;
    evbuffer_cb_entry* on_input = nullptr;
    evbuffer_cb_entry* on_output = nullptr;
    std::size_t bytes_in = 0;  // since its last request reached the handler
  };

  // libevent callbacks.
  static bufferevent* on_accept(event_base* base, void* arg);
  static void on_adopt(int, short, void* arg);
  static void on_request(evhttp_request* req, void* arg);
  static void on_close(evhttp_connection* evcon, void* arg);
  static void on_input(evbuffer* buffer, const evbuffer_cb_info* info, void* arg);
  static void on_output(evbuffer* buffer, const evbuffer_cb_info* info, void* arg);

  void adopt(std::unique_ptr<Connection> connection);
  void forget_callbacks(Connection& connection);
  void dispatch(evhttp_request* req);
  void finish(std::uint64_t id, HttpResponse response);
  void send(evhttp_request* req, const HttpResponse& response);
  void start_stream(evhttp_request* req);
  void cut(evhttp_connection* evcon);
  // A status line libevent wrote on its own (a request its parser refused).
  void count_refusal(const Connection& connection, int status);
  void set_has_streams() { has_streams_.store(!streams_.empty(), std::memory_order_relaxed); }

  HttpLimits limits_;
  Handler handler_;
  evhttp* http_ = nullptr;
  event* adopt_event_ = nullptr;
  Address local_;
  HttpStats stats_;
  bool sending_ = false;  // our own reply is being written (not a refusal)
  std::vector<std::unique_ptr<Connection>> accepted_;  // not yet adopted
  std::unordered_map<evhttp_connection*, std::unique_ptr<Connection>> open_;
  std::unordered_map<std::uint64_t, evhttp_request*> waiting_;  // for the handler's answer
  std::uint64_t next_id_ = 1;
  std::unordered_map<evhttp_connection*, evhttp_request*> streams_;
  std::atomic<bool> has_streams_{false};
};

}  // namespace aiocluster::agent
