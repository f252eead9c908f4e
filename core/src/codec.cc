// The only file of the core that touches generated protobuf code.
#include "aiocluster/codec.h"

#include <google/protobuf/arena.h>

#include <cstring>
#include <optional>

#include "aiocluster/proto/aiocluster.pb.h"

namespace aiocluster {

std::string_view to_string(DecodeError error) {
  switch (error) {
    case DecodeError::kMalformed:
      return "malformed";
    case DecodeError::kNoMessage:
      return "no message";
    case DecodeError::kInvalidField:
      return "invalid field";
  }
  return "unknown";
}

namespace {

void to_pb(const NodeId& id, NodeIdPb* pb) {
  pb->set_name(id.name);
  pb->set_generation_id(id.generation_id);
  auto* addr = pb->mutable_gossip_advertise_addr();
  addr->set_host(id.gossip_advertise_addr.host);
  addr->set_port(id.gossip_advertise_addr.port);
  pb->set_tls_name(id.tls_name);
}

void to_pb(const Digest& digest, DigestPb* pb) {
  pb->mutable_node_digests()->Reserve(static_cast<int>(digest.node_digests.size()));
  for (const auto& nd : digest.node_digests) {
    auto* out = pb->add_node_digests();
    to_pb(nd.node_id, out->mutable_node_id());
    out->set_heartbeat(nd.heartbeat);
    out->set_last_gc_version(nd.last_gc_version);
    out->set_max_version(nd.max_version);
  }
}

void to_pb(const Delta& delta, DeltaPb* pb) {
  pb->mutable_node_deltas()->Reserve(static_cast<int>(delta.node_deltas.size()));
  for (const auto& nd : delta.node_deltas) {
    auto* out = pb->add_node_deltas();
    to_pb(nd.node_id, out->mutable_node_id());
    out->set_from_version_excluded(nd.from_version_excluded);
    out->set_last_gc_version(nd.last_gc_version);
    out->mutable_key_values()->Reserve(static_cast<int>(nd.key_values.size()));
    for (const auto& kv : nd.key_values) {
      auto* kvpb = out->add_key_values();
      kvpb->set_key(kv.key);
      kvpb->set_value(kv.value);
      kvpb->set_version(kv.version);
      kvpb->set_status(static_cast<VersionStatusEnumPb>(kv.status));
    }
    if (nd.max_version) out->set_max_version(*nd.max_version);
  }
}

// Converters from protobuf; false when a field is out of range.
bool from_pb(const NodeIdPb& pb, NodeId& id) {
  const auto& addr = pb.gossip_advertise_addr();
  if (addr.port() > 65535) return false;
  if (!is_valid_utf8(pb.name()) || !is_valid_utf8(addr.host()) || !is_valid_utf8(pb.tls_name())) {
    return false;
  }
  id.name = pb.name();
  id.generation_id = pb.generation_id();
  id.gossip_advertise_addr.host = addr.host();
  id.gossip_advertise_addr.port = static_cast<std::uint16_t>(addr.port());
  id.tls_name = pb.tls_name();
  return true;
}

bool from_pb(const DigestPb& pb, Digest& digest) {
  digest.node_digests.resize(static_cast<std::size_t>(pb.node_digests_size()));
  for (int i = 0; i < pb.node_digests_size(); ++i) {
    const auto& in = pb.node_digests(i);
    auto& out = digest.node_digests[static_cast<std::size_t>(i)];
    if (!from_pb(in.node_id(), out.node_id)) return false;
    out.heartbeat = in.heartbeat();
    out.last_gc_version = in.last_gc_version();
    out.max_version = in.max_version();
  }
  return true;
}

bool from_pb(const DeltaPb& pb, Delta& delta) {
  delta.node_deltas.resize(static_cast<std::size_t>(pb.node_deltas_size()));
  for (int i = 0; i < pb.node_deltas_size(); ++i) {
    const auto& in = pb.node_deltas(i);
    auto& out = delta.node_deltas[static_cast<std::size_t>(i)];
    if (!from_pb(in.node_id(), out.node_id)) return false;
    out.from_version_excluded = in.from_version_excluded();
    out.last_gc_version = in.last_gc_version();
    if (in.has_max_version()) out.max_version = in.max_version();
    out.key_values.resize(static_cast<std::size_t>(in.key_values_size()));
    for (int k = 0; k < in.key_values_size(); ++k) {
      const auto& kvpb = in.key_values(k);
      auto& kv = out.key_values[static_cast<std::size_t>(k)];
      const int status = kvpb.status();
      if (status < 0 || status > 2) return false;
      if (!is_valid_utf8(kvpb.key()) || !is_valid_utf8(kvpb.value())) return false;
      kv.key = kvpb.key();
      kv.value = kvpb.value();
      kv.version = kvpb.version();
      kv.status = static_cast<KeyStatus>(status);
    }
  }
  return true;
}

// A 1,000-node digest builds some 250 KB of protobuf objects: large arena
// blocks keep that to a few allocations instead of dozens of 8 KB ones.
google::protobuf::ArenaOptions arena_options() {
  google::protobuf::ArenaOptions options;
  options.start_block_size = 16 * 1024;
  options.max_block_size = 1024 * 1024;
  return options;
}

}  // namespace

Bytes encode_reference(const Packet& packet) {
  google::protobuf::Arena arena(arena_options());
  auto* pb = google::protobuf::Arena::CreateMessage<PacketPb>(&arena);
  pb->set_cluster_id(packet.cluster_id);
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, Syn>) {
          to_pb(msg.digest, pb->mutable_syn()->mutable_digest());
        } else if constexpr (std::is_same_v<T, SynAck>) {
          auto* synack = pb->mutable_synack();
          to_pb(msg.digest, synack->mutable_digest());
          to_pb(msg.delta, synack->mutable_delta());
        } else if constexpr (std::is_same_v<T, Ack>) {
          to_pb(msg.delta, pb->mutable_ack()->mutable_delta());
        } else {
          pb->mutable_bad_cluster();
        }
      },
      packet.message);
  Bytes out(pb->ByteSizeLong());
  pb->SerializeWithCachedSizesToArray(out.data());
  return out;
}

