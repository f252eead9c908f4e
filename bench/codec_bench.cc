// The protobuf codec on the largest packet a node sends: a SynAck filled up
// to the 65,507-byte budget.
#include <benchmark/benchmark.h>

#include "fixtures.h"
#include "heap_counter.h"
#include "profiled.h"

namespace bench {
namespace {

void BM_EncodePacket(benchmark::State& state) {
  const Packet packet = full_synack(100, 100);
  std::size_t size = 0;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    Bytes bytes = profiled::encode(packet);
    size = bytes.size();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["allocs"] =
      benchmark::Counter(static_cast<double>(heap_stats().allocations - before.allocations),
                         benchmark::Counter::kAvgIterations);
  if (size != wire_size::packet(packet) || size > kMaxPayload) state.SkipWithError("size mismatch");
  state.counters["packet_bytes"] = static_cast<double>(size);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}
BENCHMARK(BM_EncodePacket);

void BM_DecodePacket(benchmark::State& state) {
  const Packet packet = full_synack(100, 100);
  const Bytes bytes = profiled::encode(packet);
  bool same = false;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    DecodeResult decoded = profiled::decode(bytes);
    benchmark::DoNotOptimize(decoded);
    same = std::holds_alternative<Packet>(decoded);
  }
  state.counters["allocs"] =
      benchmark::Counter(static_cast<double>(heap_stats().allocations - before.allocations),
                         benchmark::Counter::kAvgIterations);
  const DecodeResult check = decode(bytes);
  if (!same || !std::holds_alternative<Packet>(check) || std::get<Packet>(check) != packet) {
    state.SkipWithError("decode does not give the encoded packet back");
  }
  state.counters["packet_bytes"] = static_cast<double>(bytes.size());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
}
BENCHMARK(BM_DecodePacket);

}  // namespace
}  // namespace bench
