#include "aiocluster/libevent/cluster.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <stdexcept>
#include <unordered_map>

#include "aiocluster/common/waits.h"
#include "driver_common/exchange_channel.h"
#include "driver_common/net.h"
#include "driver_common/posix_socket.h"
#include "driver_common/tls.h"

namespace aiocluster::libevent_driver {

namespace {

using driver::detail::DriverCore;
using driver::detail::errno_error;

// Rounded up, so a timer never fires before the deadline it stands for.
timeval to_timeval(Duration d) {
  const auto us =
      std::max<std::int64_t>(0, std::chrono::ceil<std::chrono::microseconds>(d).count());
  return timeval{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
}

// Frees with libevent's `Free`.
template <auto Free>
struct Freer {
  void operator()(auto* object) const { Free(object); }
};
using EventPtr = std::unique_ptr<event, Freer<event_free>>;
using ListenerPtr = std::unique_ptr<evconnlistener, Freer<evconnlistener_free>>;

// An event calling `Target::*Method` on `target`.
template <auto Method, typename Target>
EventPtr make_event(event_base* base, evutil_socket_t fd, short what, Target* target) {
  return EventPtr(event_new(
      base, fd, what,
      [](evutil_socket_t, short, void* arg) { (static_cast<Target*>(arg)->*Method)(); }, target));
}

// Runs `task` from the event_base's loop, after the current callback:
// completions never run inside the driver's own call stack. The task owns
// itself and runs even if the Cluster is gone by then.
void defer(event_base* base, std::function<void()> task) {
  auto owned = std::make_unique<std::function<void()>>(std::move(task));
  const timeval now{0, 0};
  const int rc = event_base_once(
      base, -1, EV_TIMEOUT,
      [](evutil_socket_t, short, void* arg) {
        const std::unique_ptr<std::function<void()>> run(static_cast<std::function<void()>*>(arg));
        (*run)();
      },
      owned.get(), &now);
  if (rc == 0) owned.release();  // the callback above frees it
}

// A wait: its handler, delivered through defer().
class Waiter final : public driver::detail::Wait {
 public:
  Waiter(Cluster::Predicate predicate, Cluster::WaitHandler handler, event_base* base)
      : Wait(std::move(predicate)), handler_(std::move(handler)), base_(base) {}

 private:
  void end(driver::detail::WaitEnd how) override {
    defer(base_,
          [handler = std::move(handler_), ec = driver::detail::error_code(how)] { handler(ec); });
  }

  Cluster::WaitHandler handler_;
  event_base* base_;
};

// Bound on what a peer can make one connection buffer before the decoder
// takes it (the decoder itself holds at most one frame).
constexpr std::size_t kInputHighWatermark = 64 * 1024;
constexpr int kBufferEventOptions = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;

}  // namespace

class Connection;

struct detail::ClusterImpl final : std::enable_shared_from_this<ClusterImpl>, DriverCore::Loop {
  ClusterImpl(event_base* event_base, Options options)
      : base(event_base), core(std::move(options), *this) {}

  Address bind(const Config& config);
  void stop() {
    if (core.stop()) hooks_event.reset();
  }

  void listen() override;
  void close_all() override;
  void start_exchange(Transmit tx) override;
  void arm_timer(std::optional<Instant> deadline) override;
  void post_hooks() override;

  void on_timer() { core.handle_timeout(); }
  void run_hooks();
  void on_accept(evutil_socket_t fd, const sockaddr* from);
  void on_datagrams() { datagrams->receive(); }
  void flush_datagrams() { datagrams->flush(); }
  void resume_accepting() {
    if (!core.stopped()) evconnlistener_enable(listener.get());
  }
  void forget(Connection* connection) { connections.erase(connection); }

  event_base* base;
  DriverCore core;
  EventPtr timer;
  EventPtr hooks_event;
  int family = AF_UNSPEC;
  driver::detail::Socket socket;  // bound; the listener or `datagrams` takes it at start()

  ListenerPtr listener;
  EventPtr accept_pause;
  driver::detail::SslCtxPtr server_tls;
  driver::detail::SslCtxPtr client_tls;
  evdns_base* dns = nullptr;  // the application's, optional
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections;

  std::optional<driver::detail::DatagramSocket> datagrams;
  EventPtr udp_read;
  EventPtr udp_write;
};

// One TCP connection carrying one StreamExchange, as initiator (we send the
// Syn) or responder (we accepted it), on one bufferevent (plain or
// OpenSSL): connect and handshake, then the exchange's writes and reads,
// each step under its own timeout. The Connection is owned by
// ClusterImpl::connections; every path ends in close(), after which `this`
// is gone.
class Connection final : public driver::detail::ExchangeChannel {
 public:
  Connection(detail::ClusterImpl& impl, StreamExchange exchange)
      : ExchangeChannel(impl.core, std::move(exchange)), impl_(impl) {
    deadline_.reset(evtimer_new(impl_.base, &Connection::on_deadline, this));
  }