DecodeResult decode_reference(ByteView bytes) {
  if (bytes.size() > static_cast<std::size_t>(INT32_MAX)) return DecodeError::kMalformed;
  google::protobuf::Arena arena(arena_options());
  auto* pb = google::protobuf::Arena::CreateMessage<PacketPb>(&arena);
  if (!pb->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return DecodeError::kMalformed;
  }
  // The schema's text fields are `bytes` (see aiocluster.proto): the UTF-8
  // rule of a proto3 `string` is ours to apply.
  if (!is_valid_utf8(pb->cluster_id())) return DecodeError::kInvalidField;
  Packet packet;
  packet.cluster_id = pb->cluster_id();
  bool ok = true;
  switch (pb->msg_case()) {
    case PacketPb::kSyn: {
      Syn syn;
      ok = from_pb(pb->syn().digest(), syn.digest);
      packet.message = std::move(syn);
      break;
    }
    case PacketPb::kSynack: {
      SynAck synack;
      ok = from_pb(pb->synack().digest(), synack.digest) &&
           from_pb(pb->synack().delta(), synack.delta);
      packet.message = std::move(synack);
      break;
    }
    case PacketPb::kAck: {
      Ack ack;
      ok = from_pb(pb->ack().delta(), ack.delta);
      packet.message = std::move(ack);
      break;
    }
    case PacketPb::kBadCluster:
      packet.message = BadCluster{};
      break;
    case PacketPb::MSG_NOT_SET:
      return DecodeError::kNoMessage;
  }
  if (!ok) return DecodeError::kInvalidField;
  return packet;
}

