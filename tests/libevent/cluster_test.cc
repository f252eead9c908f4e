// The libevent-specific surface of the driver: construction and validation,
// waits through callbacks (timeouts, cancellation at stop), hooks that stop
// or destroy their own cluster, the caps, the UDP read loop, host names, the
// one re-armed timer, and TLS close_notify on the wire. The behaviour every
// driver shares is in tests/conformance.
#include "aiocluster/libevent/cluster.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <thread>

#include "aiocluster/framing.h"
#include "test_pki.h"

namespace ac = aiocluster;
namespace ld = aiocluster::libevent_driver;
using namespace std::chrono_literals;

namespace {

constexpr ac::Duration kPatience = 20s;

ac::Config config_for(const std::string& name, std::vector<ac::Address> seeds = {},
                      const std::string& cluster_id = "libevent-test") {
  static std::atomic<std::uint64_t> generation{1};
  ac::Config c;
  c.cluster_id = cluster_id;
  c.node_id = ac::NodeId{name, generation++, ac::Address{"127.0.0.1", 0}, ""};
  c.seeds = std::move(seeds);
  c.gossip_interval = 20ms;
  c.failure_detector.initial_interval = 80ms;
  return c;
}

// An event_base per test, freed last.
class Base {
 public:
  Base() : base_(event_base_new()) {
    REQUIRE(base_ != nullptr);
    std::signal(SIGPIPE, SIG_IGN);
  }
  ~Base() { event_base_free(base_); }
  Base(const Base&) = delete;
  Base& operator=(const Base&) = delete;
  operator event_base*() const { return base_; }

  void run_for(ac::Duration slice) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(slice).count();
    const timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
    event_base_loopexit(base_, &tv);
    event_base_dispatch(base_);
  }

  template <typename Done>
  bool run_until(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + kPatience;
    while (!done() && std::chrono::steady_clock::now() < deadline) run_for(5ms);
    return done();
  }

  int registered() const { return event_base_get_num_events(base_, EVENT_BASE_COUNT_ADDED); }

 private:
  event_base* base_;
};

