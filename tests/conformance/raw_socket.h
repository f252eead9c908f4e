// A plain POSIX socket for the conformance tests: feeds a node bytes no
// driver would send, and reads what it answers. Non-blocking, so a test can
// poll it between slices of the driver's loop on the same thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aiocluster/framing.h"
#include "aiocluster/types.h"

namespace aiocluster::conformance {

class RawSocket {
 public:
  // `receive_buffer`: SO_RCVBUF to ask for before connecting (0: default),
  // for peers that read slowly. `from`: the local IPv4 address to bind
  // (empty: the system's choice); any of 127.0.0.0/8 plays another host.
  RawSocket(int type, const Address& to, int receive_buffer = 0, const std::string& from = "")
      : fd_(::socket(AF_INET, type | SOCK_NONBLOCK, 0)) {
    if (receive_buffer > 0)
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    if (!from.empty()) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      ::inet_pton(AF_INET, from.c_str(), &local.sin_addr);
      (void)::bind(fd_, reinterpret_cast<const sockaddr*>(&local), sizeof local);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(to.port);
    ::inet_pton(AF_INET, to.host.c_str(), &addr.sin_addr);
    // Non-blocking connect to loopback: completes while the loop runs.
    (void)::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  }
  ~RawSocket() { ::close(fd_); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  // Takes an accepted (non-blocking) stream socket.
  explicit RawSocket(int accepted_fd) : fd_(accepted_fd) {}

  // True when every byte went out at once (false while still connecting).
  bool send(const Bytes& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }

  // Queues `bytes` for pump(), for more than the socket takes at once.
  void queue(const Bytes& bytes) { out_.insert(out_.end(), bytes.begin(), bytes.end()); }
  // Writes what the socket takes of the queue; true once it is all out.
  bool pump() {
    while (!out_.empty()) {
      const ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      out_.erase(out_.begin(), out_.begin() + n);
    }
    return true;
  }

  // True once the peer has closed the connection (EOF or reset). Reads and
  // discards what the peer sent before.
  bool closed_by_peer() {
    std::uint8_t buf[4096];
    while (true) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) continue;
      return n == 0 ||
             (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINPROGRESS && errno != ENOTCONN);
    }
  }

  // The next whole frame the peer sent, once it is in (stream sockets), up
  // to the default inbound limit.
  std::optional<Bytes> read_frame() {
    std::uint8_t buf[4096];
    while (true) {
      if (auto frame = decoder_.next_frame()) return frame;
      const ssize_t n = ::recv(fd_, buf, std::min(sizeof buf, decoder_.wanted()), 0);
      if (n <= 0) return std::nullopt;
      decoder_.feed(ByteView(buf, static_cast<std::size_t>(n)));
    }
  }

  // The next datagram, if one is waiting (datagram sockets).
  std::optional<Bytes> read_datagram() {
    Bytes buf(65'536);
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }

 private:
  int fd_;
  FrameDecoder decoder_{1024 * 1024};
  Bytes out_;
};

// A TCP listener on 127.0.0.1 (ephemeral port) that plays a peer the node
// dials: accept() hands over each connection as a RawSocket.
class RawListener {
 public:
  RawListener() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    (void)::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    (void)::listen(fd_, 16);
    (void)::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~RawListener() { ::close(fd_); }
  RawListener(const RawListener&) = delete;
  RawListener& operator=(const RawListener&) = delete;

  Address address() const { return Address{"127.0.0.1", port_}; }
  std::unique_ptr<RawSocket> accept() {
    const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK);
    if (fd < 0) return nullptr;
    return std::make_unique<RawSocket>(fd);
  }

 private:
  int fd_;
  std::uint16_t port_ = 0;
};

}  // namespace aiocluster::conformance
