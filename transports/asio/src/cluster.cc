#include "aiocluster/asio/cluster.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/read.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <stdexcept>
#include <unordered_set>

#include "aiocluster/exchange.h"
#include "driver_common/exchange_channel.h"
#include "driver_common/net.h"
#include "driver_common/posix_socket.h"
#include "driver_common/tls.h"

namespace aiocluster::asio_driver {

namespace {

using tcp = ::asio::ip::tcp;
using udp = ::asio::ip::udp;
using driver::detail::DriverCore;

std::optional<::asio::ip::address> parse_ip(const std::string& host) {
  std::error_code ec;
  auto address = ::asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;
  return address;
}

// A wait: its completion.
class Waiter final : public driver::detail::Wait {
 public:
  Waiter(Cluster::Predicate predicate, std::unique_ptr<detail::WaitCompletion> completion)
      : Wait(std::move(predicate)), completion_(std::move(completion)) {}

 private:
  void end(driver::detail::WaitEnd how) override {
    using enum driver::detail::WaitEnd;
    completion_->complete(how == kReady      ? std::error_code{}
                          : how == kTimedOut ? make_error_code(::asio::error::timed_out)
                                             : make_error_code(::asio::error::operation_aborted));
  }

  std::unique_ptr<detail::WaitCompletion> completion_;
};

}  // namespace

class Connection;

struct detail::ClusterImpl final : std::enable_shared_from_this<ClusterImpl>, DriverCore::Loop {
  ClusterImpl(::asio::io_context& context, Options options)
      : strand(::asio::make_strand(context)),
        core(std::move(options), *this),
        timer(strand),
        accept_pause(strand),
        udp_resolver(strand) {}

  Address bind(const Config& config);

  // DriverCore::Loop, on the strand
  void listen() override;
  void close_all() override;
  void start_exchange(Transmit tx) override;
  void arm_timer(std::optional<Instant> deadline) override;
  void post_hooks() override;

  void accept();
  void receive_datagram();
  void send_syn(const udp::endpoint& to, Bytes payload);
  void send_datagram(const udp::endpoint& to, Bytes payload);

  Cluster::executor_type strand;
  DriverCore core;
  ::asio::steady_timer timer;

  std::optional<tcp::acceptor> acceptor;
  ::asio::steady_timer accept_pause;
  std::unique_ptr<::asio::ssl::context> server_tls;
  std::unique_ptr<::asio::ssl::context> client_tls;
  std::unordered_set<Connection*> connections;

