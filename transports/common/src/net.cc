#include "driver_common/net.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>

namespace aiocluster::driver::detail {

namespace {

struct AddrInfoFree {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};

std::optional<SocketAddress> lookup(const Address& address, int socktype, int family, int flags,
                                    int& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = flags | AI_NUMERICSERV;
  addrinfo* raw = nullptr;
  const std::string port = std::to_string(address.port);
  error = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &raw);
  if (error != 0 || raw == nullptr) return std::nullopt;
  const std::unique_ptr<addrinfo, AddrInfoFree> results(raw);
  const addrinfo* pick = raw;
  for (const addrinfo* it = raw; it != nullptr; it = it->ai_next) {
    if (family != AF_UNSPEC && it->ai_family == family) {
      pick = it;
      break;
    }
  }
  SocketAddress out;
  std::memcpy(&out.storage, pick->ai_addr, pick->ai_addrlen);
  out.length = pick->ai_addrlen;
  return out;
}

}  // namespace

Address numeric_address(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    return Address{text, ntohs(v4->sin_port)};
  }
  if (address->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      inet_ntop(AF_INET, &v6->sin6_addr.s6_addr[12], text, sizeof text);
    } else {
      inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    }
    return Address{text, ntohs(v6->sin6_port)};
  }
  return Address{};
}

std::optional<SocketAddress> numeric_socket_address(const Address& address) {
  int error = 0;
  return lookup(address, 0, AF_UNSPEC, AI_NUMERICHOST, error);
}

std::optional<SocketAddress> resolve(const Address& address, int socktype, int family,
                                     std::string* error) {
  int code = 0;
  auto found = lookup(address, socktype, family, 0, code);
  if (!found && error != nullptr) *error = code != 0 ? gai_strerror(code) : "no address";
  return found;
}

SocketAddress resolve_or_throw(const Address& address, int socktype, int family,
                               std::string_view what) {
  std::string error;
  if (auto found = resolve(address, socktype, family, &error)) return *found;
  throw std::system_error(
      std::make_error_code(std::errc::address_not_available),
      "cannot resolve " + std::string(what) + " '" + address.host + "': " + error);
}

void make_seeds_numeric(Config& config, int family,
                        const std::function<void(std::string_view)>& log) {
  for (Address& seed : config.seeds) {
    if (numeric_socket_address(seed)) continue;
    std::string error;
    if (auto found = resolve(seed, SOCK_DGRAM, family, &error)) {
      seed.host = numeric_address(found->get()).host;
    } else if (log) {
      log("cannot resolve seed " + seed.to_string() + ": " + error);
    }
  }
}

void check_config_and_options(const Config& config, const Options& options) {
  if (auto why = options.validate()) throw std::invalid_argument("options." + *why);
  Config probe = config;
  if (probe.node_id.gossip_advertise_addr.port == 0) probe.node_id.gossip_advertise_addr.port = 1;
  if (auto why = probe.validate()) throw ConfigError(*why);
}

std::uint64_t node_seed(const Options& options) {
  if (options.seed) return *options.seed;
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

std::size_t datagram_buffer_size(const Config& config) {
  return std::min<std::size_t>(config.max_inbound_payload_size, 65'535) + 1;
}

void fill_unset_generation(Config& config) {
  if (config.node_id.generation_id != 0) return;
  const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  config.node_id.generation_id =
      std::max<std::uint64_t>(1, static_cast<std::uint64_t>(since_epoch.count()));
}

}  // namespace aiocluster::driver::detail
