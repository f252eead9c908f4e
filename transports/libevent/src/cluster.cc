#include "aiocluster/libevent/cluster.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <list>
#include <stdexcept>
#include <unordered_map>

#include "aiocluster/common/waits.h"
#include "aiocluster/framing.h"
#include "driver_common/frame_reader.h"
#include "driver_common/hook_queue.h"
#include "driver_common/net.h"
#include "driver_common/tls.h"
#include "driver_common/waiting_connections.h"

namespace aiocluster::libevent_driver {

namespace {

using driver::detail::SocketAddress;

Instant clock_now() { return std::chrono::steady_clock::now(); }

// Rounded up, so a timer never fires before the deadline it stands for.
timeval to_timeval(Duration d) {
  const auto us =
      std::max<std::int64_t>(0, std::chrono::ceil<std::chrono::microseconds>(d).count());
  return timeval{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
}

struct EventFree {
  void operator()(event* ev) const { event_free(ev); }
};
using EventPtr = std::unique_ptr<event, EventFree>;

struct ListenerFree {
  void operator()(evconnlistener* listener) const { evconnlistener_free(listener); }
};
using ListenerPtr = std::unique_ptr<evconnlistener, ListenerFree>;

// A socket this object closes, until someone else takes it.
class Socket {
 public:
  Socket() = default;
  ~Socket() { reset(); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

std::system_error errno_error(const std::string& what) {
  return {errno, std::generic_category(), what};
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

// Bound on what a peer can make one connection buffer before the decoder
// takes it (the decoder itself holds at most one frame).
constexpr std::size_t kInputHighWatermark = 64 * 1024;
constexpr int kBufferEventOptions = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;

}  // namespace

class Connection;

struct Waiter {
  Cluster::Predicate predicate;
  Cluster::WaitHandler handler;
  EventPtr timer;
  detail::ClusterImpl* impl = nullptr;
};

struct detail::ClusterImpl : std::enable_shared_from_this<ClusterImpl> {
  ClusterImpl(event_base* event_base, Options opts)
      : base(event_base),
        options(std::move(opts)),
        large_frames(options.max_large_frame_bytes),
        waiting(options.max_waiting_per_host),
        hooks(options.hook_queue_capacity) {}
  ~ClusterImpl();

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }

  void bind(Config& config);
  void start();
  void stop();

  void after_input();
  void arm_timer();
  void start_exchange(Transmit tx);
  void on_accept(evutil_socket_t fd, const sockaddr* from);
  void on_datagrams();
  void send_datagram(const SocketAddress& to, Bytes payload);
  void flush_datagrams();
  void schedule_hooks();
  void run_hooks();
  void add_wait(Cluster::Predicate predicate, Duration timeout, Cluster::WaitHandler handler);
  void finish_wait(Waiter* waiter, std::error_code ec);
  void check_waiters();
  void forget(Connection* connection);

  event_base* base;
  Options options;
  std::optional<Node> node;
  EventPtr timer;
  std::optional<Instant> armed_for;
  bool started = false;
  bool stopped = false;
  Address bound;
  int family = AF_UNSPEC;
  Socket socket;  // bound; the listener takes a TCP one at start()

  ListenerPtr listener;
  EventPtr accept_pause;
  driver::detail::SslCtxPtr server_tls;
  driver::detail::SslCtxPtr client_tls;
  evdns_base* dns = nullptr;                      // the application's, optional
  driver::detail::LargeFrameBudget large_frames;  // outlives the connections' readers
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections;
  driver::detail::WaitingConnections<Connection> waiting;  // responders before their Syn
  std::size_t outgoing = 0;
  std::size_t inbound = 0;

  EventPtr udp_read;
  EventPtr udp_write;
  Bytes datagram;
  struct Outgoing {
    SocketAddress to;
    Bytes payload;
  };
  std::deque<Outgoing> udp_queue;  // datagrams the socket would not take yet

  driver::detail::HookQueue hooks;
  EventPtr hooks_event;
  bool hooks_posted = false;
  std::optional<std::chrono::steady_clock::time_point> hook_deadline;  // set by stop()
  std::list<std::unique_ptr<Waiter>> waiters;
  DriverStats stats;
};

// One TCP exchange, as initiator (we send the Syn) or responder (we accepted
// the connection), on one bufferevent (plain or OpenSSL): connect and
// handshake, then framed messages, each step under its own timeout. The
// Connection is owned by ClusterImpl::connections; every path ends in
// close(), after which `this` is gone.
class Connection {
 public:
  enum class Role : std::uint8_t { kInitiator, kResponder };

  Connection(detail::ClusterImpl& impl, Role role)
      : impl_(impl), role_(role), reader_(impl.node->config(), impl.large_frames) {
    ++(role_ == Role::kInitiator ? impl_.outgoing : impl_.inbound);
    deadline_.reset(evtimer_new(impl_.base, &Connection::on_deadline, this));
  }

  ~Connection() {
    stop_waiting();
    --(role_ == Role::kInitiator ? impl_.outgoing : impl_.inbound);
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

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void run_initiator(Transmit tx) {
    tx_ = std::move(tx);
    step_ = Step::kConnecting;
    arm(impl_.options.connect_timeout);
    if (impl_.client_tls) {
      SSL* ssl = SSL_new(impl_.client_tls.get());
      // The server must prove it is the node we meant.
      const std::string name = driver::detail::server_name_to_expect(*impl_.options.tls, tx_);
      if (ssl == nullptr || !driver::detail::expect_server_name(ssl, name)) {
        SSL_free(ssl);
        return fail(&DriverStats::tls_failures, "tls setup", "cannot verify name '" + name + "'");
      }
      bev_ = bufferevent_openssl_socket_new(impl_.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            kBufferEventOptions);
    } else {
      bev_ = bufferevent_socket_new(impl_.base, -1, kBufferEventOptions);
    }
    if (bev_ == nullptr) {
      return fail(&DriverStats::io_errors, "connect", "cannot create a bufferevent");
    }
    setup_callbacks();
    int rc = 0;
    if (auto address = driver::detail::numeric_socket_address(tx_.to)) {
      rc = bufferevent_socket_connect(bev_, address->get(), static_cast<int>(address->length));
    } else {
      // Through the application's evdns_base, else libevent resolves with
      // the system resolver, blocking.
      rc = bufferevent_socket_connect_hostname(bev_, impl_.dns, AF_UNSPEC, tx_.to.host.c_str(),
                                               tx_.to.port);
    }
    if (rc != 0) {
      return fail(&DriverStats::connect_failures, "connect", evutil_socket_error_to_string(errno));
    }
  }

  void run_responder(evutil_socket_t fd, Address peer) {
    peer_ = std::move(peer);
    step_ = Step::kReadingSyn;
    waiting_slot_ = impl_.waiting.add(this, peer_.host);
    if (impl_.server_tls) {
      SSL* ssl = SSL_new(impl_.server_tls.get());
      if (ssl == nullptr) {
        evutil_closesocket(fd);
        return fail(&DriverStats::io_errors, "accept", "cannot create an SSL");
      }
      bev_ = bufferevent_openssl_socket_new(impl_.base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            kBufferEventOptions);
    } else {
      bev_ = bufferevent_socket_new(impl_.base, fd, kBufferEventOptions);
    }
    if (bev_ == nullptr) {
      evutil_closesocket(fd);
      return fail(&DriverStats::io_errors, "accept", "cannot create a bufferevent");
    }
    set_no_delay();
    setup_callbacks();
    start_reading(Step::kReadingSyn);
  }

  // The cluster stops: close now, with a close_notify where TLS is up.
  void abandon() { graceful_ = true; }

  // Closes to make room for a newer connection (already out of `waiting`).
  // Destroys this Connection.
  void evict() {
    waiting_slot_.reset();
    close(false);
  }

 private:
  enum class Step : std::uint8_t {
    kConnecting,    // initiator: TCP connect (and TLS handshake)
    kReadingSyn,    // responder (TLS handshake first)
    kReadingReply,  // initiator: SynAck or BadCluster
    kReadingAck,    // responder, after a SynAck
    kWriting,       // one frame in the output buffer
  };
  enum class AfterWrite : std::uint8_t { kReadReply, kReadAck, kClose };

  void setup_callbacks() {
    bufferevent_setcb(bev_, &Connection::on_read, &Connection::on_write, &Connection::on_event,
                      this);
    bufferevent_setwatermark(bev_, EV_READ, 0, kInputHighWatermark);
  }

  void stop_waiting() {
    if (waiting_slot_) impl_.waiting.remove(*waiting_slot_);
    waiting_slot_.reset();
  }

  void set_no_delay() {
    const int fd = bufferevent_getfd(bev_);
    const int one = 1;
    if (fd >= 0) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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
    if (self->step_ == Step::kWriting || self->step_ == Step::kConnecting) return;
    // No new deadline on progress: the whole frame must arrive within
    // read_timeout, so a peer that trickles bytes is cut off like one that stalls.
    self->consume_input();
  }

  // The output buffer has drained: the frame is written.
  static void on_write(bufferevent*, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if (self->step_ != Step::kWriting) return;
    switch (self->after_write_) {
      case AfterWrite::kReadReply:
        return self->start_reading(Step::kReadingReply);
      case AfterWrite::kReadAck:
        return self->start_reading(Step::kReadingAck);
      case AfterWrite::kClose:
        return self->close(true);
    }
  }

  static void on_event(bufferevent* bev, short what, void* arg) {
    auto* self = static_cast<Connection*>(arg);
    if ((what & BEV_EVENT_CONNECTED) != 0) {
      self->tls_up_ = self->impl_.client_tls != nullptr || self->impl_.server_tls != nullptr;
      if (self->role_ == Role::kInitiator && self->step_ == Step::kConnecting) self->on_connected();
      return;
    }
    // EOF or an error. OpenSSL's verdicts first: a refused certificate or
    // name surfaces here on both sides.
    if (const unsigned long ssl_error = bufferevent_get_openssl_error(bev); ssl_error != 0) {
      char text[256];
      ERR_error_string_n(ssl_error, text, sizeof text);
      return self->fail(&DriverStats::tls_failures, self->step_name(), text);
    }
    if (const int dns_error = bufferevent_socket_get_dns_error(bev); dns_error != 0) {
      return self->fail(&DriverStats::connect_failures, "resolve", evutil_gai_strerror(dns_error));
    }
    const int saved = EVUTIL_SOCKET_ERROR();
    const std::string why =
        (what & BEV_EVENT_EOF) != 0 ? "closed by peer" : evutil_socket_error_to_string(saved);
    self->fail(
        self->step_ == Step::kConnecting ? &DriverStats::connect_failures : &DriverStats::io_errors,
        self->step_name(), why);
  }

  void on_connected() {
    set_no_delay();
    write_frame(tx_.payload, AfterWrite::kReadReply);
  }

  void start_reading(Step step) {
    step_ = step;
    arm(impl_.options.read_timeout);
    bufferevent_enable(bev_, EV_READ);
    // Bytes that arrived with the previous frame wait in the input buffer:
    // the read callback only fires for new ones.
    consume_input();
  }

  // Feeds the shared reader exactly up to the end of the current frame.
  void consume_input() {
    evbuffer* input = bufferevent_get_input(bev_);
    std::array<std::uint8_t, 16 * 1024> chunk{};
    using Status = driver::detail::FrameReader::Status;
    while (true) {
      if (auto frame = reader_.next_frame()) return on_frame(std::move(*frame));
      const std::size_t available = evbuffer_get_length(input);
      if (available == 0) return;
      const std::size_t want = std::min({reader_.wanted(), available, chunk.size()});
      const int n = evbuffer_remove(input, chunk.data(), want);
      if (n <= 0) return;
      switch (reader_.feed(ByteView(chunk.data(), static_cast<std::size_t>(n)))) {
        case Status::kOk:
          break;
        case Status::kBadLength:
          ++impl_.stats.framing_errors;
          impl_.log("closing " + peer_text() + ": bad frame length");
          return close(false);
        case Status::kOverBudget:
          ++impl_.stats.large_frames_refused;
          impl_.log("closing " + peer_text() + ": no room for a large frame");
          return close(false);
      }
    }
  }

  void on_frame(Bytes frame) {
    detail::ClusterImpl& impl = impl_;
    switch (step_) {
      case Step::kReadingReply: {
        auto reply = impl.node->handle_packet(std::move(frame), clock_now(),
                                              Inbound{tx_.to, Stage::kStreamReply, {}});
        impl.after_input();
        ++impl.stats.exchanges_completed;
        if (!reply) return close(true);
        return write_frame(reply->payload, AfterWrite::kClose);
      }
      case Step::kReadingSyn: {
        stop_waiting();
        if (impl.server_tls) {
          peer_names_ = driver::detail::names_for_tls_rule(bufferevent_openssl_get_ssl(bev_),
                                                           *impl.options.tls);
        }
        auto reply = impl.node->handle_packet(std::move(frame), clock_now(),
                                              Inbound{peer_, Stage::kStreamOpen, peer_names_});
        impl.after_input();
        if (!reply) return close(true);
        return write_frame(reply->payload,
                           reply->awaits_ack ? AfterWrite::kReadAck : AfterWrite::kClose);
      }
      case Step::kReadingAck:
        impl.node->handle_packet(std::move(frame), clock_now(),
                                 Inbound{peer_, Stage::kStreamAck, peer_names_});
        impl.after_input();
        return close(true);
      case Step::kConnecting:
      case Step::kWriting:
        return close(false);
    }
  }

  // One frame at a time: nothing more is read until it is written, so the
  // output buffer never holds more than one frame (backpressure).
  // The frame's header, then the packet (the output buffer copies both: no
  // framed copy of our own).
  void write_frame(const Bytes& packet, AfterWrite after) {
    const auto header = frame_header(packet.size());
    step_ = Step::kWriting;
    after_write_ = after;
    bufferevent_disable(bev_, EV_READ);
    arm(impl_.options.write_timeout);
    if (evbuffer_get_length(bufferevent_get_output(bev_)) != 0 ||
        bufferevent_write(bev_, header.data(), header.size()) != 0 ||
        bufferevent_write(bev_, packet.data(), packet.size()) != 0) {
      return fail(&DriverStats::io_errors, "write", "cannot queue the frame");
    }
    bufferevent_enable(bev_, EV_WRITE);
  }

  void fail(std::uint64_t DriverStats::*counter, const char* step, const std::string& why) {
    ++(impl_.stats.*counter);
    impl_.log(std::string(step) + " " + peer_text() + ": " + why);
    close(false);
  }

  // Destroys this Connection.
  void close(bool graceful) {
    graceful_ = graceful;
    impl_.forget(this);
  }

  const char* step_name() const {
    switch (step_) {
      case Step::kConnecting:
        return impl_.client_tls ? "connect / tls handshake (client)" : "connect";
      case Step::kReadingSyn:
        return impl_.server_tls && !tls_up_ ? "tls handshake (server)" : "read";
      case Step::kReadingReply:
      case Step::kReadingAck:
        return "read";
      case Step::kWriting:
        return "write";
    }
    return "exchange";
  }

  std::string peer_text() const {
    return role_ == Role::kInitiator ? tx_.to.to_string() : peer_.to_string();
  }

  detail::ClusterImpl& impl_;
  Role role_;
  bufferevent* bev_ = nullptr;
  EventPtr deadline_;
  driver::detail::FrameReader reader_;
  Step step_ = Step::kConnecting;
  AfterWrite after_write_ = AfterWrite::kClose;
  bool tls_up_ = false;    // handshake done: close with a close_notify
  bool graceful_ = false;  // closing at the end of an exchange (or at stop), not on an error
  Transmit tx_;            // initiator
  Address peer_;           // responder
  std::optional<std::vector<std::string>> peer_names_;  // responder, mutual TLS
  // Set while a responder waits for its Syn.
  std::optional<driver::detail::WaitingConnections<Connection>::Slot> waiting_slot_;
};

// --- detail::ClusterImpl ---

detail::ClusterImpl::~ClusterImpl() = default;

void detail::ClusterImpl::bind(Config& config) {
  const Address& advertise = config.node_id.gossip_advertise_addr;
  const Address listen = options.listen.value_or(advertise);
  const bool tcp = options.transport == Transport::kTcp;
  const int type = tcp ? SOCK_STREAM : SOCK_DGRAM;
  SocketAddress address = driver::detail::numeric_socket_address(listen).value_or(SocketAddress{});
  if (address.length == 0) {
    address = driver::detail::resolve_or_throw(listen, type, AF_UNSPEC, "listen host");
  }
  const std::string what = std::string(tcp ? "tcp " : "udp ") + listen.to_string();
  socket.reset(::socket(address.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (socket.get() < 0) throw errno_error("cannot open a socket for " + what);
  if (tcp) {
    const int one = 1;
    ::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  }
  if (::bind(socket.get(), address.get(), address.length) != 0) {
    throw errno_error("cannot bind " + what);
  }
  SocketAddress local;
  local.length = sizeof local.storage;
  if (::getsockname(socket.get(), local.get(), &local.length) != 0) {
    throw errno_error("getsockname " + what);
  }
  bound = driver::detail::numeric_address(local.get());
  family = address.family();
  if (tcp && options.tls) {
    server_tls = driver::detail::make_server_context(*options.tls);
    client_tls = driver::detail::make_client_context(*options.tls);
  }
  if (!tcp) driver::detail::make_seeds_numeric(config, address.family(), options.log);
  if (config.node_id.gossip_advertise_addr.port == 0) {
    config.node_id.gossip_advertise_addr.port = bound.port;
  }

  timer.reset(evtimer_new(
      base,
      [](evutil_socket_t, short, void* arg) {
        auto* self = static_cast<ClusterImpl*>(arg);
        if (self->stopped) return;
        self->armed_for.reset();
        self->node->handle_timeout(clock_now());
        self->after_input();
      },
      this));
  hooks_event.reset(event_new(
      base, -1, 0,
      [](evutil_socket_t, short, void* arg) { static_cast<ClusterImpl*>(arg)->run_hooks(); },
      this));
  if (!timer || !hooks_event) {
    throw std::system_error(std::make_error_code(std::errc::not_enough_memory), "event_new");
  }
}

void detail::ClusterImpl::start() {
  if (started || stopped) return;
  started = true;
  if (options.transport == Transport::kTcp) {
    listener.reset(evconnlistener_new(
        base,
        [](evconnlistener*, evutil_socket_t fd, sockaddr* from, int, void* arg) {
          static_cast<ClusterImpl*>(arg)->on_accept(fd, from);
        },
        this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, SOMAXCONN, socket.get()));
    if (!listener) throw errno_error("cannot listen on tcp " + bound.to_string());
    socket.release();  // the listener closes it
    evconnlistener_set_error_cb(listener.get(), [](evconnlistener* l, void* arg) {
      // Out of descriptors, most likely: pause instead of spinning.
      auto* self = static_cast<ClusterImpl*>(arg);
      ++self->stats.io_errors;
      self->log(std::string("accept: ") + evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
      evconnlistener_disable(l);
      const timeval pause = to_timeval(100ms);
      event_add(self->accept_pause.get(), &pause);
    });
    accept_pause.reset(evtimer_new(
        base,
        [](evutil_socket_t, short, void* arg) {
          auto* self = static_cast<ClusterImpl*>(arg);
          if (!self->stopped) evconnlistener_enable(self->listener.get());
        },
        this));
  } else {
    datagram.resize(driver::detail::datagram_buffer_size(node->config()));
    udp_read.reset(event_new(
        base, socket.get(), EV_READ | EV_PERSIST,
        [](evutil_socket_t, short, void* arg) { static_cast<ClusterImpl*>(arg)->on_datagrams(); },
        this));
    udp_write.reset(event_new(
        base, socket.get(), EV_WRITE,
        [](evutil_socket_t, short, void* arg) {
          static_cast<ClusterImpl*>(arg)->flush_datagrams();
        },
        this));
    event_add(udp_read.get(), nullptr);
  }
  node->handle_timeout(clock_now());
  after_input();
}

void detail::ClusterImpl::stop() {
  if (stopped) return;
  stopped = true;
  timer.reset();
  accept_pause.reset();
  listener.reset();
  udp_read.reset();
  udp_write.reset();
  udp_queue.clear();
  socket.reset();
  // Each one sends its close_notify when TLS is up.
  for (auto& [raw, connection] : connections) connection->abandon();
  connections.clear();
  while (!waiters.empty()) {
    finish_wait(waiters.front().get(), std::make_error_code(std::errc::operation_canceled));
  }
  hook_deadline = std::chrono::steady_clock::now() + options.hook_drain_timeout;
  // From inside a hook, the run already on the stack finishes the drain.
  if (!hooks.running()) {
    hooks.run(hooks.size(), hook_deadline);
    hooks.drop_all();
    hooks_event.reset();
    hooks_posted = false;
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

// One timer: event_add replaces its timeout, event_del clears it.
void detail::ClusterImpl::arm_timer() {
  const std::optional<Instant> next = node->poll_timeout();
  if (next == armed_for) return;
  armed_for = next;
  if (!next) {
    event_del(timer.get());
    return;
  }
  // libevent measures the timeout from its cached loop time: refresh it.
  event_base_update_cache_time(base);
  const timeval tv = to_timeval(*next - clock_now());
  event_add(timer.get(), &tv);
}

void detail::ClusterImpl::start_exchange(Transmit tx) {
  if (options.transport == Transport::kTcp) {
    if (outgoing >= options.max_outgoing_exchanges) {
      ++stats.exchanges_refused;
      return;
    }
    ++stats.exchanges_started;
    auto connection = std::make_unique<Connection>(*this, Connection::Role::kInitiator);
    Connection* raw = connection.get();
    connections.emplace(raw, std::move(connection));
    raw->run_initiator(std::move(tx));
    return;
  }
  ++stats.exchanges_started;
  std::optional<SocketAddress> to = driver::detail::numeric_socket_address(tx.to);
  if (!to) {
    // A node advertising a host name: its replies come from a numeric
    // source the core will not match, so UDP clusters should advertise
    // numbers. Resolved with the system resolver, blocking.
    std::string error;
    to = driver::detail::resolve(tx.to, SOCK_DGRAM, family, &error);
    if (!to) {
      ++stats.connect_failures;
      log("cannot resolve " + tx.to.to_string() + ": " + error);
      return;
    }
  }
  send_datagram(*to, std::move(tx.payload));
}

void detail::ClusterImpl::on_accept(evutil_socket_t fd, const sockaddr* from) {
  Address peer = driver::detail::numeric_address(from);
  const auto admission = stopped
                             ? decltype(waiting)::Admission{nullptr, false}
                             : waiting.admit(peer.host, inbound, options.max_inbound_connections);
  if (admission.evict != nullptr) {
    ++stats.connections_evicted;
    admission.evict->evict();
  }
  if (!admission.accept) {
    ++stats.connections_refused;
    evutil_closesocket(fd);
    return;
  }
  ++stats.connections_accepted;
  auto connection = std::make_unique<Connection>(*this, Connection::Role::kResponder);
  Connection* raw = connection.get();
  connections.emplace(raw, std::move(connection));
  raw->run_responder(fd, std::move(peer));
}

void detail::ClusterImpl::forget(Connection* connection) { connections.erase(connection); }

// Reads until the socket would block, at most a batch per wake-up so a flood
// cannot starve the rest of the loop (the event is level-triggered: it fires
// again at once).
void detail::ClusterImpl::on_datagrams() {
  for (int batch = 0; batch < 256 && !stopped; ++batch) {
    SocketAddress from;
    from.length = sizeof from.storage;
    const ssize_t n =
        ::recvfrom(socket.get(), datagram.data(), datagram.size(), 0, from.get(), &from.length);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      // ICMP errors of earlier sends surface here.
      ++stats.io_errors;
      continue;
    }
    ++stats.datagrams_in;
    const Inbound inbound_from{driver::detail::numeric_address(from.get()), Stage::kDatagram, {}};
    auto reply = node->handle_packet(ByteView(datagram.data(), static_cast<std::size_t>(n)),
                                     clock_now(), inbound_from);
    if (reply) send_datagram(from, std::move(reply->payload));
    after_input();
  }
}

void detail::ClusterImpl::send_datagram(const SocketAddress& to, Bytes payload) {
  if (udp_queue.empty()) {
    const ssize_t n =
        ::sendto(socket.get(), payload.data(), payload.size(), MSG_NOSIGNAL, to.get(), to.length);
    if (n >= 0) {
      ++stats.datagrams_out;
      return;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
      ++stats.io_errors;
      log("send to " + driver::detail::numeric_address(to.get()).to_string() + ": " +
          std::strerror(errno));
      return;
    }
  }
  if (udp_queue.size() >= options.max_pending_datagrams) {
    ++stats.exchanges_refused;
    return;
  }
  udp_queue.push_back({to, std::move(payload)});
  event_add(udp_write.get(), nullptr);
}

void detail::ClusterImpl::flush_datagrams() {
  while (!udp_queue.empty()) {
    const Outgoing& next = udp_queue.front();
    const ssize_t n = ::sendto(socket.get(), next.payload.data(), next.payload.size(), MSG_NOSIGNAL,
                               next.to.get(), next.to.length);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
      event_add(udp_write.get(), nullptr);
      return;
    }
    ++(n >= 0 ? stats.datagrams_out : stats.io_errors);
    udp_queue.pop_front();
  }
}

void detail::ClusterImpl::schedule_hooks() {
  if (hooks_posted || !hooks_event) return;
  hooks_posted = true;
  event_active(hooks_event.get(), EV_TIMEOUT, 1);
}

void detail::ClusterImpl::run_hooks() {
  // A hook may destroy the Cluster: keep this alive until the run is over.
  const std::shared_ptr<ClusterImpl> self = shared_from_this();
  hooks_posted = false;
  // Only what is queued now: events raised by the hooks run next turn.
  hooks.run(hooks.size(), hook_deadline);
  if (stopped) {
    hooks.drop_all();
    hooks_event.reset();
  } else if (!hooks.empty()) {
    schedule_hooks();
  }
}

void detail::ClusterImpl::add_wait(Cluster::Predicate predicate, Duration timeout,
                                   Cluster::WaitHandler handler) {
  if (stopped || predicate(*node)) {
    const std::error_code ec =
        stopped ? std::make_error_code(std::errc::operation_canceled) : std::error_code{};
    defer(base, [handler = std::move(handler), ec] { handler(ec); });
    return;
  }
  auto waiter =
      std::make_unique<Waiter>(Waiter{std::move(predicate), std::move(handler), nullptr, this});
  Waiter* raw = waiter.get();
  raw->timer.reset(evtimer_new(
      base,
      [](evutil_socket_t, short, void* arg) {
        auto* w = static_cast<Waiter*>(arg);
        w->impl->finish_wait(w, std::make_error_code(std::errc::timed_out));
      },
      raw));
  const timeval tv = to_timeval(timeout);
  event_add(raw->timer.get(), &tv);
  waiters.push_back(std::move(waiter));
}

void detail::ClusterImpl::finish_wait(Waiter* waiter, std::error_code ec) {
  defer(base, [handler = std::move(waiter->handler), ec] { handler(ec); });
  waiters.remove_if([waiter](const std::unique_ptr<Waiter>& w) { return w.get() == waiter; });
}

void detail::ClusterImpl::check_waiters() {
  for (auto it = waiters.begin(); it != waiters.end();) {
    Waiter* waiter = (it++)->get();
    if (waiter->predicate(*node)) finish_wait(waiter, {});
  }
}

// --- Cluster ---

Cluster::Cluster(event_base* base, Config config, const KeyValues& initial_key_values,
                 Options options)
    : impl_(std::make_shared<detail::ClusterImpl>(base, std::move(options))) {
  if (base == nullptr) throw std::invalid_argument("base: must not be null");
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
event_base* Cluster::base() const { return impl_->base; }
void Cluster::use_dns(evdns_base* dns) { impl_->dns = dns; }
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

void Cluster::wait(Predicate predicate, Duration timeout, WaitHandler handler) {
  impl_->add_wait(std::move(predicate), timeout, std::move(handler));
}

void Cluster::wait_live(std::size_t count, Duration timeout, WaitHandler handler) {
  wait([count](const Node& node) { return driver::live_at_least(node, count); }, timeout,
       std::move(handler));
}

void Cluster::wait_key(std::string node_name, std::string key, std::string value, Duration timeout,
                       WaitHandler handler) {
  wait([node_name = std::move(node_name), key = std::move(key), value = std::move(value)](
           const Node& node) { return driver::has_key_value(node, node_name, key, value); },
       timeout, std::move(handler));
}

bool Cluster::has_key_value(const Node& node, std::string_view node_name, std::string_view key,
                            std::string_view value) {
  return driver::has_key_value(node, node_name, key, value);
}

}  // namespace aiocluster::libevent_driver
