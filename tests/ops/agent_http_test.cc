// The node agent's HTTP side in its Asio mode, in one process so TSan sees
// every thread: a node on a strand of an io_context run by two threads, its
// HTTP server on an EventLoopThread (examples/node-agent), and clients on
// threads of their own speaking HTTP through libevent's evhttp client --
// requests that read and change the node, an event stream fed by the
// node's hooks, all at once. Run under TSan by ./dev test (label drivers).
#define DOCTEST_CONFIG_IMPLEMENT
#include "agent_http.h"

#include <doctest/doctest.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aiocluster/asio/cluster.h"
#include "api.h"
#include "asio_loops.h"
#include "event_loop_thread.h"
#include "node_control.h"

namespace ac = aiocluster;
namespace ad = aiocluster::asio_driver;
namespace agent = aiocluster::agent;
using namespace std::chrono_literals;

namespace {

constexpr auto kPatience = 60s;

ac::Config config_for(const std::string& name, std::vector<ac::Address> seeds = {}) {
  static std::atomic<std::uint64_t> generation{1};
  ac::Config c;
  c.cluster_id = "agent-http-test";
  c.node_id = ac::NodeId{name, generation++, ac::Address{"127.0.0.1", 0}, ""};
  c.seeds = std::move(seeds);
  c.gossip_interval = 20ms;
  c.failure_detector.initial_interval = 80ms;
  return c;
}

struct Reply {
  int status = 0;
  std::string body;
};

// One request through libevent's HTTP client, on a base of this thread's own.
Reply request(std::uint16_t port, evhttp_cmd_type method, const std::string& path,
              const std::string& body = {}) {
  struct Call {
    event_base* base;
    Reply reply;
  } call{event_base_new(), {}};
  evhttp_connection* connection = evhttp_connection_base_new(call.base, nullptr, "127.0.0.1", port);
  evhttp_connection_set_timeout(connection, 60);
  evhttp_request* req = evhttp_request_new(
      [](evhttp_request* r, void* arg) {
        auto* c = static_cast<Call*>(arg);
        if (r != nullptr) {
          c->reply.status = evhttp_request_get_response_code(r);
          evbuffer* in = evhttp_request_get_input_buffer(r);
          c->reply.body.resize(evbuffer_get_length(in));
          evbuffer_copyout(in, c->reply.body.data(), c->reply.body.size());
        }
        event_base_loopbreak(c->base);
      },
      &call);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
  evbuffer_add(evhttp_request_get_output_buffer(req), body.data(), body.size());
  evhttp_make_request(connection, req, method, path.c_str());
  event_base_dispatch(call.base);
  evhttp_connection_free(connection);
  event_base_free(call.base);
  return call.reply;
}

// GET /v1/events on a thread of its own, collecting what arrives.
class EventStream {
 public:
  explicit EventStream(std::uint16_t port) : base_(event_base_new()) {
    connection_ = evhttp_connection_base_new(base_, nullptr, "127.0.0.1", port);
    request_ = evhttp_request_new(&EventStream::on_done, this);
    evhttp_request_set_chunked_cb(request_, &EventStream::on_chunk);
    evhttp_add_header(evhttp_request_get_output_headers(request_), "Host", "127.0.0.1");
    evhttp_make_request(connection_, request_, EVHTTP_REQ_GET, "/v1/events");
    thread_ = std::thread([this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
  }
  ~EventStream() {
    event_base_loopbreak(base_);
    thread_.join();
    evhttp_connection_free(connection_);
    event_base_free(base_);
  }

  std::string text() const {
    std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  static void on_chunk(evhttp_request* r, void* arg) {
    auto* self = static_cast<EventStream*>(arg);
    evbuffer* in = evhttp_request_get_input_buffer(r);
    std::string chunk(evbuffer_get_length(in), '\0');
    evbuffer_remove(in, chunk.data(), chunk.size());
    std::lock_guard lock(self->mutex_);
    self->text_ += chunk;
  }
  static void on_done(evhttp_request*, void*) {}

  event_base* base_;
  evhttp_connection* connection_ = nullptr;
  evhttp_request* request_ = nullptr;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::string text_;
};

template <typename Done>
bool eventually(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

}  // namespace

TEST_CASE("the Asio mode's HTTP thread serves the node's strand under concurrent clients") {
  asio::io_context io;
  ad::Cluster a(io, config_for("a"));
  ad::Cluster b(io, config_for("b", {a.local_address()}));
  agent::ClusterControl<ad::Cluster> control(a);

  agent::EventLoopThread http_thread(10'000);
  agent::StrandAndThread loops(a.get_executor(), http_thread);
  agent::Api api(control, loops, {});
  agent::AgentHttpOptions options{ac::Address{"127.0.0.1", 0}, {}, 20ms};
  agent::AgentHttp http(http_thread.base(), options, api, loops);
  agent::stream_events(a, http);
  const std::uint16_t port = http.local_address().port;

  a.start();
  b.start();
  http_thread.start();
  std::vector<std::thread> io_threads;
  for (int i = 0; i < 2; ++i) io_threads.emplace_back([&io] { io.run(); });

  REQUIRE(eventually([&] {
    const Reply reply = request(port, EVHTTP_REQ_GET, "/v1/cluster");
    return reply.status == 200 && reply.body.find("\"live\":2") != std::string::npos;
  }));

  {
    EventStream stream(port);
    REQUIRE(eventually([&] { return stream.text().find("event: cluster") != std::string::npos; }));

    // Clients on three threads read and write while the node gossips and
    // the stream gets its events.
    std::atomic<int> failures{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 3; ++t) {
      clients.emplace_back([&, t] {
        for (int i = 0; i < 20; ++i) {
          const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
          if (request(port, EVHTTP_REQ_PUT, "/v1/keys/" + key, "v").status != 200) ++failures;
          if (request(port, EVHTTP_REQ_GET, "/v1/keys/" + key).status != 200) ++failures;
          if (request(port, EVHTTP_REQ_GET, i % 2 ? "/metrics" : "/v1/cluster").status != 200)
            ++failures;
        }
      });
    }
    // A change made on the strand directly is streamed too.
    asio::post(a.get_executor(), [&a] { a.set("direct", "yes"); });
    for (auto& c : clients) c.join();
    CHECK(failures == 0);
    CHECK(eventually([&] {
      const std::string text = stream.text();
      return text.find("\"key\":\"t2-19\"") != std::string::npos &&
             text.find("\"key\":\"direct\"") != std::string::npos;
    }));
  }

  // The other node got a key written over HTTP.
  auto seen = b.async_wait_key("a", "t1-7", "v", kPatience, asio::use_future);
  CHECK_NOTHROW(seen.get());
  const Reply missing = request(port, EVHTTP_REQ_GET, "/v1/nodes/nobody/keys");
  CHECK(missing.status == 404);

  // Stop: the HTTP thread first, then the nodes on their strands.
  http_thread.stop([&http] { http.close(); });
  http_thread.join();
  asio::post(a.get_executor(), [&a] { a.stop(); });
  asio::post(b.get_executor(), [&b] { b.stop(); });
  for (auto& t : io_threads) t.join();
}

int main(int argc, char** argv) {
  // Before any event_base: the HTTP thread is woken from the strand's.
  evthread_use_pthreads();
  doctest::Context context(argc, argv);
  return context.run();
}