  std::optional<udp::socket> udp_socket;
  udp::resolver udp_resolver;
  Bytes datagram;
  udp::endpoint datagram_from;
  std::size_t datagrams_in_flight = 0;
};

// Keeps the ClusterImpl alive until a Connection's ExchangeChannel is gone.
struct HoldsImpl {
  std::shared_ptr<detail::ClusterImpl> impl_;
};

// One TCP connection carrying one StreamExchange, as initiator (we send the
// Syn) or responder (we accepted it): connect and handshake, then the
// exchange's writes and reads (ExchangeChannel), each step under its own
// timeout. Handlers own it through shared_from_this().
class Connection final : HoldsImpl,
                         public driver::detail::ExchangeChannel,
                         public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<detail::ClusterImpl> impl, tcp::socket socket, StreamExchange exchange)
      : HoldsImpl{std::move(impl)},
        ExchangeChannel(impl_->core, std::move(exchange)),
        socket_(std::move(socket)),
        deadline_(impl_->strand) {
    impl_->connections.insert(this);
  }

  ~Connection() override { impl_->connections.erase(this); }

  // `target`: the Transmit, its payload already in the exchange.
  void run_initiator(Transmit target) {
    target_ = std::move(target);
    set_target(target_.to);
    arm(options().connect_timeout);
    if (auto ip = parse_ip(peer().host)) {
      connect(std::array{tcp::endpoint(*ip, peer().port)});
      return;
    }
    resolver_.emplace(impl_->strand);
    resolver_->async_resolve(
        peer().host, std::to_string(peer().port),
        [self = shared_from_this()](std::error_code ec, tcp::resolver::results_type results) {
          if (ec) return self->fail_on(ec, &DriverStats::connect_failures, "resolve");
          self->connect(results);
        });
  }

  void run_responder(Address peer) {
    wait_for_syn(std::move(peer));
    if (!impl_->server_tls) return advance();
    tls_.emplace(std::move(socket_), *impl_->server_tls);
    arm(options().read_timeout);
    tls_->async_handshake(
        ::asio::ssl::stream_base::server, [self = shared_from_this()](std::error_code ec) {
          if (ec) return self->fail_on(ec, &DriverStats::tls_failures, "tls handshake (server)");
          self->exchange().set_peer_names(driver::detail::names_for_tls_rule(
              self->tls_->native_handle(), *self->options().tls));
          self->advance();
        });
  }

  // Closes at once: the pending operations complete with an error.
  void close_now() override {
    std::error_code ignored;
    deadline_.cancel();
    if (resolver_) resolver_->cancel();
    lowest().close(ignored);
  }

 private:
  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : socket_; }

  void arm(Duration limit) {
    deadline_.expires_after(limit);
    deadline_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (ec) return;  // re-armed or cancelled
      self->timed_out_ = true;
      std::error_code ignored;
      self->lowest().close(ignored);
    });
  }

  template <typename Endpoints>
  void connect(const Endpoints& endpoints) {
    ::asio::async_connect(socket_, endpoints,
                          [self = shared_from_this()](std::error_code ec, const tcp::endpoint&) {
                            if (ec)
                              return self->fail_on(ec, &DriverStats::connect_failures, "connect");
                            self->on_connected();
                          });
  }

  void on_connected() {
    std::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    if (!impl_->client_tls) return advance();
    tls_.emplace(std::move(socket_), *impl_->client_tls);
    // The server must prove it is the node we meant.
    const std::string name = driver::detail::server_name_to_expect(*options().tls, target_);
    if (!driver::detail::expect_server_name(tls_->native_handle(), name)) {
      return fail(&DriverStats::tls_failures, "tls name", "cannot verify '" + name + "'");
    }
    arm(options().connect_timeout);
    tls_->async_handshake(
        ::asio::ssl::stream_base::client, [self = shared_from_this()](std::error_code ec) {
          if (ec) {
            return self->fail_on(ec, &DriverStats::tls_failures, "tls handshake (client)");
          }
          self->advance();
        });
  }

  // The frame's header, then the packet itself: no copy into a frame.
  void write_frame(Bytes packet) override {
    header_ = frame_header(packet.size());
    out_ = std::move(packet);
    const std::array<::asio::const_buffer, 2> frame{::asio::buffer(header_), ::asio::buffer(out_)};
    arm(options().write_timeout);
    auto done = [self = shared_from_this()](std::error_code ec, std::size_t) {
      if (ec) return self->fail_on(ec, &DriverStats::io_errors, "write");
      self->advance();
    };
    if (tls_) {
      ::asio::async_write(*tls_, frame, std::move(done));
    } else {
      ::asio::async_write(socket_, frame, std::move(done));
    }
  }

  // The whole frame must arrive within read_timeout, armed once: a peer
  // that trickles bytes gets no more time than one that stalls.
  void read_frame() override {
    arm(options().read_timeout);
    read_more();
  }

  // Reads exactly one frame, never past it.
  void read_more() {
    const std::size_t want = std::min(wanted(), in_.size());
    auto done = [self = shared_from_this()](std::error_code ec, std::size_t n) {
      if (ec) return self->fail_on(ec, &DriverStats::io_errors, "read");
      if (self->feed(ByteView(self->in_.data(), n))) self->read_more();
    };
    if (tls_) {
      tls_->async_read_some(::asio::buffer(in_.data(), want), std::move(done));
    } else {
      socket_.async_read_some(::asio::buffer(in_.data(), want), std::move(done));
    }
  }

  void finish() override {
    if (!tls_ || core().stopped()) return close_now();
    // close_notify, bounded by the write timeout.
    arm(options().write_timeout);
    tls_->async_shutdown([self = shared_from_this()](std::error_code) { self->close_now(); });
  }

  void fail_on(std::error_code ec, std::uint64_t DriverStats::*counter, const char* step) {
    if (timed_out_) return fail(&DriverStats::timeouts, step, "timed out");
    fail(counter, step, ec.message());
  }

  tcp::socket socket_;  // moved into tls_ once TLS starts
  std::optional<::asio::ssl::stream<tcp::socket>> tls_;
  std::optional<tcp::resolver> resolver_;
  ::asio::steady_timer deadline_;
  std::array<std::uint8_t, 16 * 1024> in_{};
  std::array<std::uint8_t, kFrameHeaderSize> header_{};
  Bytes out_;
  bool timed_out_ = false;
  Transmit target_;  // initiator
};

