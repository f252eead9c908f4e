// The protobuf wire format of PROTOCOL.md, read and written directly (an
// internal header of the core).
//
// One form of every message is canonical: the one the generated serializer
// writes (fields in number order, proto3 defaults left out, the
// sub-messages we set always present, minimal varints). The writer writes
// it; the reader accepts only it, and only with UTF-8 text and in-range
// values, as views into the packet's bytes: no copies, and no allocations
// once its vectors have grown. Anything else a peer may legally send goes
// through the generated parser and is written again canonically (codec.cc).
//
// Canonical bytes are what make the views cheap to use: equal NodeIdPb bytes
// name the same node, so a node is found by its encoded id; and a
// KeyValueUpdatePb body can be stored as it arrived and sent on unchanged.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "aiocluster/types.h"
#include "codec_internal.h"

namespace aiocluster {
class NodeState;
}

namespace aiocluster::wire {

// Every field number of the schema is below 16: one-byte tags.
constexpr std::uint8_t tag(unsigned field, unsigned wire_type) {
  return static_cast<std::uint8_t>(field << 3 | wire_type);
}
inline constexpr unsigned kVarint = 0;
inline constexpr unsigned kLength = 2;
// Field 16 (our extensions, proto/README.md), length-delimited: a two-byte tag.
inline constexpr std::uint8_t kExtensionTag[2] = {0x82, 0x01};

inline std::size_t uint_field_size(std::uint64_t v) {
  return v == 0 ? 0 : 1 + wire_size::varint(v);
}

class Writer {
 public:
  explicit Writer(std::uint8_t* out) : p_(out) {}
  std::uint8_t* position() const { return p_; }

  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      *p_++ = static_cast<std::uint8_t>(v | 0x80);
      v >>= 7;
    }
    *p_++ = static_cast<std::uint8_t>(v);
  }
  void byte(std::uint8_t b) { *p_++ = b; }
  void raw(const void* data, std::size_t size) {
    std::memcpy(p_, data, size);
    p_ += size;
  }
  // A proto3 scalar: left out when 0.
  void uint_field(unsigned field, std::uint64_t v) {
    if (v == 0) return;
    byte(tag(field, kVarint));
    varint(v);
  }
  // A proto3 text: left out when empty.
  void string_field(unsigned field, std::string_view s) {
    if (s.empty()) return;
    header(field, s.size());
    raw(s.data(), s.size());
  }
  // The tag and length of a length-delimited field whose body follows.
  void header(unsigned field, std::size_t length) {
    byte(tag(field, kLength));
    varint(length);
  }

 private:
  std::uint8_t* p_;
};

// The canonical NodeIdPb body of an id (its size is wire_size::node_id).
void write_node_id(Writer& w, const NodeId& id);
Bytes encode_node_id(const NodeId& id);

// --- Views of a canonical packet. ---

// A NodeIdPb body, read in full by read_node_id.
struct NodeIdView {
  std::string_view name;
  std::uint64_t generation_id = 0;
  std::string_view host;
  std::uint16_t port = 0;
  std::string_view tls_name;

  NodeId to_node_id() const;
  // The order of NodeId (name, generation, host, port, tls_name).
  std::strong_ordering compare(const NodeId& id) const;
};

// Reads a minimal varint, or a length-prefixed body, off the front of
// `rest`; false when there is none.
bool read_varint(ByteView& rest, std::uint64_t& v);
bool read_length_delimited(ByteView& rest, ByteView& body);

// Reads a canonical NodeIdPb body; false when it is not one.
bool read_node_id(ByteView body, NodeIdView& out);

// A node id as a packet names it: its NodeIdPb body, not read yet, and what
// ClusterState::resolve learns of it: its node, or the id read in full.
struct IdRef {
  ByteView bytes;
  NodeState* state = nullptr;  // the node, when known
  std::size_t hash = 0;        // of `bytes`, keyed by the state's seed
  std::uint32_t unknown = 0;   // 1 + its index in PacketView::unknown_ids
};

struct DigestEntryView {
  IdRef id;
  std::uint64_t heartbeat = 0;
  std::uint64_t last_gc_version = 0;
  std::uint64_t max_version = 0;
};

struct KeyValueView {
  // The body's length prefix, then the body: the form a node state keeps.
  const std::uint8_t* stored = nullptr;
  std::uint32_t stored_size = 0;
  KeyStatus status = KeyStatus::kSet;
  std::uint64_t version = 0;
  std::string_view key;
  std::string_view value;
};

struct NodeDeltaView {
  IdRef id;
  std::uint64_t from_version_excluded = 0;
  std::uint64_t last_gc_version = 0;
  bool has_max_version = false;
  std::uint64_t max_version = 0;
  std::uint32_t first_key_value = 0;  // in PacketView::key_values
  std::uint32_t key_value_count = 0;
  std::uint32_t key_value_bytes = 0;  // stored bytes of its key-values
  // Learnt while reading, so applying needs no pass of its own to check a
  // node delta: whether the versions increase strictly from
  // from_version_excluded, and the bitwise or of the key sizes and of the
  // value sizes, at least the longest and less than twice it (the exact
  // longest is only looked for when this bound exceeds a limit).
  bool versions_increase = true;
  std::uint32_t key_sizes_or = 0;
  std::uint32_t value_sizes_or = 0;
};

enum class Kind : std::uint8_t { kSyn, kSynAck, kAck, kBadCluster };

struct PacketView {
  std::string_view cluster_id;
  Kind kind = Kind::kBadCluster;
  std::vector<DigestEntryView> digest;
  std::vector<NodeDeltaView> node_deltas;
  std::vector<KeyValueView> key_values;  // of every node delta, in order
  std::vector<NodeIdView> unknown_ids;   // filled by ClusterState::resolve
  // Our extensions (proto/README.md), unread: PacketPb.extensions and the
  // Syn's or SynAck's compact_digest bodies; empty when absent.
  ByteView extensions;
  ByteView compact_digest;
  std::uint64_t resolved_at = 0;  // ClusterState's count of nodes added, then

  const KeyValueView* key_values_of(const NodeDeltaView& nd) const {
    return key_values.data() + nd.first_key_value;
  }
};

// Reads a packet in canonical form into `out` (whose vectors are reused),
// every field but the node ids, which callers read or match themselves.
// False when the bytes are anything else: the generated parser decides.
bool read_packet(ByteView bytes, PacketView& out);

}  // namespace aiocluster::wire
