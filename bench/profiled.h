// The timed body of each benchmark, compiled out of line in its own file so
// a profiler can count exactly what a benchmark times and nothing of its
// setup: bench/profile.py runs callgrind collecting only inside one of these.
#pragma once

#include <cstddef>

#include "fixtures.h"

namespace bench::profiled {

Digest digest(const ClusterState& cs, std::size_t max_size, Rng& rng);
Delta delta(const ClusterState& cs, const Digest& peer, const PacketSizeForDelta& size, Rng& rng);
ApplyReport apply(ClusterState& cs, const Delta& delta,
                  const std::function<void(const NodeId&, KeyChange)>& on_change);
Bytes encode(const Packet& packet);
DecodeResult decode(ByteView bytes);
std::size_t exchange(NodePair& pair);

}  // namespace bench::profiled