  ~Connection() override {
    if (bev_ == nullptr) return;
    if (graceful_ && tls_up_) {
      // libevent frees an SSL without a close_notify: send ours first. We
      // do not wait for the peer's (SSL_RECEIVED_SHUTDOWN), as the exchange
      // is over.
      SSL* ssl = bufferevent_openssl_get_ssl(bev_);
      SSL_set_shutdown(ssl, SSL_RECEIVED_SHUTDOWN);
      SSL_shutdown(ssl);
      ERR_clear_error();
    }
    bufferevent_free(bev_);
  }

  // `target`: the Transmit, its payload already in the exchange.
  void run_initiator(const Transmit& target) {
    set_target(target.to);
    arm(options().connect_timeout);
    if (impl_.client_tls) {
      SSL* ssl = SSL_new(impl_.client_tls.get());
      // The server must prove it is the node we meant.
      const std::string name = driver::detail::server_name_to_expect(*options().tls, target);
      if (ssl == nullptr || !driver::detail::expect_server_name(ssl, name)) {
        SSL_free(ssl);
        return fail(&DriverStats::tls_failures, "tls setup", "cannot verify name '" + name + "'");
      }
      bev_ = bufferevent_openssl_socket_new(impl_.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            kBufferEventOptions);
    } else {
      bev_ = bufferevent_socket_new(impl_.base, -1, kBufferEventOptions);
    }
    if (bev_ == nullptr) return fail(&DriverStats::io_errors, "connect", "no bufferevent");
    setup_callbacks();
    int rc = 0;
    if (auto address = driver::detail::numeric_socket_address(peer())) {
      rc = bufferevent_socket_connect(bev_, address->get(), static_cast<int>(address->length));
    } else {
      // Through the application's evdns_base, else libevent resolves with
      // the system resolver, blocking.
      rc = bufferevent_socket_connect_hostname(bev_, impl_.dns, AF_UNSPEC, peer().host.c_str(),
                                               peer().port);
    }
    if (rc != 0) {
      return fail(&DriverStats::connect_failures, "connect", evutil_socket_error_to_string(errno));
    }
  }

  void run_responder(evutil_socket_t fd, Address peer) {
    wait_for_syn(std::move(peer));
    step_ = Step::kReading;
    SSL* ssl = impl_.server_tls ? SSL_new(impl_.server_tls.get()) : nullptr;
    bev_ = !impl_.server_tls ? bufferevent_socket_new(impl_.base, fd, kBufferEventOptions)
           : ssl == nullptr
               ? nullptr
               : bufferevent_openssl_socket_new(impl_.base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                kBufferEventOptions);
    if (bev_ == nullptr) {
      evutil_closesocket(fd);
      return fail(&DriverStats::io_errors, "accept", "no bufferevent");
    }
    driver::detail::set_no_delay(bufferevent_getfd(bev_));
    setup_callbacks();
    advance();
  }

  // The cluster stops: close now, with a close_notify where TLS is up.
  void abandon() { graceful_ = true; }

 private:
  enum class Step : std::uint8_t { kConnecting, kReading, kWriting };

  void setup_callbacks() {
    bufferevent_setcb(bev_, &Connection::on_read, &Connection::on_write, &Connection::on_event,
                      this);
    bufferevent_setwatermark(bev_, EV_READ, 0, kInputHighWatermark);
  }

  void arm(Duration limit) {
    const timeval tv = to_timeval(limit);
    event_add(deadline_.get(), &tv);
  }

  static void on_deadline(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    self->fail(&DriverStats::timeouts, self->step_name(), "timed out");
  }

  static void on_read(bufferevent*, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    // No new deadline on progress: the whole frame must arrive within
    // read_timeout, so a peer that trickles bytes is cut off like one that stalls.
    if (self->step_ == Step::kReading) self->consume_input();
  }

  // The output buffer has drained: the frame is written.
  static void on_write(bufferevent*, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (self->step_ == Step::kWriting) self->advance();
  }

