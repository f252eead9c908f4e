// The timed body of each benchmark, compiled out of line in its own file so
// a profiler can count exactly what a benchmark times and nothing of its
// setup: bench/profile.py runs callgrind collecting only inside one of these.
#pragma once

#include <cstddef>

#include "fixtures.h"

namespace bench::profiled {

std::size_t digest(const ClusterState& cs, std::size_t max_size, Rng& rng, DigestPlan& plan,
                   Bytes& out);
void delta(const ClusterState& cs, std::span<const wire::DigestEntryView> peer,
           std::size_t max_delta_size, Rng& rng, DeltaPlan& plan);
ApplyReport apply(ClusterState& cs, wire::PacketView& packet, Bytes& bytes,
                  const OnKeyChange& on_change);
Bytes encode(const SynAckPlan& synack);
Bytes encode_value(const Packet& packet);
bool decode(ByteView bytes, wire::PacketView& packet);
DecodeResult decode_value(ByteView bytes);
std::size_t exchange(NodePair& pair);

}  // namespace bench::profiled
