#include "wire.h"

#include <bit>

namespace aiocluster::wire {

namespace {

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

// Reads the canonical form; any false means "not canonical".
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

bool read_digest(ByteView body, std::vector<DigestEntryView>& out) {
  Reader r(body);
  while (!r.done()) {
    ByteView entry;
    if (!r.next(tag(1, kLength)) || !r.length_delimited(entry)) return false;
    DigestEntryView& e = out.emplace_back();
    Reader f(entry);
    if (!f.next(tag(1, kLength)) || !f.length_delimited(e.id.bytes)) return false;
    if (f.next(tag(2, kVarint)) && !f.nonzero(e.heartbeat)) return false;
    if (f.next(tag(3, kVarint)) && !f.nonzero(e.last_gc_version)) return false;
    if (f.next(tag(4, kVarint)) && !f.nonzero(e.max_version)) return false;
    if (!f.done()) return false;
  }
  return true;
}

// The usual shape of a KeyValueUpdatePb body, read with few tests: a key and
// a value of 1 to 127 bytes, both ASCII (checked together: the tag and
// length between them are ASCII too), then a version and maybe a status.
// False means "not this shape", and the general reader decides.
bool read_short_key_value(ByteView body, KeyValueView& kv) {
  const std::uint8_t* const p = body.data();
  const std::uint8_t* const end = p + body.size();
  // Key tag and length, one key byte, value tag and length, one value byte,
  // version tag and one byte.
  if (body.size() < 8 || p[0] != tag(1, kLength)) return false;
  const std::size_t key_size = p[1];
  const std::uint8_t* const key = p + 2;
  if (key_size - 1 >= 0x7f || static_cast<std::size_t>(end - key) < key_size + 4) return false;
  const std::uint8_t* const between = key + key_size;
  const std::size_t value_size = between[1];
  const std::uint8_t* const value = between + 2;
  if (between[0] != tag(2, kLength) || value_size - 1 >= 0x7f ||
      static_cast<std::size_t>(end - value) < value_size + 2) {
    return false;
  }
  const std::uint8_t* const after = value + value_size;
  if (*after != tag(3, kVarint) || !is_ascii(key, static_cast<std::size_t>(after - key))) {
    return false;
  }
  // A version of one or two bytes and nothing after it, else the rest in full.
  const std::size_t tail = static_cast<std::size_t>(end - after) - 1;
  if (tail == 1 && after[1] - 1u < 0x7fu) {
    kv.version = after[1];
  } else if (tail == 2 && after[1] >= 0x80 && after[2] - 1u < 0x7fu) {
    kv.version = (after[1] & 0x7fu) | static_cast<std::uint64_t>(after[2]) << 7;
  } else {
    Reader rest(ByteView(after + 1, end));
    if (!rest.nonzero(kv.version)) return false;
    if (rest.next(tag(4, kVarint))) {
      std::uint64_t status = 0;
      if (!rest.nonzero(status) || status > 2) return false;
      kv.status = static_cast<KeyStatus>(status);
    }
    if (!rest.done()) return false;
  }
  kv.key = std::string_view(reinterpret_cast<const char*>(key), key_size);
  kv.value = std::string_view(reinterpret_cast<const char*>(value), value_size);
  return true;
}

// After the field's tag: a KeyValueUpdatePb.
bool read_key_value(Reader& r, KeyValueView& kv) {
  kv.stored = r.position();
  ByteView body;
  if (!r.length_delimited(body)) return false;
  kv.stored_size = static_cast<std::uint32_t>(body.data() + body.size() - kv.stored);
  if (read_short_key_value(body, kv)) return true;
  kv.version = 0;
  kv.status = KeyStatus::kSet;
  Reader b(body);
  if (b.next(tag(1, kLength)) && !b.text(kv.key)) return false;
  if (b.next(tag(2, kLength)) && !b.text(kv.value)) return false;
  if (b.next(tag(3, kVarint)) && !b.nonzero(kv.version)) return false;
  if (b.next(tag(4, kVarint))) {
    std::uint64_t status = 0;
    if (!b.nonzero(status) || status > 2) return false;
    kv.status = static_cast<KeyStatus>(status);
  }
  return b.done();
}

bool read_delta(ByteView body, PacketView& out) {
  Reader r(body);
  while (!r.done()) {
    ByteView entry;
    if (!r.next(tag(1, kLength)) || !r.length_delimited(entry)) return false;
    NodeDeltaView& nd = out.node_deltas.emplace_back();
    nd.first_key_value = static_cast<std::uint32_t>(out.key_values.size());
    Reader f(entry);
    if (!f.next(tag(1, kLength)) || !f.length_delimited(nd.id.bytes)) return false;
    if (f.next(tag(2, kVarint)) && !f.nonzero(nd.from_version_excluded)) return false;
    if (f.next(tag(3, kVarint)) && !f.nonzero(nd.last_gc_version)) return false;
    std::uint64_t previous = nd.from_version_excluded;
    bool increase = true;
    std::size_t key_sizes = 0;
    std::size_t value_sizes = 0;
    while (f.next(tag(4, kLength))) {
      KeyValueView& kv = out.key_values.emplace_back();
      if (!read_key_value(f, kv)) return false;
      nd.key_value_bytes += kv.stored_size;
      increase &= kv.version > previous;
      previous = kv.version;
      key_sizes |= kv.key.size();
      value_sizes |= kv.value.size();
    }
    nd.key_value_count = static_cast<std::uint32_t>(out.key_values.size()) - nd.first_key_value;
    nd.versions_increase = increase;
    nd.key_sizes_or = static_cast<std::uint32_t>(key_sizes);
    nd.value_sizes_or = static_cast<std::uint32_t>(value_sizes);
    // Optional in the schema: present even when 0.
    if (f.next(tag(5, kVarint))) {
      nd.has_max_version = true;
      if (!f.varint(nd.max_version)) return false;
    }
    if (!f.done()) return false;
  }
  return true;
}

// The body of a SynPb (digest), SynAckPb (digest, delta) or AckPb (delta):
// the sub-messages the sender set are always written.
bool read_message(ByteView body, PacketView& out) {
  Reader r(body);
  ByteView digest;
  ByteView delta;
  switch (out.kind) {
    case Kind::kSyn:
      return r.next(tag(2, kLength)) && r.length_delimited(digest) &&
             r.extension(out.compact_digest) && r.done() && read_digest(digest, out.digest);
    case Kind::kSynAck:
      return r.next(tag(2, kLength)) && r.length_delimited(digest) && r.next(tag(3, kLength)) &&
             r.length_delimited(delta) && r.extension(out.compact_digest) && r.done() &&
             read_digest(digest, out.digest) && read_delta(delta, out);
    case Kind::kAck:
      return r.next(tag(3, kLength)) && r.length_delimited(delta) && r.done() &&
             read_delta(delta, out);
    case Kind::kBadCluster:
      return r.done();
  }
  return false;
}

}  // namespace

void write_node_id(Writer& w, const NodeId& id) {
  const Address& addr = id.gossip_advertise_addr;
  w.string_field(1, id.name);
  w.uint_field(2, id.generation_id);
  w.header(3, (addr.host.empty() ? 0 : wire_size::length_delimited(addr.host.size())) +
                  uint_field_size(addr.port));
  w.string_field(1, addr.host);
  w.uint_field(2, addr.port);
  w.string_field(4, id.tls_name);
}

Bytes encode_node_id(const NodeId& id) {
  Bytes out(wire_size::node_id(id));
  Writer w(out.data());
  write_node_id(w, id);
  return out;
}

NodeId NodeIdView::to_node_id() const {
  return NodeId{std::string(name), generation_id, Address{std::string(host), port},
                std::string(tls_name)};
}

std::strong_ordering NodeIdView::compare(const NodeId& id) const {
  if (const int c = name.compare(id.name); c != 0) return c <=> 0;
  if (generation_id != id.generation_id) return generation_id <=> id.generation_id;
  if (const int c = host.compare(id.gossip_advertise_addr.host); c != 0) return c <=> 0;
  if (port != id.gossip_advertise_addr.port) return port <=> id.gossip_advertise_addr.port;
  return tls_name.compare(id.tls_name) <=> 0;
}

bool read_varint(ByteView& rest, std::uint64_t& v) {
  Reader r(rest);
  if (!r.varint(v)) return false;
  rest = rest.subspan(static_cast<std::size_t>(r.position() - rest.data()));
  return true;
}

bool read_length_delimited(ByteView& rest, ByteView& body) {
  Reader r(rest);
  if (!r.length_delimited(body)) return false;
  rest = rest.subspan(static_cast<std::size_t>(r.position() - rest.data()));
  return true;
}

bool read_node_id(ByteView body, NodeIdView& out) {
  out = NodeIdView{};
  Reader r(body);
  ByteView addr;
  if (r.next(tag(1, kLength)) && !r.text(out.name)) return false;
  if (r.next(tag(2, kVarint)) && !r.nonzero(out.generation_id)) return false;
  if (!r.next(tag(3, kLength)) || !r.length_delimited(addr)) return false;
  if (r.next(tag(4, kLength)) && !r.text(out.tls_name)) return false;
  if (!r.done()) return false;
  Reader a(addr);
  std::uint64_t port = 0;
  if (a.next(tag(1, kLength)) && !a.text(out.host)) return false;
  if (a.next(tag(2, kVarint)) && (!a.nonzero(port) || port > 65535)) return false;
  out.port = static_cast<std::uint16_t>(port);
  return a.done();
}

bool read_packet(ByteView bytes, PacketView& out) {
  out.cluster_id = {};
  out.digest.clear();
  out.node_deltas.clear();
  out.key_values.clear();
  out.unknown_ids.clear();
  out.extensions = {};
  out.compact_digest = {};
  // Offsets in views are 32-bit; packets are far smaller.
  if (bytes.size() > (std::size_t{1} << 31)) return false;
  Reader r(bytes);
  if (r.next(tag(1, kLength)) && !r.text(out.cluster_id)) return false;
  if (r.next(tag(2, kLength))) {
    out.kind = Kind::kSyn;
  } else if (r.next(tag(3, kLength))) {
    out.kind = Kind::kSynAck;
  } else if (r.next(tag(4, kLength))) {
    out.kind = Kind::kAck;
  } else if (r.next(tag(5, kLength))) {
    out.kind = Kind::kBadCluster;
  } else {
    return false;
  }
  ByteView body;
  return r.length_delimited(body) && r.extension(out.extensions) && r.done() &&
         read_message(body, out);
}

}  // namespace aiocluster::wire
