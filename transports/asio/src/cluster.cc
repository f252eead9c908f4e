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
#include <list>
#include <stdexcept>
#include <unordered_set>

#include "aiocluster/common/waits.h"
#include "aiocluster/framing.h"
#include "driver_common/frame_reader.h"
#include "driver_common/hook_queue.h"
#include "driver_common/net.h"
#include "driver_common/tls.h"
#include "driver_common/waiting_connections.h"

namespace aiocluster::asio_driver {

namespace {

using tcp = ::asio::ip::tcp;
using udp = ::asio::ip::udp;

Instant clock_now() { return std::chrono::steady_clock::now(); }

// Addresses handed to the core: numeric, IPv4-mapped folded (shared rule).
template <typename Endpoint>
Address numeric_address(const Endpoint& endpoint) {
  return driver::detail::numeric_address(endpoint.data());
}

std::optional<::asio::ip::address> parse_ip(const std::string& host) {
  std::error_code ec;
  auto address = ::asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;
  return address;
}

}  // namespace

class Connection;

struct Waiter {
  Waiter(Cluster::Predicate p, std::unique_ptr<detail::WaitCompletion> c,
         const Cluster::executor_type& ex)
      : predicate(std::move(p)), completion(std::move(c)), timer(ex) {}
  Cluster::Predicate predicate;
  std::unique_ptr<detail::WaitCompletion> completion;
  ::asio::steady_timer timer;
  bool done = false;
};

struct detail::ClusterImpl : std::enable_shared_from_this<ClusterImpl> {
  ClusterImpl(::asio::io_context& context, Options opts)
      : io(context),
        strand(::asio::make_strand(context)),
        options(std::move(opts)),
        timer(strand),
        accept_pause(strand),
        waiting(options.max_waiting_per_host),
        large_frames(options.max_large_frame_bytes),
        udp_resolver(strand),
        hooks(options.hook_queue_capacity) {}

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }

  void bind(Config& config);
  void start();
  void stop();

  void after_input();
  void arm_timer();
  void start_exchange(Transmit tx);
  void accept();
  void receive_datagram();
  void send_datagram(const udp::endpoint& to, Bytes payload);
  void schedule_hooks();
  void register_wait(std::shared_ptr<Waiter> waiter, Duration timeout);
  void finish_wait(const std::shared_ptr<Waiter>& waiter, std::error_code ec);
  void check_waiters();

  ::asio::io_context& io;
  Cluster::executor_type strand;
  Options options;
  std::optional<Node> node;
  ::asio::steady_timer timer;
  std::optional<Instant> armed_for;
  bool started = false;
  bool stopped = false;
  Address bound;

  std::optional<tcp::acceptor> acceptor;
  ::asio::steady_timer accept_pause;
  std::unique_ptr<::asio::ssl::context> server_tls;
  std::unique_ptr<::asio::ssl::context> client_tls;
  std::unordered_set<Connection*> connections;
  driver::detail::WaitingConnections<Connection> waiting;  // responders before their Syn
  driver::detail::LargeFrameBudget large_frames;
  std::size_t outgoing = 0;
  std::size_t inbound = 0;

  std::optional<udp::socket> udp_socket;
  udp::resolver udp_resolver;
  Bytes datagram;
  udp::endpoint datagram_from;
  std::size_t datagrams_in_flight = 0;

  driver::detail::HookQueue hooks;
  bool hooks_posted = false;
  std::optional<std::chrono::steady_clock::time_point> hook_deadline;  // set by stop()
  std::list<std::shared_ptr<Waiter>> waiters;
  DriverStats stats;
};

