#include "wire.h"

namespace aiocluster::wire {

namespace {

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

namespace {

// The end of a varint at `p` when it is minimal and not zero (how proto3
// writes a scalar that is present), else nullptr: read_node_id's test
// without the value. Minimal and nonzero both mean the last byte is not 0.
const std::uint8_t* skip_nonzero_varint(const std::uint8_t* p, const std::uint8_t* end) {
  std::size_t bytes = 0;
  if constexpr (std::endian::native == std::endian::little) {
    if (end - p >= 10) {
      // A node's generation id takes nine bytes: one load, two more tests.
      std::uint64_t word;
      std::memcpy(&word, p, 8);
      const std::uint64_t ends = ~word & 0x8080808080808080ULL;
      if (ends != 0) {
        bytes = static_cast<std::size_t>(std::countr_zero(ends)) / 8 + 1;
      } else if (p[8] < 0x80) {
        bytes = 9;
      } else if (p[9] <= 1) {  // the tenth byte may only carry the 64th bit
        bytes = 10;
      } else {
        return nullptr;
      }
      return p[bytes - 1] != 0 ? p + bytes : nullptr;
    }
  }
  while (true) {
    if (p + bytes == end || bytes == 10) return nullptr;
    if (p[bytes++] < 0x80) break;
  }
  if (bytes == 10 && p[9] > 1) return nullptr;
  return p[bytes - 1] != 0 ? p + bytes : nullptr;
}

// A length prefix and the bytes it announces; nullptr when they overrun.
const std::uint8_t* skip_length(const std::uint8_t* p, const std::uint8_t* end, ByteView& out) {
  std::uint64_t n = 0;
  Reader r(ByteView(p, end));
  if (!r.varint(n) || n > static_cast<std::uint64_t>(end - r.position())) return nullptr;
  out = ByteView(r.position(), static_cast<std::size_t>(n));
  return r.position() + n;
}

// Text that is present: not empty, UTF-8.
[[gnu::always_inline]] inline bool is_text(ByteView bytes) {
  return !bytes.empty() && (is_ascii(bytes.data(), bytes.size()) ||
                            is_valid_utf8(std::string_view(
                                reinterpret_cast<const char*>(bytes.data()), bytes.size())));
}

}  // namespace

bool is_node_id(ByteView body) {
  const std::uint8_t* p = body.data();
  const std::uint8_t* const end = p + body.size();
  ByteView text;
  if (p != end && *p == tag(1, kLength)) {
    p = skip_length(p + 1, end, text);
    if (p == nullptr || !is_text(text)) return false;
  }
  if (p != end && *p == tag(2, kVarint)) {
    p = skip_nonzero_varint(p + 1, end);
    if (p == nullptr) return false;
  }
  ByteView addr;
  if (p == end || *p != tag(3, kLength)) return false;
  p = skip_length(p + 1, end, addr);
  if (p == nullptr) return false;
  if (p != end) {
    if (*p != tag(4, kLength)) return false;
    p = skip_length(p + 1, end, text);
    if (p != end || !is_text(text)) return false;
  }
  const std::uint8_t* a = addr.data();
  const std::uint8_t* const addr_end = a + addr.size();
  if (a != addr_end && *a == tag(1, kLength)) {
    a = skip_length(a + 1, addr_end, text);
    if (a == nullptr || !is_text(text)) return false;
  }
  if (a != addr_end && *a == tag(2, kVarint)) {
    Reader r(ByteView(a + 1, addr_end));
    std::uint64_t port = 0;
    if (!r.nonzero(port) || port > 65535) return false;
    a = r.position();
  }
  return a == addr_end;
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