// --- detail::ClusterImpl ---

Address detail::ClusterImpl::bind(const Config& config) {
  const Options& options = core.options();
  driver::detail::BoundSocket bound = driver::detail::bind_socket(config, options);
  const bool v6 = bound.family == AF_INET6;
  if (options.transport == Transport::kUdp) {
    udp_socket.emplace(strand, v6 ? udp::v6() : udp::v4(), bound.socket.release());
    return bound.local;
  }
  acceptor.emplace(strand, v6 ? tcp::v6() : tcp::v4(), bound.socket.release());
  if (options.tls) {
    // The shared TLS rules; Asio owns the contexts from here on.
    server_tls = std::make_unique<::asio::ssl::context>(
        driver::detail::make_server_context(*options.tls).release());
    client_tls = std::make_unique<::asio::ssl::context>(
        driver::detail::make_client_context(*options.tls).release());
  }
  return bound.local;
}

void detail::ClusterImpl::listen() {
  if (acceptor) {
    acceptor->listen();
    accept();
  } else {
    datagram.resize(driver::detail::datagram_buffer_size(core.node().config()));
    receive_datagram();
  }
}

void detail::ClusterImpl::close_all() {
  std::error_code ignored;
  timer.cancel();
  accept_pause.cancel();
  udp_resolver.cancel();
  if (acceptor) acceptor->close(ignored);
  if (udp_socket) udp_socket->close(ignored);
  // close_now() never destroys a Connection here: the handlers own them.
  for (Connection* connection : connections) connection->close_now();
}

void detail::ClusterImpl::arm_timer(std::optional<Instant> deadline) {
  if (!deadline) {
    timer.cancel();
    return;
  }
  timer.expires_at(*deadline);
  timer.async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec) self->core.handle_timeout();
  });
}

void detail::ClusterImpl::post_hooks() {
  ::asio::post(strand, [self = shared_from_this()] { self->core.run_hooks(); });
}

void detail::ClusterImpl::start_exchange(Transmit tx) {
  if (acceptor) {
    auto connection = std::make_shared<Connection>(shared_from_this(), tcp::socket(strand),
                                                   StreamExchange::initiate(std::move(tx.payload)));
    connection->run_initiator(std::move(tx));
    return;
  }
  if (auto ip = parse_ip(tx.to.host)) {
    send_syn(udp::endpoint(*ip, tx.to.port), std::move(tx.payload));
    return;
  }
  // A host name: the first address of this socket's family (IPv4 mapped
  // into IPv6 for an IPv6 socket). The reply comes from that address, keyed
  // the same way.
  const Address to = tx.to;
  udp_resolver.async_resolve(
      udp_socket->local_endpoint().protocol(), to.host, std::to_string(to.port),
      udp::resolver::v4_mapped,
      [self = shared_from_this(), to, payload = std::move(tx.payload)](
          std::error_code ec, udp::resolver::results_type results) mutable {
        if (self->core.stopped()) return;
        if (ec || results.empty()) {
          ++self->core.stats().connect_failures;
          self->core.log("cannot resolve " + to.to_string() + ": " + ec.message());
          return;
        }
        self->send_syn(results.begin()->endpoint(), std::move(payload));
      });
}