// --- The direct paths. ---
// The generated code builds a tree of protobuf objects for every packet and
// converts it to or from our types: with a 1,000-node digest (~45 KB, 1,000
// entries of three nested messages) that costs about a microsecond per entry
// and dominates a large cluster. These paths write and read the same wire
// format straight from and into our types:
//  - encode writes exactly the bytes the generated serializer writes (fields
//    in number order, proto3 defaults left out, the sub-messages we set always
//    present), sized in advance by wire_size;
//  - decode reads the canonical form only (known fields with their expected
//    wire types, each singular field at most once, ASCII strings, in-range
//    values, minimal varints) and hands anything else to decode_reference, so every input
//    gets exactly the generated parser's answer.
// Tests compare both paths on random packets and random corruptions.
namespace {

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
  // Every field number of the schema is below 16: one-byte tags.
  void tag(unsigned field, unsigned wire_type) {
    *p_++ = static_cast<std::uint8_t>(field << 3 | wire_type);
  }
  void uint_field(unsigned field, std::uint64_t v) {
    if (v == 0) return;
    tag(field, 0);
    varint(v);
  }
  void string_field(unsigned field, std::string_view s) {
    if (s.empty()) return;
    header(field, s.size());
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  void header(unsigned field, std::size_t length) {
    tag(field, 2);
    varint(length);
  }

 private:
  std::uint8_t* p_;
};

std::size_t address_size(const Address& addr) {
  return (addr.host.empty() ? 0 : wire_size::length_delimited(addr.host.size())) +
         (addr.port == 0 ? 0 : 1 + wire_size::varint(addr.port));
}

// The NodeIdPb body, with the size of its address body already known.
std::size_t node_id_size(const NodeId& id, std::size_t addr_size) {
  return (id.name.empty() ? 0 : wire_size::length_delimited(id.name.size())) +
         (id.generation_id == 0 ? 0 : 1 + wire_size::varint(id.generation_id)) +
         wire_size::length_delimited(addr_size) +
         (id.tls_name.empty() ? 0 : wire_size::length_delimited(id.tls_name.size()));
}

void write(Writer& w, unsigned field, const NodeId& id, std::size_t id_size,
           std::size_t addr_size) {
  w.header(field, id_size);
  w.string_field(1, id.name);
  w.uint_field(2, id.generation_id);
  w.header(3, addr_size);
  w.string_field(1, id.gossip_advertise_addr.host);
  w.uint_field(2, id.gossip_advertise_addr.port);
  w.string_field(4, id.tls_name);
}

void write(Writer& w, unsigned field, const NodeId& id) {
  const std::size_t addr_size = address_size(id.gossip_advertise_addr);
  write(w, field, id, node_id_size(id, addr_size), addr_size);
}

std::size_t uint_size(std::uint64_t v) { return v == 0 ? 0 : 1 + wire_size::varint(v); }

void write(Writer& w, unsigned field, const Digest& digest, std::size_t digest_size) {
  w.header(field, digest_size);
  for (const auto& nd : digest.node_digests) {
    const std::size_t addr_size = address_size(nd.node_id.gossip_advertise_addr);
    const std::size_t id_size = node_id_size(nd.node_id, addr_size);
    w.header(1, wire_size::length_delimited(id_size) + uint_size(nd.heartbeat) +
                    uint_size(nd.last_gc_version) + uint_size(nd.max_version));
    write(w, 1, nd.node_id, id_size, addr_size);
    w.uint_field(2, nd.heartbeat);
    w.uint_field(3, nd.last_gc_version);
    w.uint_field(4, nd.max_version);
  }
}

void write(Writer& w, unsigned field, const Delta& delta, std::size_t delta_size) {
  w.header(field, delta_size);
  for (const auto& nd : delta.node_deltas) {
    w.header(1, wire_size::node_delta(nd));
    write(w, 1, nd.node_id);
    w.uint_field(2, nd.from_version_excluded);
    w.uint_field(3, nd.last_gc_version);
    for (const auto& kv : nd.key_values) {
      w.header(4, wire_size::key_value(kv.key, kv.value, kv.version, kv.status));
      w.string_field(1, kv.key);
      w.string_field(2, kv.value);
      w.uint_field(3, kv.version);
      w.uint_field(4, static_cast<std::uint64_t>(kv.status));
    }
    if (nd.max_version) {  // optional: present even when 0
      w.tag(5, 0);
      w.varint(*nd.max_version);
    }
  }
}

// Reads the canonical form; any false means "let the generated parser decide".
class Reader {
 public:
  explicit Reader(ByteView bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}
  bool done() const { return p_ == end_; }

