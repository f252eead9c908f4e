// The codec's internals (an internal header of the core): the reference
// codec through the generated protobuf code, the UTF-8 check, and the exact
// encoded size of every part of a packet, so a sender can fill a packet up to
// its budget without ever exceeding it. Visible to the core, the in-tree
// drivers, tests, benchmarks and fuzzers (aiocluster_core_internal), never
// installed.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "aiocluster/codec.h"
#include "aiocluster/messages.h"
#include "aiocluster/types.h"

namespace aiocluster {

// The same through the generated protobuf code: the reference that encode and
// decode are checked against (encode writes the same bytes; decode reads the
// canonical form itself and hands everything else to decode_reference).
// Slower: every packet becomes a tree of protobuf objects.
Bytes encode_reference(const Packet& packet);
DecodeResult decode_reference(ByteView bytes);

// Whether `text` is well-formed UTF-8 (RFC 3629), as protobuf requires of
// every string field: a packet holding anything else is unreadable to peers.
bool is_valid_utf8(std::string_view text);

// Exact sizes in bytes of the protobuf encoding (proto3 rules: default scalars
// and empty strings are left out; message fields we set are always written).
namespace wire_size {

// Inline and branch-free: sizes are computed for every field of every digest
// entry, and this was the hottest function of a gossip exchange.
constexpr std::size_t varint(std::uint64_t value) {
  return static_cast<std::size_t>(std::bit_width(value | 1) + 6) / 7;
}
// A length-delimited field (string or sub-message) whose payload is `length`
// bytes, with a one-byte tag (all our field numbers are below 16).
inline std::size_t length_delimited(std::size_t length) { return 1 + varint(length) + length; }

std::size_t node_id(const NodeId& id);              // NodeIdPb body
std::size_t node_digest(const NodeDigest& digest);  // NodeDigestPb body
std::size_t key_value(std::string_view key, std::string_view value, std::uint64_t version,
                      KeyStatus status);         // KeyValueUpdatePb body
std::size_t digest(const Digest& digest);        // DigestPb body
std::size_t node_delta(const NodeDelta& delta);  // NodeDeltaPb body
std::size_t delta(const Delta& delta);           // DeltaPb body
std::size_t packet(const Packet& packet);        // whole encoded packet

}  // namespace wire_size

}  // namespace aiocluster
