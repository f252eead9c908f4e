// The Asio-specific surface of the driver: construction and validation,
// completion tokens (callbacks, use_awaitable, use_future), timeouts and
// aborts of waits, the strand under a multi-threaded io_context, and stop
// from inside a hook. The behaviour every driver shares is in
// tests/conformance.
#include "aiocluster/asio/cluster.h"

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <future>
#include <thread>

namespace ac = aiocluster;
namespace ad = aiocluster::asio_driver;
using namespace std::chrono_literals;

namespace {

constexpr ac::Duration kPatience = 20s;

ac::Config config_for(const std::string& name, std::vector<ac::Address> seeds = {}) {
  static std::atomic<std::uint64_t> generation{1};
  ac::Config c;
  c.cluster_id = "asio-test";
  c.node_id = ac::NodeId{name, generation++, ac::Address{"127.0.0.1", 0}, ""};
  c.seeds = std::move(seeds);
  c.gossip_interval = 20ms;
  c.failure_detector.initial_interval = 80ms;
  return c;
}

// Runs `io` until `done` or the patience runs out.
template <typename Done>
bool run_until(asio::io_context& io, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    if (io.stopped()) io.restart();
    io.run_for(5ms);
  }
  return done();
}

}  // namespace

TEST_CASE("construction: port 0 takes the bound port; bad config and options are refused by name") {
  asio::io_context io;
  ad::Cluster a(io, config_for("a"));
  a.start();  // listening: the port cannot be bound again
  CHECK(a.local_address().host == "127.0.0.1");
  CHECK(a.local_address().port != 0);
  CHECK(a.self_id().gossip_advertise_addr == a.local_address());

  ac::Config bad = config_for("b");
  bad.cluster_id.clear();
  CHECK_THROWS_WITH_AS(ad::Cluster(io, bad), doctest::Contains("cluster_id"), ac::ConfigError);

  ad::Options udp_tls;
  udp_tls.transport = ad::Transport::kUdp;
  udp_tls.tls = ad::TlsOptions{"c.pem", "k.pem", "ca.pem", true, {}, false};
  CHECK_THROWS_WITH_AS(ad::Cluster(io, config_for("c"), {}, udp_tls), doctest::Contains("tls"),
                       std::invalid_argument);

  ad::Options zero;
  zero.read_timeout = 0s;
  CHECK_THROWS_WITH_AS(ad::Cluster(io, config_for("d"), {}, zero),
                       doctest::Contains("read_timeout"), std::invalid_argument);

  ad::Options missing_files;
  missing_files.tls = ad::TlsOptions{
      "/nonexistent/c.pem", "/nonexistent/k.pem", "/nonexistent/ca.pem", true, {}, false};
  CHECK_THROWS_WITH_AS(ad::Cluster(io, config_for("e"), {}, missing_files),
                       doctest::Contains("tls.cert_file"), std::system_error);

  // The port is taken: binding fails loudly, at construction.
  ac::Config clash = config_for("f");
  clash.node_id.gossip_advertise_addr = a.local_address();
  CHECK_THROWS_AS(ad::Cluster(io, clash), std::system_error);
}

TEST_CASE("waits complete through callbacks, on the cluster's strand") {
  asio::io_context io;
  ad::Cluster a(io, config_for("a"));
  ad::Cluster b(io, config_for("b", {a.local_address()}));
  a.start();
  b.start();
  std::optional<std::error_code> live;
  std::optional<std::error_code> key;
  bool on_strand = false;
  a.async_wait_live(2, kPatience, [&](std::error_code ec) {
    on_strand = a.get_executor().running_in_this_thread();
    live = ec;
  });
  b.set("color", "green");
  a.async_wait_key("b", "color", "green", kPatience, [&](std::error_code ec) { key = ec; });
  CHECK(run_until(io, [&] { return live && key; }));
  CHECK(live == std::error_code{});
  CHECK(key == std::error_code{});
  CHECK(on_strand);
  CHECK(ad::Cluster::has_key_value(a.node(), "b", "color", "green"));
}

TEST_CASE("waits time out, and stop aborts those still pending") {
  asio::io_context io;
  ad::Cluster a(io, config_for("a"));
  a.start();
  std::optional<std::error_code> timed;
  std::optional<std::error_code> aborted;
  a.async_wait_live(5, 50ms, [&](std::error_code ec) { timed = ec; });
  a.async_wait_key("nobody", "k", "v", kPatience, [&](std::error_code ec) { aborted = ec; });
  CHECK(run_until(io, [&] { return timed.has_value(); }));
  CHECK(*timed == asio::error::timed_out);
  CHECK_FALSE(aborted);
  a.stop();
  CHECK(run_until(io, [&] { return aborted.has_value(); }));
  CHECK(*aborted == asio::error::operation_aborted);
  // A wait started after stop completes at once with operation_aborted.
  std::optional<std::error_code> late;
  a.async_wait_live(1, kPatience, [&](std::error_code ec) { late = ec; });
  CHECK(run_until(io, [&] { return late.has_value(); }));
  CHECK(*late == asio::error::operation_aborted);
  // Nothing of the cluster is left on the io_context.
  io.restart();
  io.run_for(kPatience);
  CHECK(io.stopped());
}

