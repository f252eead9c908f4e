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

#include <bit>
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

  // Through a local pointer: a byte stored through p_ may alias p_ itself,
  // so the compiler would reload and store it around every byte.
  void varint(std::uint64_t v) {
    std::uint8_t* p = p_;
    while (v >= 0x80) {
      *p++ = static_cast<std::uint8_t>(v | 0x80);
      v >>= 7;
    }
    *p++ = static_cast<std::uint8_t>(v);
    p_ = p;
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

// Eight bytes at a time: text in gossip is almost always ASCII, and only
// then is the full UTF-8 check skipped. Up to 16 bytes (most keys and
// values) take two overlapping loads.
[[gnu::always_inline]] inline bool is_ascii(const std::uint8_t* p, std::size_t n) {
  auto load = [](const std::uint8_t* at, std::size_t bytes) {
    std::uint64_t word = 0;
    std::memcpy(&word, at, bytes);
    return word;
  };
  std::uint64_t any = 0;
  if (n > 16) {
    for (std::size_t i = 0; i + 8 < n; i += 8) any |= load(p + i, 8);
    any |= load(p + n - 8, 8);
  } else if (n >= 8) {
    any = load(p, 8) | load(p + n - 8, 8);
  } else if (n >= 4) {
    any = load(p, 4) | load(p + n - 4, 4);
  } else {
    for (std::size_t i = 0; i < n; ++i) any |= p[i];
  }
  return (any & 0x8080808080808080ULL) == 0;
}

// Reads the canonical form; any false means "not canonical". Inline, as
// every field of a packet goes through it: the packet reader (wire.cc) and
// the compact digest (compact_digest.cc) share it.
class Reader {
 public:
  explicit Reader(ByteView bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}
  bool done() const { return p_ == end_; }
  const std::uint8_t* position() const { return p_; }

  // Consumes `t` when it is the next byte: fields come in number order, so
  // each optional field is one test.
  bool next(std::uint8_t t) {
    if (p_ == end_ || *p_ != t) return false;
    ++p_;
    return true;
  }
  bool varint(std::uint64_t& v) {
    if (p_ != end_ && *p_ < 0x80) {
      v = *p_++;
      return true;
    }
    // Two bytes: versions and heartbeats up to 16,383.
    if (end_ - p_ >= 2 && p_[1] < 0x80) {
      v = (p_[0] & 0x7f) | static_cast<std::uint64_t>(p_[1]) << 7;
      const bool minimal = p_[1] != 0;
      p_ += 2;
      return minimal;
    }
    return long_varint(v);
  }
  // Field 16, length-delimited, when it comes next (our extensions).
  bool extension(ByteView& out) {
    if (end_ - p_ < 2 || p_[0] != kExtensionTag[0] || p_[1] != kExtensionTag[1]) return true;
    p_ += 2;
    return length_delimited(out);
  }
  // A fixed64 field's value, little-endian.
  bool fixed64(std::uint64_t& v) {
    if (end_ - p_ < 8) return false;
    v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | p_[i];
    p_ += 8;
    return true;
  }
  // A scalar that is present: proto3 leaves zeros out.
  bool nonzero(std::uint64_t& v) { return varint(v) && v != 0; }
  bool length_delimited(ByteView& out) {
    std::uint64_t n = 0;
    if (!varint(n) || n > static_cast<std::uint64_t>(end_ - p_)) return false;
    out = ByteView(p_, static_cast<std::size_t>(n));
    p_ += n;
    return true;
  }
  // Text that is present: not empty, UTF-8.
  bool text(std::string_view& out) {
    ByteView bytes;
    if (!length_delimited(bytes) || bytes.empty()) return false;
    out = std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return is_ascii(bytes.data(), bytes.size()) || is_valid_utf8(out);
  }

 private:
  // Two bytes or more, and no longer than needed (an over-long varint
  // ends in a zero byte).
  bool long_varint(std::uint64_t& v) {
    if constexpr (std::endian::native == std::endian::little) {
      if (end_ - p_ >= 10) return long_varint_unrolled(v);
    }
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const std::uint8_t byte = *p_++;
      // The tenth byte may only carry the top bit of a 64-bit value.
      if (shift == 63 && byte > 1) return false;
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if (byte < 0x80) return byte != 0;
    }
    return false;
  }

  // The low seven bits of each byte of `word`, packed: pairs, then quads,
  // then all eight, each step in parallel.
  static std::uint64_t seven_bit_groups(std::uint64_t word) {
    std::uint64_t x = word & 0x7f7f7f7f7f7f7f7fULL;
    x = (x & 0x007f007f007f007fULL) | ((x & 0x7f007f007f007f00ULL) >> 1);
    x = (x & 0x00003fff00003fffULL) | ((x & 0x3fff00003fff0000ULL) >> 2);
    return (x & 0x000000000fffffffULL) | ((x & 0x0fffffff00000000ULL) >> 4);
  }

  // With ten bytes at hand: the first eight from one load (a node's
  // generation id takes nine bytes, every other field fewer).
  bool long_varint_unrolled(std::uint64_t& v) {
    std::uint64_t word;
    std::memcpy(&word, p_, 8);
    const std::uint64_t ends = ~word & 0x8080808080808080ULL;
    const int bytes = ends != 0 ? std::countr_zero(ends) / 8 + 1 : 8;
    v = seven_bit_groups(bytes == 8 ? word : word & ((std::uint64_t{1} << (8 * bytes)) - 1));
    std::uint8_t last = static_cast<std::uint8_t>(word >> (8 * (bytes - 1)));
    p_ += bytes;
    if (ends == 0) {
      last = *p_++;
      v |= static_cast<std::uint64_t>(last & 0x7f) << 56;
      if (last >= 0x80) {
        last = *p_++;
        // The tenth byte may only carry the top bit of a 64-bit value.
        if (last > 1) return false;
        v |= static_cast<std::uint64_t>(last) << 63;
      }
    }
    return last != 0;  // an over-long varint ends in a zero byte
  }

  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

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

// Reads a canonical NodeIdPb body; false when it is not one.
bool read_node_id(ByteView body, NodeIdView& out);
// Whether read_node_id would accept `body`, without reading the fields out:
// how a packet's unknown ids of node deltas are checked (a node that joins
// a large cluster reads hundreds at once).
bool is_node_id(ByteView body);

// Parts of a NodeIdPb body known to be canonical (read_node_id accepted it,
// or write_node_id wrote it), read without checks: sorting and counting new
// nodes needs no more than these, and reading the whole id costs ~200
// instructions.
namespace canonical_id {

inline std::uint64_t varint(const std::uint8_t*& p) {
  std::uint64_t v = *p++;
  if (v < 0x80) return v;
  v &= 0x7f;
  for (int shift = 7;; shift += 7) {
    const std::uint8_t byte = *p++;
    v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if (byte < 0x80) return v;
  }
}

inline std::string_view name(ByteView id) {
  const std::uint8_t* p = id.data();
  if (id.empty() || *p != tag(1, kLength)) return {};
  ++p;
  const auto n = static_cast<std::size_t>(varint(p));
  return {reinterpret_cast<const char*>(p), n};
}

// Whether the id has a tls_name: its last field, after the address, which
// is always present.
inline bool has_tls_name(ByteView id) {
  const std::uint8_t* p = id.data();
  const std::uint8_t* const end = p + id.size();
  if (*p == tag(1, kLength)) {
    ++p;
    p += varint(p);
  }
  if (*p == tag(2, kVarint)) {
    ++p;
    varint(p);
  }
  ++p;  // the address's tag
  p += varint(p);
  return p != end;
}

}  // namespace canonical_id

// A node id as a packet names it: its NodeIdPb body, not read yet, and what
// ClusterState::resolve learns of it: its node, or the id read in full.
struct IdRef {
  ByteView bytes;
  NodeState* state = nullptr;  // the node, when known
  std::size_t hash = 0;        // of `bytes`, keyed by the state's seed
  // Nonzero when the node is unknown and its id canonical: a digest entry's
  // is 1 + its index in PacketView::unknown_ids, a node delta's is 1.
  std::uint32_t unknown = 0;
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
  std::vector<NodeIdView> unknown_ids;   // the digest's, filled by ClusterState::resolve
  std::size_t unknown_node_deltas = 0;   // node deltas whose node resolve did not know
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