void detail::ClusterImpl::accept() {
  acceptor->async_accept([self = shared_from_this()](std::error_code ec, tcp::socket socket) {
    if (self->core.stopped()) return;
    DriverStats& stats = self->core.stats();
    if (ec) {
      // Out of descriptors, most likely: pause instead of spinning.
      ++stats.io_errors;
      self->core.log("accept: " + ec.message());
      self->accept_pause.expires_after(100ms);
      self->accept_pause.async_wait([self](std::error_code wait_ec) {
        if (!wait_ec && !self->core.stopped()) self->accept();
      });
      return;
    }
    std::error_code remote_ec;
    const tcp::endpoint remote = socket.remote_endpoint(remote_ec);
    const Address peer = remote_ec ? Address{} : driver::detail::numeric_address(remote.data());
    if (remote_ec) ++stats.io_errors;  // reset before we got to it
    if (remote_ec || !self->core.admit(peer.host)) {
      std::error_code ignored;
      socket.close(ignored);
    } else {
      auto connection =
          std::make_shared<Connection>(self, std::move(socket), StreamExchange::respond());
      connection->run_responder(peer);
    }
    self->accept();
  });
}

void detail::ClusterImpl::receive_datagram() {
  udp_socket->async_receive_from(
      ::asio::buffer(datagram), datagram_from,
      [self = shared_from_this()](std::error_code ec, std::size_t n) {
        if (self->core.stopped()) return;
        if (ec) {
          // ICMP errors of earlier sends surface here on some systems.
          ++self->core.stats().io_errors;
        } else {
          const udp::endpoint from = self->datagram_from;
          self->core.handle_datagram(
              ByteView(self->datagram.data(), n), driver::detail::peer_key(from.data()),
              [&](Bytes reply) { self->send_datagram(from, std::move(reply)); });
        }
        self->receive_datagram();
      });
}

// A Syn over UDP: the reply from `to` answers it.
void detail::ClusterImpl::send_syn(const udp::endpoint& to, Bytes payload) {
  core.datagram_sent(driver::detail::peer_key(to.data()));
  send_datagram(to, std::move(payload));
}

void detail::ClusterImpl::send_datagram(const udp::endpoint& to, Bytes payload) {
  if (datagrams_in_flight >= core.options().max_pending_datagrams) {
    ++core.stats().exchanges_refused;
    return;
  }
  ++datagrams_in_flight;
  auto buffer = std::make_shared<Bytes>(std::move(payload));
  udp_socket->async_send_to(::asio::buffer(*buffer), to,
                            [self = shared_from_this(), buffer](std::error_code ec, std::size_t) {
                              --self->datagrams_in_flight;
                              if (!ec) {
                                ++self->core.stats().datagrams_out;
                              } else if (!self->core.stopped()) {
                                ++self->core.stats().io_errors;
                              }
                            });
}

// --- Cluster ---

Cluster::Cluster(::asio::io_context& io, Config config, const KeyValues& initial_key_values,
                 Options options)
    : impl_(std::make_shared<detail::ClusterImpl>(io, std::move(options))) {
  build(impl_->core, std::move(config), initial_key_values,
        [this](const Config& bound_config) { return impl_->bind(bound_config); });
}

Cluster::~Cluster() { impl_->core.stop(); }

void Cluster::start() { impl_->core.start(); }
void Cluster::stop() { impl_->core.stop(); }
Cluster::executor_type Cluster::get_executor() const { return impl_->strand; }

void Cluster::add_wait(Predicate predicate, Duration timeout,
                       std::unique_ptr<detail::WaitCompletion> completion) {
  auto waiter = std::make_shared<Waiter>(std::move(predicate), std::move(completion));
  ::asio::post(impl_->strand,
               [impl = impl_, waiter, timeout] { impl->core.add_wait(waiter, timeout); });
}

}  // namespace aiocluster::asio_driver
