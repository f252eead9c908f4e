// How the handle_packet fuzz target reads its input: the sender and stage
// byte, typed packets built around the target node's real state, and the
// record format, shared with the seed generator so seeds stay valid inputs.
#pragma once

#include <aiocluster/aiocluster.h>

#include <array>
#include <limits>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "scenario.h"

namespace fuzz {

// Operation kinds, in the low two bits of an operation's first byte.
enum class OpKind : std::uint8_t { kRawPacket = 0, kTypedPacket = 1, kStep = 2, kLocalWrite = 3 };

// Senders: the five scenario nodes, then addresses nobody knows.
inline aiocluster::Address sender(std::size_t index) {
  using aiocluster::Address;
  if (index < 5) return Address{"127.0.0.1", static_cast<std::uint16_t>(7000 + index)};
  static const std::array<Address, 3> strangers{Address{"10.9.9.9", 9}, Address{"::1", 7001},
                                                Address{"127.0.0.1", 65535}};
  return strangers[(index - 5) % strangers.size()];
}

// The byte that picks stage (bits 0-1), TLS peer names (bits 2-3) and sender (bits 4-7).
inline std::uint8_t inbound_byte(aiocluster::Stage stage, std::size_t sender_index,
                                 unsigned names = 0) {
  return static_cast<std::uint8_t>(static_cast<unsigned>(stage) | (names << 2) |
                                   (sender_index << 4));
}

inline aiocluster::Inbound inbound(std::uint8_t b) {
  using aiocluster::Stage;
  aiocluster::Inbound in;
  in.stage = static_cast<Stage>(b & 3);
  switch ((b >> 2) & 3) {
    case 0:
      break;
    case 1:
      in.peer_names = std::vector<std::string>{"node-1.test"};
      break;
    case 2:
      in.peer_names = std::vector<std::string>{"NODE-2.TEST", "x"};
      break;
    case 3:
      in.peer_names = std::vector<std::string>{};
      break;
  }
  in.from = aiocluster::PeerKey::of(sender((b >> 4) % 8));
  return in;
}

// A raw-packet operation record.
inline aiocluster::Bytes raw_op(aiocluster::Stage stage, std::size_t sender_index,
                                const aiocluster::Bytes& packet) {
  aiocluster::Bytes out{static_cast<std::uint8_t>(OpKind::kRawPacket),
                        inbound_byte(stage, sender_index),
                        static_cast<std::uint8_t>(packet.size() & 0xff),
                        static_cast<std::uint8_t>((packet.size() >> 8) & 0xff)};
  out.insert(out.end(), packet.begin(), packet.end());
  return out;
}

// Builds packets from fuzzer choices, with node ids and versions drawn near
// what the target node really holds, so deltas hit the interesting rules.
class PacketBuilder {
 public:
  PacketBuilder(const aiocluster::Node& target, const MemCluster& cluster) : target_(target) {
    for (const auto& n : cluster.nodes) ids_.push_back(n->self_id());
    auto reborn = ids_[1];
    reborn.generation_id = 2;  // a restart of node 1
    ids_.push_back(reborn);
    auto impostor = target.self_id();
    impostor.gossip_advertise_addr.port = 1;  // our name, another address
    ids_.push_back(impostor);
    ids_.push_back(aiocluster::NodeId{"ghost", 9, {"10.0.0.9", 9}, ""});
  }

  aiocluster::Packet packet(Input& in) const {
    using namespace aiocluster;
    Packet p;
    const std::uint8_t b = in.byte();
    p.cluster_id = (b & 0x10) == 0 ? kClusterId : ((b & 0x20) == 0 ? "other-cluster" : "");
    switch (b & 3) {
      case 0:
        p.message = Syn{digest(in)};
        break;
      case 1: {
        Digest d = digest(in);
        p.message = SynAck{std::move(d), delta(in)};
        break;
      }
      case 2:
        p.message = Ack{delta(in)};
        break;
      case 3:
        p.message = BadCluster{};
        break;
    }
    return p;
  }

