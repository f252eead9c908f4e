// Plain POSIX sockets for a driver whose event loop only reports readiness
// (libevent): the bound listening or datagram socket, and UDP reads and
// writes with a bounded queue for what the socket would not take yet.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <system_error>
#include <utility>

#include "aiocluster/common/options.h"
#include "aiocluster/config.h"
#include "aiocluster/types.h"
#include "driver_common/driver_core.h"
#include "driver_common/net.h"

namespace aiocluster::driver::detail {

// A socket this object closes, until someone else takes it.
class Socket {
 public:
  Socket() = default;
  ~Socket() { reset(); }
  Socket(Socket&& other) noexcept : fd_(other.release()) {}
  Socket& operator=(Socket&& other) noexcept {
    reset(other.release());
    return *this;
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

std::system_error errno_error(const std::string& what);

// Frames go out at once, not held back to fill a segment (Nagle). No-op on -1.
void set_no_delay(int fd);

// A non-blocking socket of `type` (SOCK_STREAM or SOCK_DGRAM) bound at
// `listen`, a host name resolved first; throws std::system_error.
struct BoundSocket {
  Socket socket;
  int family = 0;
  Address local;  // numeric, with the real port
};
BoundSocket bind_socket(const Address& listen, int type);
// The socket of Options::transport, at Options::listen, else at the node's
// advertised address.
BoundSocket bind_socket(const Config& config, const Options& options);

// A bound UDP socket: every datagram read goes to the DriverCore; replies
// and Syns go out at once or, while the socket would block, wait in a queue
// of at most Options::max_pending_datagrams.
class DatagramSocket {
 public:
  // `watch_writable`: have flush() called once the socket is writable.
  DatagramSocket(Socket socket, DriverCore& core, std::function<void()> watch_writable);

  int fd() const { return socket_.get(); }
  // Reads until the socket would block, at most a batch, so a flood cannot
  // starve the rest of the loop (the driver's read event fires again).
  void receive();
  // A Syn to `to`: the reply from there answers it. A host name resolves
  // with the system resolver (blocking), to an address of `family` when it
  // has one.
  void send_syn(const Address& to, Bytes payload, int family);
  void send(const SocketAddress& to, Bytes payload);
  // Sends what is queued.
  void flush();

 private:
  struct Outgoing {
    SocketAddress to;
    Bytes payload;
  };

  Socket socket_;
  DriverCore& core_;
  std::function<void()> watch_writable_;
  Bytes buffer_;
  std::deque<Outgoing> queue_;
};

}  // namespace aiocluster::driver::detail
