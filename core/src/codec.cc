// The only file of the core that touches generated protobuf code.
#include "aiocluster/codec.h"

#include <google/protobuf/arena.h>

#include <cstring>
#include <optional>

#include "aiocluster/proto/aiocluster.pb.h"
#include "codec_internal.h"
#include "wire.h"

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
// converts it to or from our types. These paths write and read the same wire
// format straight from and into our types (wire.h):
//  - encode writes exactly the bytes the generated serializer writes, sized
//    in advance by wire_size;
//  - decode reads the canonical form only and hands anything else to
//    decode_reference, so every input gets exactly the generated parser's
//    answer.
// Tests compare both paths on random packets and random corruptions.
namespace {

using wire::Writer;

void write_id_field(Writer& w, unsigned field, const NodeId& id) {
  w.header(field, wire_size::node_id(id));
  wire::write_node_id(w, id);
}

void write(Writer& w, const Digest& digest) {
  for (const auto& nd : digest.node_digests) {
    w.header(1, wire_size::node_digest(nd));
    write_id_field(w, 1, nd.node_id);
    w.uint_field(2, nd.heartbeat);
    w.uint_field(3, nd.last_gc_version);
    w.uint_field(4, nd.max_version);
  }
}

void write(Writer& w, const NodeDelta& nd, std::size_t size) {
  w.header(1, size);
  write_id_field(w, 1, nd.node_id);
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
    w.byte(wire::tag(5, wire::kVarint));
    w.varint(*nd.max_version);
  }
}

bool read_id(ByteView body, NodeId& out) {
  wire::NodeIdView id;
  if (!wire::read_node_id(body, id)) return false;
  out = id.to_node_id();
  return true;
}

bool to_digest(const wire::PacketView& view, Digest& out) {
  out.node_digests.resize(view.digest.size());
  for (std::size_t i = 0; i < view.digest.size(); ++i) {
    const wire::DigestEntryView& in = view.digest[i];
    NodeDigest& nd = out.node_digests[i];
    if (!read_id(in.id.bytes, nd.node_id)) return false;
    nd.heartbeat = in.heartbeat;
    nd.last_gc_version = in.last_gc_version;
    nd.max_version = in.max_version;
  }
  return true;
}

bool to_delta(const wire::PacketView& view, Delta& out) {
  out.node_deltas.resize(view.node_deltas.size());
  for (std::size_t i = 0; i < view.node_deltas.size(); ++i) {
    const wire::NodeDeltaView& in = view.node_deltas[i];
    NodeDelta& nd = out.node_deltas[i];
    if (!read_id(in.id.bytes, nd.node_id)) return false;
    nd.from_version_excluded = in.from_version_excluded;
    nd.last_gc_version = in.last_gc_version;
    if (in.has_max_version) nd.max_version = in.max_version;
    nd.key_values.reserve(in.key_value_count);
    const wire::KeyValueView* kvs = view.key_values_of(in);
    for (std::uint32_t k = 0; k < in.key_value_count; ++k) {
      nd.key_values.push_back(KeyValueUpdate{std::string(kvs[k].key), std::string(kvs[k].value),
                                             kvs[k].version, kvs[k].status});
    }
  }
  return true;
}

// Our types from a canonical packet; nullopt when one of its node ids is
// not canonical.
std::optional<Packet> to_packet(const wire::PacketView& view) {
  Packet packet;
  packet.cluster_id = view.cluster_id;
  bool ok = true;
  switch (view.kind) {
    case wire::Kind::kSyn: {
      Syn syn;
      ok = to_digest(view, syn.digest);
      packet.message = std::move(syn);
      break;
    }
    case wire::Kind::kSynAck: {
      SynAck synack;
      ok = to_digest(view, synack.digest) && to_delta(view, synack.delta);
      packet.message = std::move(synack);
      break;
    }
    case wire::Kind::kAck: {
      Ack ack;
      ok = to_delta(view, ack.delta);
      packet.message = std::move(ack);
      break;
    }
    case wire::Kind::kBadCluster:
      packet.message = BadCluster{};
      break;
  }
  if (!ok) return std::nullopt;
  return packet;
}

}  // namespace

Bytes encode(const Packet& packet) {
  using wire_size::length_delimited;
  // The body sizes, each computed once.
  std::size_t digest_size = 0;
  std::vector<std::size_t> node_delta_sizes;
  std::size_t delta_size = 0;
  const Digest* digest = nullptr;
  const Delta* delta = nullptr;
  if (const auto* syn = std::get_if<Syn>(&packet.message)) digest = &syn->digest;
  if (const auto* synack = std::get_if<SynAck>(&packet.message)) {
    digest = &synack->digest;
    delta = &synack->delta;
  }
  if (const auto* ack = std::get_if<Ack>(&packet.message)) delta = &ack->delta;
  std::size_t body = 0;
  if (digest != nullptr) {
    digest_size = wire_size::digest(*digest);
    body += length_delimited(digest_size);
  }
  if (delta != nullptr) {
    node_delta_sizes.reserve(delta->node_deltas.size());
    for (const auto& nd : delta->node_deltas) {
      node_delta_sizes.push_back(wire_size::node_delta(nd));
      delta_size += length_delimited(node_delta_sizes.back());
    }
    body += length_delimited(delta_size);
  }
  static_assert(std::is_same_v<std::variant_alternative_t<0, Message>, Syn> &&
                std::is_same_v<std::variant_alternative_t<3, Message>, BadCluster>);
  const unsigned field =
      static_cast<unsigned>(packet.message.index()) + 2;  // syn = 2 ... bad_cluster = 5
  Bytes out((packet.cluster_id.empty() ? 0 : length_delimited(packet.cluster_id.size())) +
            length_delimited(body));
  Writer w(out.data());
  w.string_field(1, packet.cluster_id);
  w.header(field, body);
  if (digest != nullptr) {
    w.header(2, digest_size);
    write(w, *digest);
  }
  if (delta != nullptr) {
    w.header(3, delta_size);
    for (std::size_t i = 0; i < delta->node_deltas.size(); ++i) {
      write(w, delta->node_deltas[i], node_delta_sizes[i]);
    }
  }
  // wire_size and the writer follow the same rules; should they ever
  // disagree, the generated serializer is the authority.
  if (w.position() != out.data() + out.size()) return encode_reference(packet);
  return out;
}

DecodeResult decode(ByteView bytes) {
  wire::PacketView view;
  if (wire::read_packet(bytes, view)) {
    if (auto packet = to_packet(view)) return std::move(*packet);
  }
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