 private:
  aiocluster::NodeId id(Input& in) const {
    const std::uint8_t b = in.byte();
    if (b < 224) return ids_[b % ids_.size()];
    aiocluster::NodeId fresh;
    fresh.name = in.string(16);
    fresh.generation_id = in.byte();
    fresh.gossip_advertise_addr =
        aiocluster::Address{"10.0.0." + std::to_string(in.byte()), in.u16()};
    return fresh;
  }

  std::uint64_t version(Input& in, const aiocluster::NodeId& node) const {
    const aiocluster::NodeState* st = target_.node_state(node);
    const std::uint64_t max = st ? st->max_version() : 0;
    const std::uint64_t gc = st ? st->last_gc_version() : 0;
    const std::uint8_t b = in.byte();
    auto near = [&](std::uint64_t base) {
      const std::uint64_t offset = in.byte() % 5;
      return offset >= 2 ? base + (offset - 2) : (base >= 2 - offset ? base - (2 - offset) : 0);
    };
    switch (b % 8) {
      case 0:
        return 0;
      case 1:
        return near(max);
      case 2:
        return near(gc);
      case 3:
        return max + 1 + in.byte();
      case 4:
        return std::numeric_limits<std::uint64_t>::max() - in.byte() % 3;
      case 5:
        return in.byte();
      case 6:
        return in.u64();
      default:
        return max;
    }
  }

  aiocluster::Digest digest(Input& in) const {
    aiocluster::Digest d;
    const std::size_t n = in.byte() % 6;
    for (std::size_t i = 0; i < n; ++i) {
      aiocluster::NodeDigest nd;
      nd.node_id = id(in);
      const aiocluster::NodeState* st = target_.node_state(nd.node_id);
      nd.heartbeat = (in.byte() & 1) != 0 ? (st ? st->heartbeat() : 0) + in.byte() % 3 : in.u64();
      nd.last_gc_version = version(in, nd.node_id);
      nd.max_version = version(in, nd.node_id);
      d.node_digests.push_back(std::move(nd));
    }
    return d;
  }

  aiocluster::Delta delta(Input& in) const {
    static const std::array<const char*, 12> keys{"role", "zone",  "k0", "k1", "k3", "k5",
                                                  "k10",  "lease", "a",  "b",  "c",  "local-0"};
    aiocluster::Delta d;
    const std::size_t n = in.byte() % 4;
    for (std::size_t i = 0; i < n; ++i) {
      aiocluster::NodeDelta nd;
      nd.node_id = id(in);
      nd.from_version_excluded = version(in, nd.node_id);
      nd.last_gc_version = version(in, nd.node_id);
      std::uint64_t v = nd.from_version_excluded;
      const std::size_t kvs = in.byte() % 6;
      for (std::size_t k = 0; k < kvs; ++k) {
        aiocluster::KeyValueUpdate kv;
        const std::uint8_t kb = in.byte();
        kv.key = kb < 240 ? keys[kb % keys.size()] : in.string(8);
        kv.value = "v" + std::to_string(in.byte());
        const std::uint8_t vb = in.byte();
        v = (vb & 0x80) != 0 ? version(in, nd.node_id) : v + 1 + vb % 3;
        kv.version = v;
        kv.status = static_cast<aiocluster::KeyStatus>(in.byte() % 3);
        nd.key_values.push_back(std::move(kv));
      }
      switch (in.byte() % 4) {
        case 0:
          break;
        case 1:
          nd.max_version = v;
          break;
        case 2:
          nd.max_version = version(in, nd.node_id);
          break;
        default:
          nd.max_version = v + in.byte();
          break;
      }
      d.node_deltas.push_back(std::move(nd));
    }
    return d;
  }

  const aiocluster::Node& target_;
  std::vector<aiocluster::NodeId> ids_;
};

}  // namespace fuzz
