#include "aiocluster/types.h"

#include <charconv>

namespace aiocluster {

std::string Address::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  std::string out;
  out.reserve(host.size() + 8);
  if (v6) out += '[';
  out += host;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

std::optional<Address> Address::parse(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;
  }
  if (host.empty() || port.empty()) return std::nullopt;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || end != port.data() + port.size() || value > 65535) return std::nullopt;
  return Address{std::string(host), static_cast<std::uint16_t>(value)};
}

}  // namespace aiocluster

namespace {
std::size_t mix(std::size_t seed, std::size_t value) {
  return seed ^ (value + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
}
}  // namespace

std::size_t std::hash<aiocluster::Address>::operator()(
    const aiocluster::Address& a) const noexcept {
  return mix(std::hash<std::string>{}(a.host), a.port);
}

std::size_t std::hash<aiocluster::NodeId>::operator()(const aiocluster::NodeId& id) const noexcept {
  std::size_t h = std::hash<std::string>{}(id.name);
  h = mix(h, std::hash<std::uint64_t>{}(id.generation_id));
  h = mix(h, std::hash<aiocluster::Address>{}(id.gossip_advertise_addr));
  return mix(h, std::hash<std::string>{}(id.tls_name));
}