// One TCP exchange, as initiator (we sent the Syn) or responder (we accepted
// the connection): connect / handshake, then framed messages, each step
// under its own timeout.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class Role : std::uint8_t { kInitiator, kResponder };

  Connection(std::shared_ptr<detail::ClusterImpl> impl, tcp::socket socket, Role role)
      : impl_(std::move(impl)),
        role_(role),
        socket_(std::move(socket)),
        deadline_(impl_->strand),
        reader_(impl_->node->config(), impl_->large_frames) {
    impl_->connections.insert(this);
    ++(role_ == Role::kInitiator ? impl_->outgoing : impl_->inbound);
  }

  ~Connection() {
    stop_waiting();
    impl_->connections.erase(this);
    --(role_ == Role::kInitiator ? impl_->outgoing : impl_->inbound);
  }

  void run_initiator(Transmit tx) {
    tx_ = std::move(tx);
    arm(impl_->options.connect_timeout);
    if (auto ip = parse_ip(tx_.to.host)) {
      connect(std::array{tcp::endpoint(*ip, tx_.to.port)});
      return;
    }
    resolver_.emplace(impl_->strand);
    resolver_->async_resolve(
        tx_.to.host, std::to_string(tx_.to.port),
        [self = shared_from_this()](std::error_code ec, tcp::resolver::results_type results) {
          if (ec) return self->fail(ec, &DriverStats::connect_failures, "resolve");
          self->connect(results);
        });
  }

  void run_responder(Address peer) {
    peer_ = std::move(peer);
    waiting_slot_ = impl_->waiting.add(this, peer_.host);
    if (!impl_->server_tls) {
      read_frame([self = shared_from_this()](Bytes frame) { self->on_syn(std::move(frame)); });
      return;
    }
    tls_.emplace(std::move(socket_), *impl_->server_tls);
    arm(impl_->options.read_timeout);
    tls_->async_handshake(
        ::asio::ssl::stream_base::server, [self = shared_from_this()](std::error_code ec) {
          if (ec) return self->fail(ec, &DriverStats::tls_failures, "tls handshake (server)");
          self->peer_names_ = driver::detail::names_for_tls_rule(self->tls_->native_handle(),
                                                                 *self->impl_->options.tls);
          self->read_frame([self](Bytes frame) { self->on_syn(std::move(frame)); });
        });
  }

  // Closes to make room for a newer connection (already out of `waiting`).
  void evict() {
    waiting_slot_.reset();
    evicted_ = true;
    abort();
  }

  // Closes at once: the pending operations complete with an error.
  void abort() {
    std::error_code ignored;
    deadline_.cancel();
    if (resolver_) resolver_->cancel();
    lowest().close(ignored);
  }

 private:
  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : socket_; }

  void stop_waiting() {
    if (waiting_slot_) impl_->waiting.remove(*waiting_slot_);
    waiting_slot_.reset();
  }

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
                              return self->fail(ec, &DriverStats::connect_failures, "connect");
                            self->on_connected();
                          });
  }

  void on_connected() {
    std::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    if (!impl_->client_tls) return send_syn();
    tls_.emplace(std::move(socket_), *impl_->client_tls);
    // The server must prove it is the node we meant.
    const std::string name = driver::detail::server_name_to_expect(*impl_->options.tls, tx_);
    if (!driver::detail::expect_server_name(tls_->native_handle(), name)) {
      return fail(std::make_error_code(std::errc::invalid_argument), &DriverStats::tls_failures,
                  "tls name");
    }
    arm(impl_->options.connect_timeout);
    tls_->async_handshake(
        ::asio::ssl::stream_base::client, [self = shared_from_this()](std::error_code ec) {
          if (ec) return self->fail(ec, &DriverStats::tls_failures, "tls handshake (client)");
          self->send_syn();
        });
  }

  void send_syn() {
    write(std::move(tx_.payload), [self = shared_from_this()] {
      self->read_frame([self](Bytes frame) { self->on_reply(std::move(frame)); });
    });
  }

  void on_reply(Bytes frame) {
    detail::ClusterImpl& impl = *impl_;
    if (impl.stopped) return abort();
    auto reply = impl.node->handle_packet(std::move(frame), clock_now(),
                                          Inbound{tx_.to, Stage::kStreamReply, {}});
    impl.after_input();
    ++impl.stats.exchanges_completed;
    if (!reply) return finish();
    write(std::move(reply->payload), [self = shared_from_this()] { self->finish(); });
  }

  void on_syn(Bytes frame) {
    stop_waiting();
    detail::ClusterImpl& impl = *impl_;
    if (impl.stopped) return abort();
    auto reply = impl.node->handle_packet(std::move(frame), clock_now(),
                                          Inbound{peer_, Stage::kStreamOpen, peer_names_});
    impl.after_input();
    if (!reply) return finish();
    if (!reply->awaits_ack) {
      write(std::move(reply->payload), [self = shared_from_this()] { self->finish(); });
      return;
    }
    write(std::move(reply->payload), [self = shared_from_this()] {
      self->read_frame([self](Bytes ack) { self->on_ack(std::move(ack)); });
    });
  }

  void on_ack(Bytes frame) {
    detail::ClusterImpl& impl = *impl_;
    if (impl.stopped) return abort();
    impl.node->handle_packet(std::move(frame), clock_now(),
                             Inbound{peer_, Stage::kStreamAck, peer_names_});
    impl.after_input();
    finish();
  }

  // The frame's header, then the packet itself: no copy into a frame.
  template <typename Next>
  void write(Bytes packet, Next next) {
    header_ = frame_header(packet.size());
    out_ = std::move(packet);
    const std::array<::asio::const_buffer, 2> frame{::asio::buffer(header_), ::asio::buffer(out_)};
    arm(impl_->options.write_timeout);
    auto done = [self = shared_from_this(), next = std::move(next)](std::error_code ec,
                                                                    std::size_t) mutable {
      if (ec) return self->fail(ec, &DriverStats::io_errors, "write");
      next();
    };
    if (tls_) {
      ::asio::async_write(*tls_, frame, std::move(done));
    } else {
      ::asio::async_write(socket_, frame, std::move(done));
    }
  }

  // Reads exactly one frame through the shared reader, never past it. The
  // whole frame must arrive within read_timeout: a peer that trickles bytes
  // gets no more time than one that stalls.
  template <typename Next>
  void read_frame(Next next) {
    arm(impl_->options.read_timeout);
    read_more(std::move(next));
  }

  template <typename Next>
  void read_more(Next next) {
    if (auto frame = reader_.next_frame()) return next(std::move(*frame));
    const std::size_t want = std::min(reader_.wanted(), in_.size());
    auto done = [self = shared_from_this(), next = std::move(next)](std::error_code ec,
                                                                    std::size_t n) mutable {
      if (ec) return self->fail(ec, &DriverStats::io_errors, "read");
      using Status = driver::detail::FrameReader::Status;
      switch (self->reader_.feed(ByteView(self->in_.data(), n))) {
        case Status::kOk:
          return self->read_more(std::move(next));
        case Status::kBadLength:
          ++self->impl_->stats.framing_errors;
          self->impl_->log("closing " + self->peer_text() + ": bad frame length");
          return self->abort();
        case Status::kOverBudget:
          ++self->impl_->stats.large_frames_refused;
          self->impl_->log("closing " + self->peer_text() + ": no room for a large frame");
          return self->abort();
      }
    };
    if (tls_) {
      tls_->async_read_some(::asio::buffer(in_.data(), want), std::move(done));
    } else {
      socket_.async_read_some(::asio::buffer(in_.data(), want), std::move(done));
    }
  }

  void finish() {
    if (!tls_ || impl_->stopped) return abort();
    // close_notify, bounded by the write timeout.
    arm(impl_->options.write_timeout);
    tls_->async_shutdown([self = shared_from_this()](std::error_code) { self->abort(); });
  }

  void fail(std::error_code ec, std::uint64_t DriverStats::*counter, const char* step) {
    abort();
    if (impl_->stopped || evicted_) return;
    ++(timed_out_ ? impl_->stats.timeouts : impl_->stats.*counter);
    impl_->log(std::string(step) + " " + peer_text() + ": " +
               (timed_out_ ? "timed out" : ec.message()));
  }

  std::string peer_text() const {
    return role_ == Role::kInitiator ? tx_.to.to_string() : peer_.to_string();
  }

  std::shared_ptr<detail::ClusterImpl> impl_;
  Role role_;
  tcp::socket socket_;  // moved into tls_ once TLS starts
  std::optional<::asio::ssl::stream<tcp::socket>> tls_;
  std::optional<tcp::resolver> resolver_;
  ::asio::steady_timer deadline_;
  driver::detail::FrameReader reader_;
  std::array<std::uint8_t, 16 * 1024> in_{};
  std::array<std::uint8_t, kFrameHeaderSize> header_{};
  Bytes out_;
  bool timed_out_ = false;
  bool evicted_ = false;  // counted once, as connections_evicted
  // Set while a responder waits for its Syn.
  std::optional<driver::detail::WaitingConnections<Connection>::Slot> waiting_slot_;
  Transmit tx_;                                         // initiator
  Address peer_;                                        // responder
  std::optional<std::vector<std::string>> peer_names_;  // responder, mutual TLS
};

