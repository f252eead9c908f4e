// Mixed versions over many seeds (proto/README.md): nodes with and without
// the compact digest and compression, over UDP or TCP, with loss, form one cluster, agree on
// every key, detect a crash within the usual bound and declare no healthy
// node dead.
#include <doctest/doctest.h>

#include <algorithm>

#include "support.h"

namespace simtest {
namespace {

using aiocluster::NodeId;
using aiocluster::Rng;
using aiocluster::sim::Options;
using aiocluster::sim::Transport;

constexpr const char* kMixed =
    "mixed versions: with and without the compact digest, one cluster that converges and detects "
    "a crash";

Problems check_mixed(std::uint64_t seed, std::size_t& compact_digests, std::size_t& compressed,
                     std::size_t& aligned_digests) {
  Rng rng(seed ^ 0xc0de5ULL);
  Options options;
  options.seed = seed;
  options.transport = rng.chance(0.5) ? Transport::kUdp : Transport::kTcp;
  options.network.latency = {1ms, std::chrono::milliseconds(1 + rng.below(30))};
  options.network.loss = static_cast<double>(rng.below(6)) / 100.0;
  Simulator sim(options);
  const std::size_t n = 6 + rng.below(6);
  const std::vector<NodeIndex> seeds = {0, 1};
  for (NodeIndex i = 0; i < n; ++i) {
    aiocluster::Config config = Simulator::make_config(i, seeds);
    config.dead_node_grace_period = 10min;
    // Nodes 0 and 1 (the seeds) differ, the others are drawn.
    config.extensions.compact_digest = i == 0 || (i != 1 && rng.chance(0.5));
    config.extensions.compression = i == 0 || (i != 1 && rng.chance(0.5));
    // Some compact nodes predate the aligned digest (proto/README.md 2.3).
    config.extensions.aligned_digest = i % 3 != 2;
    sim.add_node(std::move(config), {{"slot", std::to_string(i)}});
  }
  Problems problems;
  problems.check(sim.run_until_converged(sim.epoch() + 30s, 100ms).has_value(), "never converged");
  sim.run_for(30s);
  for (NodeIndex i = 0; i < n; ++i) {
    compact_digests += sim.node(i).stats().compact_digests_out;
    compressed += sim.node(i).stats().packets_compressed;
    aligned_digests += sim.node(i).stats().aligned_digests_out;
    // A fingerprint or aligned entries reaching a node without them would be.
    problems.check(sim.node(i).stats().compact_digests_rejected == 0,
                   "a compact digest between versions was malformed");
    // Node 1 speaks no extension: nobody may send it a compressed packet.
    if (i == 1) {
      problems.check(sim.node(i).stats().packets_decompressed == 0 &&
                         sim.node(i).stats().dropped_malformed == 0,
                     "the node without compression received a compressed packet");
    }
    problems.check(
        sim.node(i).stats().packets_dropped() == 0 || options.transport == Transport::kUdp,
        "a packet between versions was dropped");
  }
  const NodeIndex victim = 2 + rng.below(n - 2);
  const NodeId id = sim.node_id(victim);
  sim.crash(victim);
  sim.run_for(30s);
  problems.check(sim.crashes().back().detected_at.has_value(),
                 "crash of " + id.name + " not detected within 30 s");
  problems.check(sim.counters().false_deaths == 0, "a healthy node was declared dead");
  return problems;
}

TEST_SUITE("extensions") {
  TEST_CASE(kMixed) {
    std::size_t compact_digests = 0;
    std::size_t compressed = 0;
    std::size_t aligned_digests = 0;
    for (std::uint64_t seed : seeds()) {
      const Problems problems = check_mixed(seed, compact_digests, compressed, aligned_digests);
      CHECK_MESSAGE(problems.empty(), problems.joined(), "\n", replay(seed, kMixed));
    }
    CHECK(compact_digests > 0);
    CHECK(compressed > 0);
    CHECK(aligned_digests > 0);
  }
}

}  // namespace
}  // namespace simtest