TEST_CASE("waits work as C++20 coroutines with use_awaitable") {
  asio::io_context io;
  ad::Cluster a(io, config_for("a"));
  ad::Cluster b(io, config_for("b", {a.local_address()}));
  a.start();
  b.start();
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await a.async_wait_live(2, kPatience, asio::use_awaitable);
        b.set("stage", "ready");
        co_await a.async_wait_key("b", "stage", "ready", kPatience, asio::use_awaitable);
        // A timeout surfaces as an exception in a coroutine.
        try {
          co_await a.async_wait_live(9, 30ms, asio::use_awaitable);
        } catch (const std::system_error& e) {
          done = e.code() == asio::error::timed_out;
        }
      },
      asio::detached);
  CHECK(run_until(io, [&] { return done; }));
}

TEST_CASE("waits work with use_future, and the io_context may run on several threads") {
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  ad::Cluster a(io, config_for("a"));
  ad::Cluster b(io, config_for("b", {a.local_address()}));
  ad::Cluster c(io, config_for("c", {b.local_address()}));
  std::atomic<int> joins{0};
  for (ad::Cluster* n : {&a, &b, &c}) {
    n->on_node_join([&](const ac::NodeId&) { ++joins; });
    n->start();
  }
  // From here on the clusters are touched only on their strands.
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&] { io.run(); });
  std::future<void> all_live = a.async_wait_live(3, kPatience, asio::use_future);
  std::future<void> key = c.async_wait_key("a", "from", "a", kPatience, asio::use_future);
  asio::post(a.get_executor(), [&] { a.set("from", "a"); });
  CHECK_NOTHROW(all_live.get());
  CHECK_NOTHROW(key.get());
  // A timeout as a value, not as an exception in a future: libstdc++'s
  // exception_ptr is not instrumented, so TSan would flag the hand-over.
  std::promise<std::error_code> too_many;
  a.async_wait_live(4, 30ms, [&](std::error_code ec) { too_many.set_value(ec); });
  CHECK(too_many.get_future().get() == asio::error::timed_out);
  // Stop each on its own strand, then let the threads run out of work.
  for (ad::Cluster* n : {&a, &b, &c}) {
    std::promise<void> stopped;
    asio::post(n->get_executor(), [&] {
      n->stop();
      stopped.set_value();
    });
    stopped.get_future().get();
  }
  guard.reset();
  for (auto& t : threads) t.join();
  CHECK(joins >= 2);  // at least a's view of b and c
  CHECK(io.stopped());
}

TEST_CASE("a hook may stop its own cluster; the rest of the queue is drained within the timeout") {
  asio::io_context io;
  ad::Cluster a(io, config_for("a"), {{"k1", "v"}, {"k2", "v"}, {"k3", "v"}});
  int seen = 0;
  a.on_key_change([&](const ac::NodeId&, const std::string&,
                      const std::optional<ac::VersionedValue>&, const ac::VersionedValue&) {
    if (++seen == 1) a.stop();
  });
  a.start();
  io.run_for(kPatience);
  CHECK(io.stopped());
  CHECK_FALSE(a.running());
  CHECK(seen == 3);  // queued before the stop: drained, not lost
  CHECK(a.hook_stats().processed == 3);
  CHECK(a.hook_stats().dropped == 0);
}

TEST_CASE("stop drops the queued hooks it cannot run within hook_drain_timeout") {
  asio::io_context io;
  ad::Options options;
  options.hook_drain_timeout = 0s;
  ad::Cluster a(io, config_for("a"), {{"k1", "v"}, {"k2", "v"}}, options);
  int seen = 0;
  a.on_key_change([&](const ac::NodeId&, const std::string&,
                      const std::optional<ac::VersionedValue>&,
                      const ac::VersionedValue&) { ++seen; });
  a.start();  // queues the two initial keys; nothing has run yet
  a.stop();
  io.run_for(kPatience);
  CHECK(seen == 0);
  CHECK(a.hook_stats().enqueued == 2);
  CHECK(a.hook_stats().dropped == 2);
}

// A listener that accepts and never answers: exchanges with it stay open
// until their read timeout.
class SilentPeer {
 public:
  explicit SilentPeer(asio::io_context& io)
      : acceptor_(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
  }
  ac::Address address() const { return {"127.0.0.1", acceptor_.local_endpoint().port()}; }

 private:
  void accept() {
    acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket s) {
      if (ec) return;
      held_.push_back(std::move(s));
      accept();
    });
  }

  asio::ip::tcp::acceptor acceptor_;
  std::vector<asio::ip::tcp::socket> held_;
};

TEST_CASE("TCP exchanges beyond max_outgoing_exchanges are refused and counted") {
  asio::io_context io;
  SilentPeer sink(io);
  const ac::Address sink_addr = sink.address();
  ad::Options options;
  options.max_outgoing_exchanges = 1;
  options.read_timeout = 10s;
  ad::Cluster a(io, config_for("a", {sink_addr}), {}, options);
  a.start();
  CHECK(run_until(io, [&] { return a.driver_stats().exchanges_refused >= 2; }));
  CHECK(a.driver_stats().exchanges_started == 1);
  a.stop();
}

TEST_CASE("TCP: no second exchange to a peer while ours is still running") {
  asio::io_context io;
  SilentPeer sink(io);
  ad::Options options;
  options.read_timeout = 1s;
  ad::Cluster a(io, config_for("a", {sink.address()}), {}, options);
  a.start();
  CHECK(run_until(io, [&] { return a.driver_stats().exchanges_skipped_busy >= 3; }));
  CHECK(a.driver_stats().exchanges_started == 1);
  CHECK(a.driver_stats().exchanges_refused == 0);
  // The first one times out: the peer is free again.
  CHECK(run_until(io, [&] { return a.driver_stats().exchanges_started >= 2; }));
  CHECK(a.driver_stats().timeouts >= 1);
  a.stop();
}