// --- detail::ClusterImpl ---

void detail::ClusterImpl::bind(Config& config) {
  const Address& advertise = config.node_id.gossip_advertise_addr;
  const Address listen = options.listen.value_or(advertise);
  std::error_code ec;
  ::asio::ip::address ip;
  if (auto parsed = parse_ip(listen.host)) {
    ip = *parsed;
  } else {
    const int type = options.transport == Transport::kTcp ? SOCK_STREAM : SOCK_DGRAM;
    const auto found = driver::detail::resolve_or_throw(listen, type, AF_UNSPEC, "listen host");
    ip = ::asio::ip::make_address(driver::detail::numeric_address(found.get()).host);
  }
  if (options.transport == Transport::kTcp) {
    const tcp::endpoint endpoint(ip, listen.port);
    acceptor.emplace(strand);
    acceptor->open(endpoint.protocol());
    acceptor->set_option(tcp::acceptor::reuse_address(true));
    acceptor->bind(endpoint, ec);
    if (ec) throw std::system_error(ec, "cannot bind tcp " + listen.to_string());
    bound = numeric_address(acceptor->local_endpoint());
    if (options.tls) {
      // The shared TLS rules; Asio owns the contexts from here on.
      server_tls = std::make_unique<::asio::ssl::context>(
          driver::detail::make_server_context(*options.tls).release());
      client_tls = std::make_unique<::asio::ssl::context>(
          driver::detail::make_client_context(*options.tls).release());
    }
  } else {
    const udp::endpoint endpoint(ip, listen.port);
    udp_socket.emplace(strand);
    udp_socket->open(endpoint.protocol());
    udp_socket->bind(endpoint, ec);
    if (ec) throw std::system_error(ec, "cannot bind udp " + listen.to_string());
    bound = numeric_address(udp_socket->local_endpoint());
    // The core matches datagram replies by the exact address a Syn went
    // to, and sources are reported numerically: seeds must be numeric too.
    driver::detail::make_seeds_numeric(config, endpoint.protocol().family(), options.log);
  }
  if (config.node_id.gossip_advertise_addr.port == 0)
    config.node_id.gossip_advertise_addr.port = bound.port;
}

