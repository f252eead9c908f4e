#include "profiled.h"

namespace bench::profiled {

std::size_t digest(const ClusterState& cs, std::size_t max_size, Rng& rng, DigestPlan& plan,
                   Bytes& out) {
  PacketPaths::plan_digest(cs, max_size, rng, plan);
  wire::Writer w(out.data());
  PacketPaths::write_digest(cs, w, plan);
  return static_cast<std::size_t>(w.position() - out.data());
}

void delta(const ClusterState& cs, std::span<const wire::DigestEntryView> peer,
           std::size_t max_delta_size, Rng& rng, DeltaPlan& plan) {
  PacketPaths::plan_delta(cs, peer, max_delta_size, rng, plan);
}

ApplyReport apply(ClusterState& cs, wire::PacketView& packet, Bytes& bytes,
                  const OnKeyChange& on_change) {
  if (!PacketPaths::resolve(cs, packet)) return ApplyReport{};
  return PacketPaths::apply(cs, packet, &bytes, t0(), ApplyLimits{}, on_change);
}

Bytes encode(const SynAckPlan& synack) { return synack.write(); }

Bytes encode_value(const Packet& packet) { return aiocluster::encode(packet); }

bool decode(ByteView bytes, wire::PacketView& packet) { return wire::read_packet(bytes, packet); }

DecodeResult decode_value(ByteView bytes) { return aiocluster::decode(bytes); }

std::size_t exchange(NodePair& pair) { return pair.exchange(); }

}  // namespace bench::profiled