  // Minimal varints only: the generated parser reads tags, lengths and
  // values with different width limits (a tag in at most 5 bytes, a value in
  // 10), so an over-long form it may refuse is left to it. A minimal varint
  // ends in a non-zero byte unless it is the single byte 0.
  bool varint(std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const std::uint8_t byte = *p_++;
      // The tenth byte may only carry the top bit of a 64-bit value.
      if (shift == 63 && byte > 1) return false;
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if (byte < 0x80) return shift == 0 || byte != 0;
    }
    return false;
  }
  // A tag of a field below 16 (all of ours): anything else is unknown.
  bool tag(unsigned& field, unsigned& wire_type) {
    std::uint64_t v = 0;
    if (!varint(v) || v >= 128) return false;
    field = static_cast<unsigned>(v >> 3);
    wire_type = static_cast<unsigned>(v & 7);
    return field != 0;
  }
  bool length_delimited(ByteView& out) {
    std::uint64_t n = 0;
    if (!varint(n) || n > static_cast<std::uint64_t>(end_ - p_)) return false;
    out = ByteView(p_, static_cast<std::size_t>(n));
    p_ += n;
    return true;
  }
  bool ascii(std::string& out) {
    ByteView bytes;
    if (!length_delimited(bytes)) return false;
    for (std::uint8_t c : bytes) {
      if (c >= 0x80) return false;
    }
    out.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return true;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

// Each parser accepts a field once, with its expected wire type.
struct Seen {
  unsigned mask = 0;
  bool first(unsigned field) {
    const unsigned bit = 1u << field;
    if (mask & bit) return false;
    mask |= bit;
    return true;
  }
};

bool read_address(ByteView bytes, Address& addr) {
  Reader r(bytes);
  Seen seen;
  while (!r.done()) {
    unsigned field = 0;
    unsigned wt = 0;
    if (!r.tag(field, wt) || !seen.first(field)) return false;
    if (field == 1 && wt == 2) {
      if (!r.ascii(addr.host)) return false;
    } else if (field == 2 && wt == 0) {
      std::uint64_t port = 0;
      if (!r.varint(port) || port > 65535) return false;
      addr.port = static_cast<std::uint16_t>(port);
    } else {
      return false;
    }
  }
  return true;
}

bool read_node_id(ByteView bytes, NodeId& id) {
  Reader r(bytes);
  Seen seen;
  while (!r.done()) {
    unsigned field = 0;
    unsigned wt = 0;
    if (!r.tag(field, wt) || !seen.first(field)) return false;
    ByteView sub;
    if (field == 1 && wt == 2) {
      if (!r.ascii(id.name)) return false;
    } else if (field == 2 && wt == 0) {
      if (!r.varint(id.generation_id)) return false;
    } else if (field == 3 && wt == 2) {
      if (!r.length_delimited(sub) || !read_address(sub, id.gossip_advertise_addr)) return false;
    } else if (field == 4 && wt == 2) {
      if (!r.ascii(id.tls_name)) return false;
    } else {
      return false;
    }
  }
  return true;
}

// A body that is one repeated message field 1 (DigestPb, DeltaPb): calls
// read(entry) for each entry, in order; false on anything else.
template <typename Read>
bool read_entries(ByteView bytes, Read&& read) {
  Reader r(bytes);
  while (!r.done()) {
    unsigned field = 0;
    unsigned wt = 0;
    ByteView entry;
    if (!r.tag(field, wt) || field != 1 || wt != 2 || !r.length_delimited(entry) || !read(entry)) {
      return false;
    }
  }
  return true;
}

// How many entries such a body holds (a quick skip over them), so the vector
// is allocated once; 0 when the body is not canonical.
std::size_t count_entries(ByteView bytes) {
  std::size_t n = 0;
  return read_entries(bytes, [&](ByteView) { return ++n, true; }) ? n : 0;
}

bool read_digest(ByteView bytes, Digest& digest) {
  digest.node_digests.reserve(count_entries(bytes));
  return read_entries(bytes, [&](ByteView entry) {
    NodeDigest& nd = digest.node_digests.emplace_back();
    Reader e(entry);
    Seen seen;
    while (!e.done()) {
      unsigned field = 0;
      unsigned wt = 0;
      if (!e.tag(field, wt) || !seen.first(field)) return false;
      ByteView sub;
      if (field == 1 && wt == 2) {
        if (!e.length_delimited(sub) || !read_node_id(sub, nd.node_id)) return false;
      } else if (field == 2 && wt == 0) {
        if (!e.varint(nd.heartbeat)) return false;
      } else if (field == 3 && wt == 0) {
        if (!e.varint(nd.last_gc_version)) return false;
      } else if (field == 4 && wt == 0) {
        if (!e.varint(nd.max_version)) return false;
      } else {
        return false;
      }
    }
    return true;
  });
}

bool read_key_value(ByteView bytes, KeyValueUpdate& kv) {
  Reader r(bytes);
  Seen seen;
  while (!r.done()) {
    unsigned field = 0;
    unsigned wt = 0;
    if (!r.tag(field, wt) || !seen.first(field)) return false;
    if (field == 1 && wt == 2) {
      if (!r.ascii(kv.key)) return false;
    } else if (field == 2 && wt == 2) {
      if (!r.ascii(kv.value)) return false;
    } else if (field == 3 && wt == 0) {
      if (!r.varint(kv.version)) return false;
    } else if (field == 4 && wt == 0) {
      std::uint64_t status = 0;
      if (!r.varint(status) || status > 2) return false;
      kv.status = static_cast<KeyStatus>(status);
    } else {
      return false;
    }
  }
  return true;
}

bool read_delta(ByteView bytes, Delta& delta) {
  delta.node_deltas.reserve(count_entries(bytes));
  return read_entries(bytes, [&](ByteView entry) {
    NodeDelta& nd = delta.node_deltas.emplace_back();
    Reader e(entry);
    Seen seen;
    while (!e.done()) {
      unsigned field = 0;
      unsigned wt = 0;
      if (!e.tag(field, wt)) return false;
      if (field != 4 && !seen.first(field)) return false;
      ByteView sub;
      if (field == 1 && wt == 2) {
        if (!e.length_delimited(sub) || !read_node_id(sub, nd.node_id)) return false;
      } else if (field == 2 && wt == 0) {
        if (!e.varint(nd.from_version_excluded)) return false;
      } else if (field == 3 && wt == 0) {
        if (!e.varint(nd.last_gc_version)) return false;
      } else if (field == 4 && wt == 2) {
        if (!e.length_delimited(sub) || !read_key_value(sub, nd.key_values.emplace_back()))
          return false;
      } else if (field == 5 && wt == 0) {
        std::uint64_t v = 0;
        if (!e.varint(v)) return false;
        nd.max_version = v;
      } else {
        return false;
      }
    }
    return true;
  });
}

// A message with one singular sub-message field per allowed number (SynPb,
// SynAckPb, AckPb, BadClusterPb): calls read(field, bytes) for each.
template <typename F>
bool read_fields(ByteView bytes, unsigned allowed_mask, F&& read) {
  Reader r(bytes);
  Seen seen;
  while (!r.done()) {
    unsigned field = 0;
    unsigned wt = 0;
    ByteView sub;
    if (!r.tag(field, wt) || wt != 2 || !(allowed_mask & (1u << field)) || !seen.first(field) ||
        !r.length_delimited(sub) || !read(field, sub)) {
      return false;
    }
  }
  return true;
}

std::optional<Packet> decode_canonical(ByteView bytes) {
  Reader r(bytes);
  Packet packet;
  Seen seen;
  bool has_message = false;
  while (!r.done()) {
    unsigned field = 0;
    unsigned wt = 0;
    if (!r.tag(field, wt) || wt != 2 || !seen.first(field)) return std::nullopt;
    if (field == 1) {
      if (!r.ascii(packet.cluster_id)) return std::nullopt;
      continue;
    }
    ByteView body;
    if (field > 5 || has_message || !r.length_delimited(body)) return std::nullopt;
    has_message = true;
    bool ok = false;
    if (field == 2) {
      Syn syn;
      ok = read_fields(body, 1u << 2,
                       [&](unsigned, ByteView b) { return read_digest(b, syn.digest); });
      packet.message = std::move(syn);
    } else if (field == 3) {
      SynAck synack;
      ok = read_fields(body, 1u << 2 | 1u << 3, [&](unsigned f, ByteView b) {
        return f == 2 ? read_digest(b, synack.digest) : read_delta(b, synack.delta);
      });
      packet.message = std::move(synack);
    } else if (field == 4) {
      Ack ack;
      ok = read_fields(body, 1u << 3,
                       [&](unsigned, ByteView b) { return read_delta(b, ack.delta); });
      packet.message = std::move(ack);
    } else {
      ok = body.empty();
      packet.message = BadCluster{};
    }
    if (!ok) return std::nullopt;
  }
  if (!has_message) return std::nullopt;
  return packet;
}

}  // namespace

Bytes encode(const Packet& packet) {
  using wire_size::length_delimited;
  // Sizes of the digest and delta bodies, computed once.
  std::size_t digest_size = 0;
  std::size_t delta_size = 0;
  std::size_t body = 0;
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, Syn> || std::is_same_v<T, SynAck>) {
          digest_size = wire_size::digest(msg.digest);
          body += length_delimited(digest_size);
        }
        if constexpr (std::is_same_v<T, SynAck> || std::is_same_v<T, Ack>) {
          delta_size = wire_size::delta(msg.delta);
          body += length_delimited(delta_size);
        }
      },
      packet.message);
  static_assert(std::is_same_v<std::variant_alternative_t<0, Message>, Syn> &&
                std::is_same_v<std::variant_alternative_t<3, Message>, BadCluster>);
  const unsigned field =
      static_cast<unsigned>(packet.message.index()) + 2;  // syn = 2 ... bad_cluster = 5
  Bytes out((packet.cluster_id.empty() ? 0 : length_delimited(packet.cluster_id.size())) +
            length_delimited(body));
  Writer w(out.data());
  w.string_field(1, packet.cluster_id);
  w.header(field, body);
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, Syn> || std::is_same_v<T, SynAck>) {
          write(w, 2, msg.digest, digest_size);
        }
        if constexpr (std::is_same_v<T, SynAck> || std::is_same_v<T, Ack>) {
          write(w, 3, msg.delta, delta_size);
        }
      },
      packet.message);
  // wire_size and the writer follow the same rules; should they ever
  // disagree, the generated serializer is the authority.
  if (w.position() != out.data() + out.size()) return encode_reference(packet);
  return out;
}