void detail::ClusterImpl::start() {
  if (started || stopped) return;
  started = true;
  if (acceptor) {
    acceptor->listen();
    accept();
  } else {
    datagram.resize(driver::detail::datagram_buffer_size(node->config()));
    receive_datagram();
  }
  node->handle_timeout(clock_now());
  after_input();
}

void detail::ClusterImpl::stop() {
  if (stopped) return;
  stopped = true;
  std::error_code ignored;
  timer.cancel();
  accept_pause.cancel();
  udp_resolver.cancel();
  if (acceptor) acceptor->close(ignored);
  if (udp_socket) udp_socket->close(ignored);
  // abort() never destroys a Connection here: the handlers own them.
  for (Connection* connection : connections) connection->abort();
  while (!waiters.empty()) {
    const std::shared_ptr<Waiter> waiter = waiters.front();
    finish_wait(waiter, ::asio::error::operation_aborted);
  }
  hook_deadline = std::chrono::steady_clock::now() + options.hook_drain_timeout;
  // From inside a hook, the run already on the stack finishes the drain.
  if (!hooks.running()) {
    hooks.run(hooks.size(), hook_deadline);
    hooks.drop_all();
  }
}

// Drain order after every input: transmits, the next timeout, events.
void detail::ClusterImpl::after_input() {
  if (stopped) return;
  while (auto tx = node->poll_transmit()) start_exchange(std::move(*tx));
  if (started) arm_timer();
  bool queued = false;
  while (auto event = node->poll_event()) queued |= hooks.push(std::move(*event));
  if (queued) schedule_hooks();
  check_waiters();
}

void detail::ClusterImpl::arm_timer() {
  const std::optional<Instant> next = node->poll_timeout();
  if (next == armed_for) return;
  armed_for = next;
  if (!next) {
    timer.cancel();
    return;
  }
  timer.expires_at(*next);
  timer.async_wait([self = shared_from_this()](std::error_code ec) {
    // A stale wait may still complete without error after a re-arm: an
    // extra handle_timeout is harmless.
    if (ec || self->stopped) return;
    self->armed_for.reset();
    self->node->handle_timeout(clock_now());
    self->after_input();
  });
}

