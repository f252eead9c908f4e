// Encoding and decoding of packets in the protobuf wire format, as the plain
// messages of aiocluster/messages.h: for tools, tests and simulations that
// look inside packets. A Node reads and writes its own; drivers never need it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

#include "aiocluster/messages.h"
#include "aiocluster/types.h"

namespace aiocluster {

enum class DecodeError : std::uint8_t {
  kMalformed,     // not a parseable PacketPb
  kNoMessage,     // no known oneof member set (empty, or a newer message kind)
  kInvalidField,  // parseable but out of range (a port above 65535, an unknown status,
                  // text that is not UTF-8)
};

std::string_view to_string(DecodeError error);

using DecodeResult = std::variant<Packet, DecodeError>;

Bytes encode(const Packet& packet);
DecodeResult decode(ByteView bytes);

// The plain packet inside a compressed one (proto/README.md section 5), when
// `bytes` is one that decodes to at most `bound` bytes; nullopt otherwise.
std::optional<Bytes> decompress(ByteView bytes, std::size_t bound = 256 * 1024);

}  // namespace aiocluster
