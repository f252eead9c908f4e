// The only file of the core that touches generated protobuf code.
#include "aiocluster/codec.h"

#include <google/protobuf/arena.h>

#include "aiocluster/proto/aiocluster.pb.h"

namespace aiocluster {

std::string_view to_string(DecodeError error) {
  switch (error) {
    case DecodeError::kMalformed: return "malformed";
    case DecodeError::kNoMessage: return "no message";
    case DecodeError::kInvalidField: return "invalid field";
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
      kv.key = kvpb.key();
      kv.value = kvpb.value();
      kv.version = kvpb.version();
      kv.status = static_cast<KeyStatus>(status);
    }
  }
  return true;
}

}  // namespace

Bytes encode(const Packet& packet) {
  google::protobuf::Arena arena;
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

DecodeResult decode(ByteView bytes) {
  if (bytes.size() > static_cast<std::size_t>(INT32_MAX)) return DecodeError::kMalformed;
  google::protobuf::Arena arena;
  auto* pb = google::protobuf::Arena::CreateMessage<PacketPb>(&arena);
  if (!pb->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return DecodeError::kMalformed;
  }
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

std::size_t varint(std::uint64_t value) {
  std::size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

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