void detail::ClusterImpl::start_exchange(Transmit tx) {
  if (acceptor) {
    if (outgoing >= options.max_outgoing_exchanges) {
      ++stats.exchanges_refused;
      return;
    }
    ++stats.exchanges_started;
    auto connection = std::make_shared<Connection>(shared_from_this(), tcp::socket(strand),
                                                   Connection::Role::kInitiator);
    connection->run_initiator(std::move(tx));
    return;
  }
  ++stats.exchanges_started;
  if (auto ip = parse_ip(tx.to.host)) {
    send_datagram(udp::endpoint(*ip, tx.to.port), std::move(tx.payload));
    return;
  }
  // A node advertising a host name: its replies come from a numeric source
  // the core will not match, so UDP clusters should advertise numbers.
  const Address to = tx.to;
  udp_resolver.async_resolve(
      to.host, std::to_string(to.port),
      [self = shared_from_this(), to, payload = std::move(tx.payload)](
          std::error_code ec, udp::resolver::results_type results) mutable {
        if (self->stopped) return;
        if (ec || results.empty()) {
          ++self->stats.connect_failures;
          self->log("cannot resolve " + to.to_string() + ": " + ec.message());
          return;
        }
        self->send_datagram(results.begin()->endpoint(), std::move(payload));
      });
}

void detail::ClusterImpl::accept() {
  acceptor->async_accept([self = shared_from_this()](std::error_code ec, tcp::socket socket) {
    if (self->stopped) return;
    if (ec) {
      // Out of descriptors, most likely: pause instead of spinning.
      ++self->stats.io_errors;
      self->log("accept: " + ec.message());
      self->accept_pause.expires_after(100ms);
      self->accept_pause.async_wait([self](std::error_code wait_ec) {
        if (!wait_ec && !self->stopped) self->accept();
      });
      return;
    }
    std::error_code remote_ec;
    const tcp::endpoint remote = socket.remote_endpoint(remote_ec);
    const Address peer = remote_ec ? Address{} : numeric_address(remote);
    const auto admission = remote_ec ? decltype(self->waiting)::Admission{nullptr, false}
                                     : self->waiting.admit(peer.host, self->inbound,
                                                           self->options.max_inbound_connections);
    if (admission.evict != nullptr) {
      ++self->stats.connections_evicted;
      admission.evict->evict();
    }
    if (remote_ec) {
      ++self->stats.io_errors;  // reset before we got to it
      std::error_code ignored;
      socket.close(ignored);
    } else if (!admission.accept) {
      ++self->stats.connections_refused;
      std::error_code ignored;
      socket.close(ignored);
    } else {
      ++self->stats.connections_accepted;
      auto connection =
          std::make_shared<Connection>(self, std::move(socket), Connection::Role::kResponder);
      connection->run_responder(peer);
    }
    self->accept();
  });
}

void detail::ClusterImpl::receive_datagram() {
  udp_socket->async_receive_from(
      ::asio::buffer(datagram), datagram_from,
      [self = shared_from_this()](std::error_code ec, std::size_t n) {
        if (self->stopped) return;
        if (ec) {
          // ICMP errors of earlier sends surface here on some systems.
          ++self->stats.io_errors;
        } else {
          ++self->stats.datagrams_in;
          const Inbound from{numeric_address(self->datagram_from), Stage::kDatagram, {}};
          auto reply =
              self->node->handle_packet(ByteView(self->datagram.data(), n), clock_now(), from);
          if (reply) self->send_datagram(self->datagram_from, std::move(reply->payload));
          self->after_input();
        }
        self->receive_datagram();
      });
}

void detail::ClusterImpl::send_datagram(const udp::endpoint& to, Bytes payload) {
  if (datagrams_in_flight >= options.max_pending_datagrams) {
    ++stats.exchanges_refused;
    return;
  }
  ++datagrams_in_flight;
  auto buffer = std::make_shared<Bytes>(std::move(payload));
  udp_socket->async_send_to(::asio::buffer(*buffer), to,
                            [self = shared_from_this(), buffer](std::error_code ec, std::size_t) {
                              --self->datagrams_in_flight;
                              if (ec) {
                                if (!self->stopped) ++self->stats.io_errors;
                              } else {
                                ++self->stats.datagrams_out;
                              }
                            });
}

void detail::ClusterImpl::schedule_hooks() {
  if (hooks_posted) return;
  hooks_posted = true;
  ::asio::post(strand, [self = shared_from_this()] {
    self->hooks_posted = false;
    // Only what is queued now: events raised by the hooks run next turn.
    self->hooks.run(self->hooks.size(), self->hook_deadline);
    if (self->stopped) {
      self->hooks.drop_all();
    } else if (!self->hooks.empty()) {
      self->schedule_hooks();
    }
  });
}