  static void on_event(bufferevent* bev, short what, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if ((what & BEV_EVENT_CONNECTED) != 0) {
      self->tls_up_ = self->impl_.client_tls != nullptr || self->impl_.server_tls != nullptr;
      if (self->impl_.server_tls && !self->initiator()) {  // the server's handshake is done
        self->exchange().set_peer_names(driver::detail::names_for_tls_rule(
            bufferevent_openssl_get_ssl(bev), *self->options().tls));
      }
      if (self->step_ == Step::kConnecting) {
        driver::detail::set_no_delay(bufferevent_getfd(bev));
        self->advance();
      }
      return;
    }
    // EOF or an error. OpenSSL's verdicts first: a refused certificate or
    // name surfaces here on both sides. SSL_ERROR_SYSCALL is the socket's.
    const unsigned long ssl_error = bufferevent_get_openssl_error(bev);
    if (ssl_error != 0 && ssl_error != SSL_ERROR_SYSCALL) {
      char text[256];
      ERR_error_string_n(ssl_error, text, sizeof text);
      return self->fail(&DriverStats::tls_failures, self->step_name(), text);
    }
    if (const int dns_error = bufferevent_socket_get_dns_error(bev); dns_error != 0) {
      return self->fail(&DriverStats::connect_failures, "resolve", evutil_gai_strerror(dns_error));
    }
    const int saved = EVUTIL_SOCKET_ERROR();
    const std::string why = (what & BEV_EVENT_EOF) != 0 || saved == 0
                                ? "closed by peer"
                                : evutil_socket_error_to_string(saved);
    self->fail(
        self->step_ == Step::kConnecting ? &DriverStats::connect_failures : &DriverStats::io_errors,
        self->step_name(), why);
  }

  void read_frame() override {
    step_ = Step::kReading;
    arm(options().read_timeout);
    bufferevent_enable(bev_, EV_READ);
    // Bytes that arrived with the previous frame wait in the input buffer:
    // the read callback only fires for new ones.
    consume_input();
  }

  // Feeds the frame reader exactly up to the end of the current frame.
  void consume_input() {
    evbuffer* input = bufferevent_get_input(bev_);
    std::array<std::uint8_t, 16 * 1024> chunk{};
    while (true) {
      const std::size_t available = evbuffer_get_length(input);
      if (available == 0) return;
      const std::size_t want = std::min({wanted(), available, chunk.size()});
      const int n = evbuffer_remove(input, chunk.data(), want);
      if (n <= 0 || !feed(ByteView(chunk.data(), static_cast<std::size_t>(n)))) return;
    }
  }

  // One frame, its header then the packet (no framed copy of ours); nothing
  // more is read until it is written, so the output buffer never holds more
  // than one frame (backpressure).
  void write_frame(Bytes packet) override {
    const auto header = frame_header(packet.size());
    step_ = Step::kWriting;
    bufferevent_disable(bev_, EV_READ);
    arm(options().write_timeout);
    if (evbuffer_get_length(bufferevent_get_output(bev_)) != 0 ||
        bufferevent_write(bev_, header.data(), header.size()) != 0 ||
        bufferevent_write(bev_, packet.data(), packet.size()) != 0) {
      return fail(&DriverStats::io_errors, "write", "cannot queue the frame");
    }
    bufferevent_enable(bev_, EV_WRITE);
  }

  void finish() override { close(true); }
  void close_now() override { close(false); }

  // Destroys this Connection.
  void close(bool graceful) {
    graceful_ = graceful;
    impl_.forget(this);
  }

  const char* step_name() const {
    switch (step_) {
      case Step::kConnecting:
        return impl_.client_tls ? "connect / tls handshake (client)" : "connect";
      case Step::kReading:
        return impl_.server_tls && !tls_up_ ? "tls handshake (server)" : "read";
      case Step::kWriting:
        return "write";
    }
    return "exchange";
  }

