#include "profiled.h"

namespace bench::profiled {

Digest digest(const ClusterState& cs, std::size_t max_size, Rng& rng) {
  return cs.digest(max_size, rng);
}

Delta delta(const ClusterState& cs, const Digest& peer, const PacketSizeForDelta& size, Rng& rng) {
  return cs.delta_for(peer, size, kMaxPayload, rng);
}

ApplyReport apply(ClusterState& cs, const Delta& delta,
                  const std::function<void(const NodeId&, KeyChange)>& on_change) {
  return cs.apply(delta, t0(), ApplyLimits{}, on_change);
}

Bytes encode(const Packet& packet) { return aiocluster::encode(packet); }

DecodeResult decode(ByteView bytes) { return aiocluster::decode(bytes); }

std::size_t exchange(NodePair& pair) { return pair.exchange(); }

}  // namespace bench::profiled