void detail::ClusterImpl::register_wait(std::shared_ptr<Waiter> waiter, Duration timeout) {
  if (stopped) {
    waiter->completion->complete(::asio::error::operation_aborted);
    return;
  }
  if (waiter->predicate(*node)) {
    waiter->completion->complete({});
    return;
  }
  waiters.push_back(waiter);
  waiter->timer.expires_after(timeout);
  waiter->timer.async_wait([self = shared_from_this(), waiter](std::error_code ec) {
    if (ec || waiter->done) return;
    self->finish_wait(waiter, ::asio::error::timed_out);
  });
}

void detail::ClusterImpl::finish_wait(const std::shared_ptr<Waiter>& waiter, std::error_code ec) {
  if (waiter->done) return;
  waiter->done = true;
  waiter->timer.cancel();
  waiter->completion->complete(ec);
  waiters.remove(waiter);
}

void detail::ClusterImpl::check_waiters() {
  for (auto it = waiters.begin(); it != waiters.end();) {
    const std::shared_ptr<Waiter> waiter = *it++;
    if (waiter->predicate(*node)) finish_wait(waiter, {});
  }
}

// --- Cluster ---

Cluster::Cluster(::asio::io_context& io, Config config, const KeyValues& initial_key_values,
                 Options options)
    : impl_(std::make_shared<detail::ClusterImpl>(io, std::move(options))) {
  // Port 0 is ours to fill in after binding, generation 0 from the clock;
  // everything else is checked before touching a socket.
  driver::detail::fill_unset_generation(config);
  driver::detail::check_config_and_options(config, impl_->options);
  impl_->bind(config);
  impl_->node.emplace(std::move(config), clock_now(), driver::detail::node_seed(impl_->options),
                      initial_key_values);
}

Cluster::~Cluster() { impl_->stop(); }

void Cluster::start() { impl_->start(); }
void Cluster::stop() { impl_->stop(); }
bool Cluster::running() const { return impl_->started && !impl_->stopped; }
Cluster::executor_type Cluster::get_executor() const { return impl_->strand; }
const NodeId& Cluster::self_id() const { return impl_->node->self_id(); }
Address Cluster::local_address() const { return impl_->bound; }

void Cluster::set(std::string_view key, std::string_view value) {
  impl_->node->set(key, value);
  impl_->after_input();
}
void Cluster::remove(std::string_view key) {
  impl_->node->remove(key);
  impl_->after_input();
}
void Cluster::set_with_ttl(std::string_view key, std::string_view value) {
  impl_->node->set_with_ttl(key, value);
  impl_->after_input();
}
void Cluster::delete_after_ttl(std::string_view key) {
  impl_->node->delete_after_ttl(key);
  impl_->after_input();
}
std::optional<std::string> Cluster::get(std::string_view key) const {
  return impl_->node->get(key);
}

std::vector<NodeId> Cluster::live_nodes() const { return impl_->node->live_nodes(); }
std::vector<NodeId> Cluster::dead_nodes() const { return impl_->node->dead_nodes(); }
ClusterSnapshot Cluster::snapshot() const { return impl_->node->snapshot(); }
const Stats& Cluster::stats() const { return impl_->node->stats(); }
DriverStats Cluster::driver_stats() const { return impl_->stats; }
HookStats Cluster::hook_stats() const { return impl_->hooks.stats(); }
const Node& Cluster::node() const { return *impl_->node; }

void Cluster::on_node_join(NodeHook hook) { impl_->hooks.add_join(std::move(hook)); }
void Cluster::on_node_leave(NodeHook hook) { impl_->hooks.add_leave(std::move(hook)); }
void Cluster::on_key_change(KeyChangeHook hook) { impl_->hooks.add_key_change(std::move(hook)); }

void Cluster::add_wait(Predicate predicate, Duration timeout,
                       std::unique_ptr<detail::WaitCompletion> completion) {
  auto waiter =
      std::make_shared<Waiter>(std::move(predicate), std::move(completion), impl_->strand);
  ::asio::post(impl_->strand,
               [impl = impl_, waiter, timeout] { impl->register_wait(waiter, timeout); });
}

bool Cluster::has_key_value(const Node& node, std::string_view node_name, std::string_view key,
                            std::string_view value) {
  return driver::has_key_value(node, node_name, key, value);
}

}  // namespace aiocluster::asio_driver