DecodeResult decode(ByteView bytes) {
  if (auto packet = decode_canonical(bytes)) return std::move(*packet);
  return decode_reference(bytes);
}

bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    // The sequence length and the range of its second byte, which rules out
    // overlong forms, surrogates and code points above U+10FFFF.
    std::size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      len = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      len = 3;
      if (lead == 0xE0) lo = 0xA0;
      if (lead == 0xED) hi = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      len = 4;
      if (lead == 0xF0) lo = 0x90;
      if (lead == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (text.size() - i < len) return false;
    const auto second = static_cast<unsigned char>(text[i + 1]);
    if (second < lo || second > hi) return false;
    for (std::size_t k = 2; k < len; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

namespace wire_size {

namespace {
std::size_t string_field(std::string_view s) { return s.empty() ? 0 : length_delimited(s.size()); }
std::size_t uint_field(std::uint64_t v) { return v == 0 ? 0 : 1 + varint(v); }
}  // namespace

std::size_t node_id(const NodeId& id) {
  const std::size_t addr =
      string_field(id.gossip_advertise_addr.host) + uint_field(id.gossip_advertise_addr.port);
  return string_field(id.name) + uint_field(id.generation_id) + length_delimited(addr) +
         string_field(id.tls_name);
}

std::size_t node_digest(const NodeDigest& d) {
  return length_delimited(node_id(d.node_id)) + uint_field(d.heartbeat) +
         uint_field(d.last_gc_version) + uint_field(d.max_version);
}

std::size_t key_value(std::string_view key, std::string_view value, std::uint64_t version,
                      KeyStatus status) {
  return string_field(key) + string_field(value) + uint_field(version) +
         uint_field(static_cast<std::uint64_t>(status));
}

std::size_t digest(const Digest& d) {
  std::size_t n = 0;
  for (const auto& nd : d.node_digests) n += length_delimited(node_digest(nd));
  return n;
}

std::size_t node_delta(const NodeDelta& d) {
  std::size_t n = length_delimited(node_id(d.node_id)) + uint_field(d.from_version_excluded) +
                  uint_field(d.last_gc_version);
  for (const auto& kv : d.key_values) {
    n += length_delimited(key_value(kv.key, kv.value, kv.version, kv.status));
  }
  if (d.max_version) n += 1 + varint(*d.max_version);
  return n;
}

std::size_t delta(const Delta& d) {
  std::size_t n = 0;
  for (const auto& nd : d.node_deltas) n += length_delimited(node_delta(nd));
  return n;
}

std::size_t packet(const Packet& p) {
  const std::size_t body = std::visit(
      [](const auto& msg) -> std::size_t {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, Syn>) {
          return length_delimited(digest(msg.digest));
        } else if constexpr (std::is_same_v<T, SynAck>) {
          return length_delimited(digest(msg.digest)) + length_delimited(delta(msg.delta));
        } else if constexpr (std::is_same_v<T, Ack>) {
          return length_delimited(delta(msg.delta));
        } else {
          return 0;
        }
      },
      p.message);
  return string_field(p.cluster_id) + length_delimited(body);
}

}  // namespace wire_size

}  // namespace aiocluster
