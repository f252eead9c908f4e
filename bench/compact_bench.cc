// The compact digest (proto/README.md): planned and written as in a Syn, and
// read back by a node that knows the same members. At 10,000 members it does
// not fit a packet: a partial digest, as many members as fit (`members`).
#include <benchmark/benchmark.h>

#include "compact_digest.h"
#include "fixtures.h"
#include "heap_counter.h"

namespace bench {
namespace {

constexpr std::uint64_t kSalt = 0x9e3779b97f4a7c15ULL;

void BM_CompactDigestEncode(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  ClusterState cs = make_cluster(nodes, 10);
  compact::Plan plan;
  compact::MemberHashes hashes;
  std::size_t size = 0;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    // A fresh salt each time: what a node pays without its table of hashes.
    hashes.salt = 0;
    compact::plan(cs, compact::hashed(cs, kSalt, hashes), {}, {}, kMaxPayload - 64, 0, plan);
    Bytes syn = compact::write_syn(kClusterId, cs, plan);
    size = syn.size();
    benchmark::DoNotOptimize(syn.data());
  }
  state.counters["allocs"] = static_cast<double>(heap_stats().allocations - before.allocations) /
                             static_cast<double>(state.iterations());
  state.counters["packet_bytes"] = static_cast<double>(size);
  state.counters["members"] = static_cast<double>(plan.count);
  state.counters["bytes_per_member"] =
      static_cast<double>(plan.entries_size) / static_cast<double>(plan.count);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * nodes));
}
BENCHMARK(BM_CompactDigestEncode)->Arg(100)->Arg(1000)->Arg(10000);

void BM_CompactDigestDecode(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  ClusterState cs = make_cluster(nodes, 10);
  compact::Plan plan;
  compact::MemberHashes hashes;
  compact::plan(cs, compact::hashed(cs, kSalt, hashes), {}, {}, kMaxPayload - 64, 0, plan);
  const Bytes syn = compact::write_syn(kClusterId, cs, plan);
  wire::PacketView packet;
  compact::MemberHashes own;
  compact::MemberHashes other;
  const compact::HashCache cache{own, other};
  compact::ReadScratch scratch;
  compact::ReadReport report;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    report = {};
    own.salt = other.salt = 0;  // as for a salt not seen before
    if (!wire::read_packet(syn, packet) || !PacketPaths::resolve(cs, packet) ||
        !compact::read(cs, packet.compact_digest, 100'000, packet, cache, nullptr, scratch,
                       report)) {
      state.SkipWithError("the compact digest did not read back");
      break;
    }
    benchmark::DoNotOptimize(packet.digest.data());
  }
  state.counters["allocs"] = static_cast<double>(heap_stats().allocations - before.allocations) /
                             static_cast<double>(state.iterations());
  if (report.resolved != plan.count) state.SkipWithError("members went unresolved");
  state.counters["members"] = static_cast<double>(plan.count);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * nodes));
}
BENCHMARK(BM_CompactDigestDecode)->Arg(100)->Arg(1000)->Arg(10000);

// Aligned digests (proto/README.md section 2.3): the same members by
// position, no hashes, between nodes whose fingerprints agree (each node
// keeps its fingerprint, so it is computed once here).
void BM_AlignedDigestEncode(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  ClusterState cs = make_cluster(nodes, 10);
  const std::uint64_t fingerprint = compact::fingerprint(cs);
  compact::Plan plan;
  std::size_t size = 0;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    if (!compact::plan_aligned(cs, kSalt, fingerprint, {}, kMaxPayload - 64, plan)) {
      state.SkipWithError("the aligned digest did not fit");
      break;
    }
    Bytes syn = compact::write_syn(kClusterId, cs, plan);
    size = syn.size();
    benchmark::DoNotOptimize(syn.data());
  }
  state.counters["allocs"] = static_cast<double>(heap_stats().allocations - before.allocations) /
                             static_cast<double>(state.iterations());
  state.counters["packet_bytes"] = static_cast<double>(size);
  state.counters["members"] = static_cast<double>(plan.count);
  state.counters["bytes_per_member"] =
      static_cast<double>(plan.entries_size) / static_cast<double>(plan.count);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * nodes));
}
BENCHMARK(BM_AlignedDigestEncode)->Arg(100)->Arg(1000)->Arg(10000);

void BM_AlignedDigestDecode(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  ClusterState cs = make_cluster(nodes, 10);
  const std::uint64_t fingerprint = compact::fingerprint(cs);
  compact::Plan plan;
  if (!compact::plan_aligned(cs, kSalt, fingerprint, {}, kMaxPayload - 64, plan)) {
    state.SkipWithError("the aligned digest did not fit");
    return;
  }
  const Bytes syn = compact::write_syn(kClusterId, cs, plan);
  wire::PacketView packet;
  compact::MemberHashes own;
  compact::MemberHashes other;
  const compact::HashCache cache{own, other};
  compact::ReadScratch scratch;
  compact::ReadReport report;
  const HeapStats before = heap_stats();
  for (auto _ : state) {
    report = {};
    if (!wire::read_packet(syn, packet) || !PacketPaths::resolve(cs, packet) ||
        !compact::read(cs, packet.compact_digest, 100'000, packet, cache, &fingerprint, scratch,
                       report)) {
      state.SkipWithError("the aligned digest did not read back");
      break;
    }
    benchmark::DoNotOptimize(packet.digest.data());
  }
  state.counters["allocs"] = static_cast<double>(heap_stats().allocations - before.allocations) /
                             static_cast<double>(state.iterations());
  if (report.mismatched || report.resolved != plan.count) {
    state.SkipWithError("the aligned digest was not read on its membership");
  }
  state.counters["members"] = static_cast<double>(plan.count);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * nodes));
}
BENCHMARK(BM_AlignedDigestDecode)->Arg(100)->Arg(1000)->Arg(10000);

}  // namespace
}  // namespace bench