  detail::ClusterImpl& impl_;
  bufferevent* bev_ = nullptr;
  EventPtr deadline_;
  Step step_ = Step::kConnecting;
  bool tls_up_ = false;    // handshake done: close with a close_notify
  bool graceful_ = false;  // closing at the end of an exchange (or at stop), not on an error
};

// --- detail::ClusterImpl ---

Address detail::ClusterImpl::bind(const Config& config) {
  const Options& options = core.options();
  driver::detail::BoundSocket bound = driver::detail::bind_socket(config, options);
  socket = std::move(bound.socket);
  family = bound.family;
  if (options.transport == Transport::kTcp && options.tls) {
    server_tls = driver::detail::make_server_context(*options.tls);
    client_tls = driver::detail::make_client_context(*options.tls);
  }
  timer = make_event<&ClusterImpl::on_timer>(base, -1, 0, this);
  hooks_event = make_event<&ClusterImpl::run_hooks>(base, -1, 0, this);
  if (!timer || !hooks_event) {
    throw std::system_error(std::make_error_code(std::errc::not_enough_memory), "event_new");
  }
  return bound.local;
}

void detail::ClusterImpl::listen() {
  if (core.options().transport == Transport::kTcp) {
    listener.reset(evconnlistener_new(
        base,
        [](evconnlistener*, evutil_socket_t fd, sockaddr* from, int, void* arg) {
          static_cast<ClusterImpl*>(arg)->on_accept(fd, from);
        },
        this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, SOMAXCONN, socket.get()));
    if (!listener) throw errno_error("cannot listen on tcp " + core.bound().to_string());
    socket.release();  // the listener closes it
    evconnlistener_set_error_cb(listener.get(), [](evconnlistener* l, void* arg) {
      // Out of descriptors, most likely: pause instead of spinning.
      auto* self = static_cast<ClusterImpl*>(arg);
      ++self->core.stats().io_errors;
      self->core.log(std::string("accept: ") +
                     evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
      evconnlistener_disable(l);
      const timeval pause = to_timeval(100ms);
      event_add(self->accept_pause.get(), &pause);
    });
    accept_pause = make_event<&ClusterImpl::resume_accepting>(base, -1, 0, this);
  } else {
    const int fd = socket.get();
    datagrams.emplace(std::move(socket), core, [this] { event_add(udp_write.get(), nullptr); });
    udp_read = make_event<&ClusterImpl::on_datagrams>(base, fd, EV_READ | EV_PERSIST, this);
    udp_write = make_event<&ClusterImpl::flush_datagrams>(base, fd, EV_WRITE, this);
    event_add(udp_read.get(), nullptr);
  }
}

void detail::ClusterImpl::close_all() {
  timer.reset();
  accept_pause.reset();
  listener.reset();
  udp_read.reset();
  udp_write.reset();
  datagrams.reset();
  socket.reset();
  // Each one sends its close_notify when TLS is up.
  for (auto& [raw, connection] : connections) connection->abandon();
  connections.clear();
}

// One timer: event_add replaces its timeout, event_del clears it.
void detail::ClusterImpl::arm_timer(std::optional<Instant> deadline) {
  if (!deadline) {
    event_del(timer.get());
    return;
  }
  // libevent measures the timeout from its cached loop time: refresh it.
  event_base_update_cache_time(base);
  const timeval tv = to_timeval(*deadline - DriverCore::clock());
  event_add(timer.get(), &tv);
}

void detail::ClusterImpl::post_hooks() {
  if (hooks_event) event_active(hooks_event.get(), EV_TIMEOUT, 1);
}

void detail::ClusterImpl::run_hooks() {
  // A hook may destroy the Cluster: keep this alive until the run is over.
  const std::shared_ptr<ClusterImpl> self = shared_from_this();
  core.run_hooks();
  if (core.stopped()) hooks_event.reset();
}

void detail::ClusterImpl::start_exchange(Transmit tx) {
  if (core.options().transport == Transport::kTcp) {
    auto connection =
        std::make_unique<Connection>(*this, StreamExchange::initiate(std::move(tx.payload)));
    Connection* raw = connection.get();
    connections.emplace(raw, std::move(connection));
    raw->run_initiator(tx);
    return;
  }
  datagrams->send_syn(tx.to, std::move(tx.payload), family);
}

void detail::ClusterImpl::on_accept(evutil_socket_t fd, const sockaddr* from) {
  Address peer = driver::detail::numeric_address(from);
  if (!core.admit(peer.host)) {
    evutil_closesocket(fd);
    return;
  }
  auto connection = std::make_unique<Connection>(*this, StreamExchange::respond());
  Connection* raw = connection.get();
  connections.emplace(raw, std::move(connection));
  raw->run_responder(fd, std::move(peer));
}

// --- Cluster ---

Cluster::Cluster(event_base* base, Config config, const KeyValues& initial_key_values,
                 Options options)
    : impl_(std::make_shared<detail::ClusterImpl>(base, std::move(options))) {
  if (base == nullptr) throw std::invalid_argument("base: must not be null");
  build(impl_->core, std::move(config), initial_key_values,
        [this](const Config& bound_config) { return impl_->bind(bound_config); });
}

Cluster::~Cluster() { impl_->stop(); }

void Cluster::start() { impl_->core.start(); }
void Cluster::stop() { impl_->stop(); }
event_base* Cluster::base() const { return impl_->base; }
void Cluster::use_dns(evdns_base* dns) { impl_->dns = dns; }

void Cluster::wait(Predicate predicate, Duration timeout, WaitHandler handler) {
  impl_->core.add_wait(
      std::make_shared<Waiter>(std::move(predicate), std::move(handler), impl_->base), timeout);
}

void Cluster::wait_live(std::size_t count, Duration timeout, WaitHandler handler) {
  wait(driver::live_at_least(count), timeout, std::move(handler));
}

void Cluster::wait_key(std::string node_name, std::string key, std::string value, Duration timeout,
                       WaitHandler handler) {
  wait(driver::has_key_value(std::move(node_name), std::move(key), std::move(value)), timeout,
       std::move(handler));
}

}  // namespace aiocluster::libevent_driver
