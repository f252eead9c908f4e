// Scuttlebutt reconciliation on a ClusterState, as a Node does it: digests
// and deltas planned and written straight from the state, deltas applied
// from a packet read in place (PROTOCOL.md section 5).
#include <benchmark/benchmark.h>

#include <memory>

#include "fixtures.h"
#include "heap_counter.h"
#include "profiled.h"

namespace bench {
namespace {

void report_allocations(benchmark::State& state, std::uint64_t allocations,
                        std::size_t key_values = 0) {
  const double per_iteration =
      static_cast<double>(allocations) / static_cast<double>(state.iterations());
  state.counters["allocs"] = per_iteration;
  if (key_values > 0) {
    state.counters["allocs_per_kv"] = per_iteration / static_cast<double>(key_values);
  }
}

// Per key-value counters from the run's time.
void report_per_key_value(benchmark::State& state, std::size_t key_values) {
  state.counters["key_values"] = static_cast<double>(key_values);
  state.counters["time_per_kv"] =
      benchmark::Counter(static_cast<double>(state.iterations() * key_values),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * key_values));
}

// Planned and written, as in a Syn.
void BM_Digest(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  const ClusterState cs = make_cluster(nodes, 10);
  Rng rng(7);
  DigestPlan plan;
  Bytes out(kMaxPayload);
  std::size_t written = 0;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    written = profiled::digest(cs, kMaxPayload - 64, rng, plan, out);
    benchmark::DoNotOptimize(out.data());
  }
  report_allocations(state, heap_stats().allocations - before.allocations);
  if (plan.nodes.size() != nodes || written != plan.size)
    state.SkipWithError("the digest left nodes out");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * nodes));
}
BENCHMARK(BM_Digest)->Arg(100)->Arg(1000);

// A delta against an empty digest, planned to fill an Ack of 65,507 bytes:
// which key-values of which nodes go in, with every encoded size.
void BM_DeltaFull(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  const auto kpn = static_cast<std::size_t>(state.range(1));
  const ClusterState cs = make_cluster(nodes, kpn);
  Rng rng(7);
  DeltaPlan plan;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    profiled::delta(cs, {}, ack_delta_budget(), rng, plan);
    benchmark::DoNotOptimize(plan.parts.data());
  }
  std::size_t kvs = 0;
  for (const auto& part : plan.parts) kvs += part.end_slot - part.first_slot;
  report_allocations(state, heap_stats().allocations - before.allocations, kvs);
  const std::size_t bytes = write_ack(kClusterId, cs, plan).size();
  if (bytes > kMaxPayload || bytes < kMaxPayload * 9 / 10)
    state.SkipWithError("delta not filled to the budget");
  state.counters["packet_bytes"] = static_cast<double>(bytes);
  report_per_key_value(state, kvs);
}
BENCHMARK(BM_DeltaFull)->Args({100, 100})->Args({1000, 10});

// One node holding many keys; the peer is 10 versions behind. The work must
// follow what is stale, not what is stored.
void BM_DeltaFewStale(benchmark::State& state) {
  const auto total = static_cast<std::size_t>(state.range(0));
  const ClusterState cs = make_cluster(1, total);
  wire::DigestEntryView peer;
  peer.id.state = const_cast<NodeState*>(&cs.self());
  peer.max_version = cs.self().max_version() - 10;
  Rng rng(7);
  DeltaPlan plan;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    profiled::delta(cs, std::span(&peer, 1), ack_delta_budget(), rng, plan);
    benchmark::DoNotOptimize(plan.parts.data());
  }
  report_allocations(state, heap_stats().allocations - before.allocations);
  if (plan.parts.size() != 1 || plan.parts[0].end_slot - plan.parts[0].first_slot != 10)
    state.SkipWithError("expected exactly 10 stale key-values");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 10));
}
BENCHMARK(BM_DeltaFewStale)->Arg(1000)->Arg(10'000)->Arg(100'000);

// The Ack of BM_DeltaFull applied to a node that knows nothing, as a Node
// applies it: the packet read in place beforehand (decode is
// BM_DecodePacket), its node ids looked up, its bytes taken over, every
// change reported in place.
void BM_ApplyDelta(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  const auto kpn = static_cast<std::size_t>(state.range(1));
  const Bytes ack = full_ack(nodes, kpn);
  const NodeId observer = node_id(nodes + 1);
  std::size_t applied = 0;
  std::size_t changes = 0;
  const OnKeyChange on_change = [&](const NodeState&, const KeyChangeRef& change) {
    ++changes;
    benchmark::DoNotOptimize(change);
  };
  std::unique_ptr<ClusterState> cs;
  wire::PacketView packet;
  Bytes bytes;
  std::uint64_t allocations = 0;
  std::size_t copied = 0;
  for (auto _ : state) {
    state.PauseTiming();
    cs.reset();
    cs = std::make_unique<ClusterState>(observer);
    bytes = ack;
    if (!wire::read_packet(bytes, packet)) state.SkipWithError("the Ack does not read");
    changes = 0;
    const std::uint64_t mark = heap_stats().allocations;
    state.ResumeTiming();
    const ApplyReport report = profiled::apply(*cs, packet, bytes, on_change);
    allocations += heap_stats().allocations - mark;
    applied = report.key_values;
    copied = report.bytes_copied;
  }
  std::size_t expected = 0;
  for (const auto& nd : packet.node_deltas) expected += nd.key_value_count;
  if (applied != expected || changes != applied || applied == 0)
    state.SkipWithError("not every key-value applied");
  report_allocations(state, allocations, applied);
  report_per_key_value(state, applied);
  state.counters["bytes_copied_per_kv"] =
      static_cast<double>(copied) / static_cast<double>(std::max<std::size_t>(applied, 1));
}
BENCHMARK(BM_ApplyDelta)->Args({100, 100})->Args({1000, 10});

}  // namespace
}  // namespace bench