// A blocking TCP socket with a receive timeout, for peers played by a test
// thread.
int blocking_socket() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const timeval limit{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  return fd;
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

bool ssl_read_exact(SSL* ssl, std::uint8_t* out, std::size_t n) {
  while (n > 0) {
    const int got = SSL_read(ssl, out, static_cast<int>(n));
    if (got <= 0) return false;
    out += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

std::optional<ac::Bytes> ssl_read_frame(SSL* ssl) {
  std::uint8_t header[4];
  if (!ssl_read_exact(ssl, header, 4)) return std::nullopt;
  const std::size_t size = (std::size_t{header[0]} << 24) | (std::size_t{header[1]} << 16) |
                           (std::size_t{header[2]} << 8) | header[3];
  ac::Bytes payload(size);
  if (!ssl_read_exact(ssl, payload.data(), size)) return std::nullopt;
  return payload;
}

bool ssl_write_frame(SSL* ssl, const ac::Bytes& packet) {
  const ac::Bytes frame = ac::encode_frame(packet);
  return SSL_write(ssl, frame.data(), static_cast<int>(frame.size())) ==
         static_cast<int>(frame.size());
}

// After the exchange, the next read must see the peer's close_notify.
bool saw_close_notify(SSL* ssl) {
  std::uint8_t byte;
  const int got = SSL_read(ssl, &byte, 1);
  return got == 0 && SSL_get_error(ssl, got) == SSL_ERROR_ZERO_RETURN;
}

SSL_CTX* raw_context(const SSL_METHOD* method, const ac::conformance::TlsFiles& files) {
  SSL_CTX* ctx = SSL_CTX_new(method);
  REQUIRE(SSL_CTX_use_certificate_chain_file(ctx, files.cert.c_str()) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey_file(ctx, files.key.c_str(), SSL_FILETYPE_PEM) == 1);
  REQUIRE(SSL_CTX_load_verify_locations(ctx, files.ca.c_str(), nullptr) == 1);
  return ctx;
}

// The first Syn a core node of `cluster_id` sends to its seed.
ac::Bytes syn_from_core(const std::string& cluster_id) {
  ac::Config c = config_for("raw", {{"127.0.0.1", 9}}, cluster_id);
  c.node_id.gossip_advertise_addr.port = 8;
  const ac::Instant now = std::chrono::steady_clock::now();
  ac::Node core(c, now, 7);
  core.handle_timeout(now + c.gossip_interval * 2);  // the first round is due
  auto tx = core.poll_transmit();
  REQUIRE(tx);
  return tx->payload;
}

}  // namespace

TEST_CASE("construction: port 0 takes the bound port; bad config and options are refused by name") {
  Base base;
  ld::Cluster a(base, config_for("a"));
  a.start();  // listening: the port cannot be bound again
  CHECK(a.local_address().host == "127.0.0.1");
  CHECK(a.local_address().port != 0);
  CHECK(a.self_id().gossip_advertise_addr == a.local_address());
  CHECK(a.base() == static_cast<event_base*>(base));

  ac::Config bad = config_for("b");
  bad.cluster_id.clear();
  CHECK_THROWS_WITH_AS(ld::Cluster(base, bad), doctest::Contains("cluster_id"), ac::ConfigError);
  CHECK_THROWS_WITH_AS(ld::Cluster(nullptr, config_for("n")), doctest::Contains("base"),
                       std::invalid_argument);

  ld::Options udp_tls;
  udp_tls.transport = ld::Transport::kUdp;
  udp_tls.tls = ld::TlsOptions{"c.pem", "k.pem", "ca.pem", true, {}, false};
  CHECK_THROWS_WITH_AS(ld::Cluster(base, config_for("c"), {}, udp_tls), doctest::Contains("tls"),
                       std::invalid_argument);

  ld::Options zero;
  zero.read_timeout = 0s;
  CHECK_THROWS_WITH_AS(ld::Cluster(base, config_for("d"), {}, zero),
                       doctest::Contains("read_timeout"), std::invalid_argument);

  ld::Options missing_files;
  missing_files.tls = ld::TlsOptions{
      "/nonexistent/c.pem", "/nonexistent/k.pem", "/nonexistent/ca.pem", true, {}, false};
  CHECK_THROWS_WITH_AS(ld::Cluster(base, config_for("e"), {}, missing_files),
                       doctest::Contains("tls.cert_file"), std::system_error);

  // The port is taken: binding fails loudly, at construction.
  ac::Config clash = config_for("f");
  clash.node_id.gossip_advertise_addr = a.local_address();
  CHECK_THROWS_AS(ld::Cluster(base, clash), std::system_error);

  ac::Config nowhere = config_for("g");
  nowhere.node_id.gossip_advertise_addr.host = "no-such-host.invalid";
  CHECK_THROWS_WITH_AS(ld::Cluster(base, nowhere), doctest::Contains("listen host"),
                       std::system_error);
}

TEST_CASE("waits complete through callbacks run from the event_base, never inline") {
  Base base;
  ld::Cluster a(base, config_for("a"));
  ld::Cluster b(base, config_for("b", {a.local_address()}));
  a.start();
  b.start();
  std::optional<std::error_code> self_only;
  a.wait_live(1, kPatience, [&](std::error_code ec) { self_only = ec; });
  CHECK_FALSE(self_only);  // true at once, but delivered from the loop
  std::optional<std::error_code> live;
  std::optional<std::error_code> key;
  a.wait_live(2, kPatience, [&](std::error_code ec) { live = ec; });
  b.set("color", "green");
  a.wait_key("b", "color", "green", kPatience, [&](std::error_code ec) { key = ec; });
  CHECK(base.run_until([&] { return self_only && live && key; }));
  CHECK(self_only == std::error_code{});
  CHECK(live == std::error_code{});
  CHECK(key == std::error_code{});
  CHECK(ld::Cluster::has_key_value(a.node(), "b", "color", "green"));
  CHECK_FALSE(ld::Cluster::has_key_value(a.node(), "b", "color", "red"));
}

TEST_CASE("waits time out, and stop cancels those still pending") {
  Base base;
  ld::Cluster a(base, config_for("a"));
  a.start();
  std::optional<std::error_code> timed;
  std::optional<std::error_code> canceled;
  a.wait_live(5, 50ms, [&](std::error_code ec) { timed = ec; });
  a.wait_key("nobody", "k", "v", kPatience, [&](std::error_code ec) { canceled = ec; });
  CHECK(base.run_until([&] { return timed.has_value(); }));
  CHECK(*timed == std::errc::timed_out);
  CHECK_FALSE(canceled);
  a.stop();
  CHECK_FALSE(a.running());
  CHECK(base.run_until([&] { return canceled.has_value(); }));
  CHECK(*canceled == std::errc::operation_canceled);
  // A wait started after stop completes with operation_canceled.
  std::optional<std::error_code> late;
  a.wait_live(1, kPatience, [&](std::error_code ec) { late = ec; });
  CHECK(base.run_until([&] { return late.has_value(); }));
  CHECK(*late == std::errc::operation_canceled);
  // Nothing of the cluster is left on the base.
  CHECK(base.registered() == 0);
  CHECK(event_base_loop(base, EVLOOP_NONBLOCK) == 1);  // 1: no events
}

TEST_CASE(
    "one timer, re-armed from the core's deadline: a lone node keeps two events (listener, "
    "timer)") {
  Base base;
  ld::Cluster a(base, config_for("a"));
  a.start();
  CHECK(base.registered() == 2);
  base.run_for(200ms);  // about ten rounds
  CHECK(a.stats().rounds >= 3);
  CHECK(base.registered() == 2);
  a.stop();
  CHECK(base.registered() == 0);
}

TEST_CASE("a hook may stop its own cluster; the rest of the queue is drained within the timeout") {
  Base base;
  ld::Cluster a(base, config_for("a"), {{"k1", "v"}, {"k2", "v"}, {"k3", "v"}});
  int seen = 0;
  a.on_key_change([&](const ac::NodeId&, const std::string&,
                      const std::optional<ac::VersionedValue>&, const ac::VersionedValue&) {
    if (++seen == 1) a.stop();
  });
  a.start();
  CHECK(base.run_until([&] { return base.registered() == 0; }));
  CHECK_FALSE(a.running());
  CHECK(seen == 3);  // queued before the stop: drained, not lost
  CHECK(a.hook_stats().processed == 3);
  CHECK(a.hook_stats().dropped == 0);
}

TEST_CASE("a hook may destroy its own cluster") {
  Base base;
  auto a =
      std::make_unique<ld::Cluster>(base, config_for("a"), ac::KeyValues{{"k1", "v"}, {"k2", "v"}});
  int seen = 0;
  a->on_key_change([&](const ac::NodeId&, const std::string&,
                       const std::optional<ac::VersionedValue>&, const ac::VersionedValue&) {
    ++seen;
    a.reset();  // the queue is drained by the run on the stack
  });
  a->start();
  CHECK(base.run_until([&] { return !a && base.registered() == 0; }));
  CHECK(seen == 2);
}

TEST_CASE("stop drops the queued hooks it cannot run within hook_drain_timeout") {
  Base base;
  ld::Options options;
  options.hook_drain_timeout = 0s;
  ld::Cluster a(base, config_for("a"), {{"k1", "v"}, {"k2", "v"}}, options);
  int seen = 0;
  a.on_key_change([&](const ac::NodeId&, const std::string&,
                      const std::optional<ac::VersionedValue>&,
                      const ac::VersionedValue&) { ++seen; });
  a.start();  // queues the two initial keys; nothing has run yet
  a.stop();
  base.run_for(50ms);
  CHECK(seen == 0);
  CHECK(a.hook_stats().enqueued == 2);
  CHECK(a.hook_stats().dropped == 2);
}

// A listener that never accepts: connects complete in its backlog and an
// exchange waits for a reply that never comes, until its read timeout.
class SilentPeer {
 public:
  SilentPeer() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr = loopback(0);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentPeer() { ::close(fd_); }
  SilentPeer(const SilentPeer&) = delete;
  SilentPeer& operator=(const SilentPeer&) = delete;
  ac::Address address() const { return {"127.0.0.1", port_}; }

 private:
  int fd_;
  std::uint16_t port_ = 0;
};

TEST_CASE("TCP exchanges beyond max_outgoing_exchanges are refused and counted") {
  Base base;
  const SilentPeer sink;
  ld::Options options;
  options.max_outgoing_exchanges = 1;
  options.read_timeout = 10s;
  ld::Cluster a(base, config_for("a", {sink.address()}), {}, options);
  a.start();
  CHECK(base.run_until([&] { return a.driver_stats().exchanges_refused >= 2; }));
  CHECK(a.driver_stats().exchanges_started == 1);
  a.stop();
}

TEST_CASE("TCP: no second exchange to a peer while ours is still running") {
  Base base;
  const SilentPeer sink;
  ld::Options options;
  options.read_timeout = 1s;
  ld::Cluster a(base, config_for("a", {sink.address()}), {}, options);
  a.start();
  CHECK(base.run_until([&] { return a.driver_stats().exchanges_skipped_busy >= 3; }));
  CHECK(a.driver_stats().exchanges_started == 1);
  CHECK(a.driver_stats().exchanges_refused == 0);
  // The first one times out: the peer is free again.
  CHECK(base.run_until([&] { return a.driver_stats().exchanges_started >= 2; }));
  CHECK(a.driver_stats().timeouts >= 1);
  a.stop();
}

TEST_CASE("UDP: a burst of datagrams is read until the socket would block") {
  Base base;
  ld::Options options;
  options.transport = ld::Transport::kUdp;
  ld::Cluster a(base, config_for("a"), {}, options);
  a.start();
  const int raw = ::socket(AF_INET, SOCK_DGRAM, 0);
  const sockaddr_in to = loopback(a.local_address().port);
  constexpr int kBurst = 100;
  for (int i = 0; i < kBurst; ++i) {
    const std::uint8_t junk[3] = {0xff, 0xff, static_cast<std::uint8_t>(i)};
    REQUIRE(::sendto(raw, junk, sizeof junk, 0, reinterpret_cast<const sockaddr*>(&to),
                     sizeof to) == 3);
  }
  ::close(raw);
  CHECK(base.run_until([&] { return a.driver_stats().datagrams_in == kBurst; }));
  CHECK(a.stats().dropped_malformed == kBurst);
}

TEST_CASE("host names: TCP targets resolve with the system resolver, or through an evdns_base") {
  for (const bool with_evdns : {false, true}) {
    CAPTURE(with_evdns);
    Base base;
    evdns_base* dns = nullptr;
    if (with_evdns) {
      dns = evdns_base_new(base, 0);
      REQUIRE(dns != nullptr);
      REQUIRE(evdns_base_load_hosts(dns, nullptr) == 0);  // "localhost" from /etc/hosts, no network
    }
    ld::Cluster a(base, config_for("a"));
    ld::Cluster b(base, config_for("b", {{"localhost", a.local_address().port}}));
    if (dns != nullptr) b.use_dns(dns);
    a.start();
    b.start();
    CHECK(base.run_until([&] { return a.live_nodes().size() == 2 && b.live_nodes().size() == 2; }));
    a.stop();
    b.stop();
    if (dns != nullptr) evdns_base_free(dns, 0);
  }
}

TEST_CASE("TLS: the responder ends the exchange with a close_notify") {
  ac::conformance::TestPki pki;
  Base base;
  const auto server_files = pki.issue("server", {"server.test"});
  ld::Options options;
  options.tls = ld::TlsOptions{
      server_files.cert, server_files.key, server_files.ca, /*mutual=*/false, {}, false};
  ld::Cluster node(base, config_for("server"), {}, options);
  node.start();

  // A raw OpenSSL client of another cluster: the node answers BadCluster
  // and closes the exchange.
  const ac::Bytes syn = syn_from_core("another-cluster");
  const std::uint16_t port = node.local_address().port;
  std::atomic<bool> done{false};
  bool got_reply = false;
  bool close_notify = false;
  std::thread client([&] {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx, server_files.ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    const int fd = blocking_socket();
    const sockaddr_in to = loopback(port);
    SSL* ssl = SSL_new(ctx);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0) {
      SSL_set_fd(ssl, fd);
      SSL_set1_host(ssl, "server.test");
      if (SSL_connect(ssl) == 1 && ssl_write_frame(ssl, syn)) {
        got_reply = ssl_read_frame(ssl).has_value();
        close_notify = got_reply && saw_close_notify(ssl);
      }
    }
    SSL_free(ssl);
    ::close(fd);
    SSL_CTX_free(ctx);
    done = true;
  });
  const bool finished = base.run_until([&] { return done.load(); });
  client.join();
  REQUIRE(finished);
  CHECK(got_reply);
  CHECK(close_notify);
  CHECK(node.stats().dropped_wrong_cluster == 1);
}

TEST_CASE("TLS: the initiator ends the exchange with a close_notify after its Ack") {
  ac::conformance::TestPki pki;
  Base base;
  const auto server_files =
      pki.issue("peer", {"peer.test"});  // with IP 127.0.0.1: the seed is dialled by IP
  const auto client_files = pki.issue("client", {"client.test"});

  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = loopback(0);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const timeval limit{10, 0};
  ::setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);

  ld::Options options;
  options.tls = ld::TlsOptions{
      client_files.cert, client_files.key, client_files.ca, /*mutual=*/false, {}, false};
  ld::Cluster node(base,
                   config_for("client", {{"127.0.0.1", ntohs(addr.sin_port)}}, "close-notify"), {},
                   options);

  // A raw OpenSSL server that answers the Syn like a core node would.
  std::atomic<bool> done{false};
  bool got_ack = false;
  bool close_notify = false;
  std::thread server([&] {
    SSL_CTX* ctx = raw_context(TLS_server_method(), server_files);
    const int fd = ::accept(listener, nullptr, nullptr);
    SSL* ssl = SSL_new(ctx);
    if (fd >= 0) {
      const timeval io{10, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &io, sizeof io);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        if (auto syn = ssl_read_frame(ssl)) {
          ac::Config c = config_for("raw", {}, "close-notify");
          c.node_id.gossip_advertise_addr.port = 9;
          ac::Node core(c, std::chrono::steady_clock::now(), 11);
          const auto reply = core.handle_packet(*syn, std::chrono::steady_clock::now(),
                                                ac::Inbound{ac::Stage::kStreamOpen})
                                 .reply;
          if (reply && reply->awaits_ack && ssl_write_frame(ssl, reply->payload)) {
            got_ack = ssl_read_frame(ssl).has_value();
            close_notify = got_ack && saw_close_notify(ssl);
          }
        }
      }
      ::close(fd);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    done = true;
  });
  node.start();
  const bool finished = base.run_until([&] { return done.load(); });
  server.join();
  ::close(listener);
  REQUIRE(finished);
  CHECK(got_ack);
  CHECK(close_notify);
  CHECK(node.driver_stats().exchanges_completed >= 1);
}
