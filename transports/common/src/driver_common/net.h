// Decisions every driver makes the same way around its sockets: the numeric
// form of addresses handed to the core, name resolution at construction,
// UDP seeds, and the checks of a config and options before binding.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "aiocluster/common/options.h"
#include "aiocluster/config.h"
#include "aiocluster/types.h"

namespace aiocluster::driver::detail {

// A socket address of either family, as the BSD socket calls take it.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
};

// The address the core sees for a socket address: numeric, with an
// IPv4-mapped IPv6 address folded to IPv4, so a datagram's source compares
// equal to the address its Syn was sent to.
Address numeric_address(const sockaddr* address);

// The socket address of a numeric host (IPv4 or IPv6 literal); nullopt for
// a host name.
std::optional<SocketAddress> numeric_socket_address(const Address& address);

// Resolves with the system resolver, blocking. Prefers a result of `family`
// when it is not AF_UNSPEC. nullopt (and `error` set, when given) when
// nothing resolves.
std::optional<SocketAddress> resolve(const Address& address, int socktype, int family,
                                     std::string* error = nullptr);
// The same for construction time: throws std::system_error naming `what`.
SocketAddress resolve_or_throw(const Address& address, int socktype, int family,
                               std::string_view what);

// Over UDP the core matches replies by the exact address a Syn went to, and
// sources are reported numerically: seeds given by name are resolved once,
// preferring `family`. Those that do not resolve are logged and kept.
void make_seeds_numeric(Config& config, int family,
                        const std::function<void(std::string_view)>& log);

// Checks `options` (std::invalid_argument) and `config` (ConfigError) before
// any socket is touched. An advertise port of 0 is allowed: the driver fills
// it in from the bound port.
void check_config_and_options(const Config& config, const Options& options);

// A seed for the node's generator: Options::seed, else std::random_device.
std::uint64_t node_seed(const Options& options);

// The receive buffer of a datagram socket: the node's inbound limit (no
// datagram exceeds 65,535 bytes), plus one byte so an oversized one shows.
std::size_t datagram_buffer_size(const Config& config);

// An unset (0) generation_id becomes the wall-clock time in nanoseconds
// since the Unix epoch: unlike a monotonic reading (Python aiocluster
// 1.1.0's default), it differs across process restarts and reboots alike,
// so a restarted node is never mistaken for its previous incarnation.
void fill_unset_generation(Config& config);

}  // namespace aiocluster::driver::detail
