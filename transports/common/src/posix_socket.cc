#include "driver_common/posix_socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace aiocluster::driver::detail {

namespace {
bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS; }
}  // namespace

void Socket::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::system_error errno_error(const std::string& what) {
  return {errno, std::generic_category(), what};
}

void set_no_delay(int fd) {
  const int one = 1;
  if (fd >= 0) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

BoundSocket bind_socket(const Address& listen, int type) {
  SocketAddress address = numeric_socket_address(listen).value_or(SocketAddress{});
  if (address.length == 0) address = resolve_or_throw(listen, type, AF_UNSPEC, "listen host");
  const std::string what = std::string(type == SOCK_STREAM ? "tcp " : "udp ") + listen.to_string();
  BoundSocket bound;
  bound.family = address.family();
  bound.socket.reset(::socket(address.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (bound.socket.get() < 0) throw errno_error("cannot open a socket for " + what);
  if (type == SOCK_STREAM) {
    const int one = 1;
    ::setsockopt(bound.socket.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  }
  if (::bind(bound.socket.get(), address.get(), address.length) != 0) {
    throw errno_error("cannot bind " + what);
  }
  SocketAddress local;
  local.length = sizeof local.storage;
  if (::getsockname(bound.socket.get(), local.get(), &local.length) != 0) {
    throw errno_error("getsockname " + what);
  }
  bound.local = numeric_address(local.get());
  return bound;
}

BoundSocket bind_socket(const Config& config, const Options& options) {
  return bind_socket(options.listen.value_or(config.node_id.gossip_advertise_addr),
                     options.transport == Transport::kTcp ? SOCK_STREAM : SOCK_DGRAM);
}

DatagramSocket::DatagramSocket(Socket socket, DriverCore& core,
                               std::function<void()> watch_writable)
    : socket_(std::move(socket)),
      core_(core),
      watch_writable_(std::move(watch_writable)),
      buffer_(datagram_buffer_size(core.node().config())) {}

void DatagramSocket::receive() {
  for (int batch = 0; batch < 256 && !core_.stopped(); ++batch) {
    SocketAddress from;
    from.length = sizeof from.storage;
    const ssize_t n =
        ::recvfrom(socket_.get(), buffer_.data(), buffer_.size(), 0, from.get(), &from.length);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // ICMP errors of earlier sends surface here.
      if (errno != EINTR) ++core_.stats().io_errors;
      continue;
    }
    core_.handle_datagram(ByteView(buffer_.data(), static_cast<std::size_t>(n)),
                          peer_key(from.get()), [&](Bytes reply) { send(from, std::move(reply)); });
  }
}

void DatagramSocket::send_syn(const Address& to, Bytes payload, int family) {
  std::string error;
  std::optional<SocketAddress> address = numeric_socket_address(to);
  if (!address) address = resolve(to, SOCK_DGRAM, family, &error);
  if (!address) {
    ++core_.stats().connect_failures;
    core_.log("cannot resolve " + to.to_string() + ": " + error);
    return;
  }
  core_.datagram_sent(peer_key(address->get()));
  send(*address, std::move(payload));
}

void DatagramSocket::send(const SocketAddress& to, Bytes payload) {
  if (queue_.empty()) {
    const ssize_t n =
        ::sendto(socket_.get(), payload.data(), payload.size(), MSG_NOSIGNAL, to.get(), to.length);
    if (n >= 0) {
      ++core_.stats().datagrams_out;
      return;
    }
    if (!would_block(errno)) {
      ++core_.stats().io_errors;
      core_.log("send to " + numeric_address(to.get()).to_string() + ": " + std::strerror(errno));
      return;
    }
  }
  if (queue_.size() >= core_.options().max_pending_datagrams) {
    ++core_.stats().exchanges_refused;
    return;
  }
  queue_.push_back({to, std::move(payload)});
  watch_writable_();
}

void DatagramSocket::flush() {
  while (!queue_.empty()) {
    const Outgoing& next = queue_.front();
    const ssize_t n = ::sendto(socket_.get(), next.payload.data(), next.payload.size(),
                               MSG_NOSIGNAL, next.to.get(), next.to.length);
    if (n < 0 && would_block(errno)) return watch_writable_();
    ++(n >= 0 ? core_.stats().datagrams_out : core_.stats().io_errors);
    queue_.pop_front();
  }
}

}  // namespace aiocluster::driver::detail
