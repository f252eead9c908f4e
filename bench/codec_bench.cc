// The wire format on the largest packet a node sends: a SynAck filled up to
// the 65,507-byte budget (100 nodes x 100 keys: a digest of 100 nodes and
// some 2,900 key-values).
//   BM_EncodePacket       written from the state, as a Node writes it
//   BM_DecodePacket       read in place into reused views, as a Node reads it
//   BM_EncodePacketValue  encode() of the same packet as our types
//   BM_DecodePacketValue  decode() into our types (a Packet of strings)
#include <benchmark/benchmark.h>

#include "fixtures.h"
#include "heap_counter.h"
#include "profiled.h"

namespace bench {
namespace {

void report(benchmark::State& state, const HeapStats& before, std::size_t size,
            std::size_t key_values) {
  state.counters["allocs"] =
      benchmark::Counter(static_cast<double>(heap_stats().allocations - before.allocations),
                         benchmark::Counter::kAvgIterations);
  state.counters["packet_bytes"] = static_cast<double>(size);
  state.counters["key_values"] = static_cast<double>(key_values);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void BM_EncodePacket(benchmark::State& state) {
  const SynAckPlan synack(100, 100);
  std::size_t size = 0;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    Bytes bytes = profiled::encode(synack);
    size = bytes.size();
    benchmark::DoNotOptimize(bytes.data());
  }
  report(state, before, size, synack.key_values());
  if (synack.write() != encode(full_synack(100, 100)) || size > kMaxPayload)
    state.SkipWithError("not the bytes of encode()");
}
BENCHMARK(BM_EncodePacket);

void BM_DecodePacket(benchmark::State& state) {
  const Bytes bytes = SynAckPlan(100, 100).write();
  wire::PacketView packet;
  bool read = false;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    read = profiled::decode(bytes, packet);
    benchmark::DoNotOptimize(packet.key_values.data());
  }
  report(state, before, bytes.size(), packet.key_values.size());
  if (!read || packet.digest.size() != 100) state.SkipWithError("the packet does not read");
}
BENCHMARK(BM_DecodePacket);

void BM_EncodePacketValue(benchmark::State& state) {
  const Packet packet = full_synack(100, 100);
  std::size_t size = 0;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    Bytes bytes = profiled::encode_value(packet);
    size = bytes.size();
    benchmark::DoNotOptimize(bytes.data());
  }
  report(state, before, size, std::get<SynAck>(packet.message).delta.node_deltas.size());
  if (size != wire_size::packet(packet) || size > kMaxPayload) state.SkipWithError("size mismatch");
}
BENCHMARK(BM_EncodePacketValue);

void BM_DecodePacketValue(benchmark::State& state) {
  const Packet packet = full_synack(100, 100);
  const Bytes bytes = encode(packet);
  bool same = false;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    DecodeResult decoded = profiled::decode_value(bytes);
    benchmark::DoNotOptimize(decoded);
    same = std::holds_alternative<Packet>(decoded);
  }
  report(state, before, bytes.size(), 0);
  const DecodeResult check = decode(bytes);
  if (!same || !std::holds_alternative<Packet>(check) || std::get<Packet>(check) != packet) {
    state.SkipWithError("decode does not give the encoded packet back");
  }
}
BENCHMARK(BM_DecodePacketValue);

}  // namespace
}  // namespace bench
