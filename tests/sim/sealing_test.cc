// Sealed gossip over many seeds (proto/README.md section 4): a cluster whose
// every packet is sealed converges over UDP or TCP with loss and duplicates,
// and a key rotation during the run (install everywhere, make primary
// everywhere, remove the old key) loses no member and no key and refuses no
// honest packet; a node with another key stays out.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>

#include "support.h"

namespace simtest {
namespace {

using aiocluster::Rng;
using aiocluster::SealKey;
using aiocluster::sim::Options;
using aiocluster::sim::Transport;

constexpr const char* kRotation =
    "sealed gossip: a key rotation during the run loses no member and no key";

SealKey key_from(Rng& rng) {
  SealKey key{};
  for (auto& byte : key) byte = static_cast<std::uint8_t>(rng.next());
  return key;
}

Problems check_rotation(std::uint64_t seed, std::uint64_t& sealed) {
  Rng rng(seed ^ 0x5ea1ULL);
  Options options;
  options.seed = seed;
  options.transport = rng.chance(0.5) ? Transport::kUdp : Transport::kTcp;
  options.network.latency = {1ms, std::chrono::milliseconds(1 + rng.below(30))};
  options.network.loss = static_cast<double>(rng.below(6)) / 100.0;
  options.network.duplicate = options.transport == Transport::kUdp ? 0.05 : 0.0;
  Simulator sim(options);
  const SealKey old_key = key_from(rng);
  const SealKey new_key = key_from(rng);
  const std::size_t n = 5 + rng.below(6);
  const std::vector<NodeIndex> seeds = {0, 1};
  for (NodeIndex i = 0; i < n; ++i) {
    aiocluster::Config config = Simulator::make_config(i, seeds);
    config.sealing.keyring = aiocluster::Keyring({old_key});
    sim.add_node(std::move(config), {{"slot", std::to_string(i)}});
  }
  // The outsider holds another key: never a member.
  aiocluster::Config outsider = Simulator::make_config(n, seeds);
  outsider.sealing.keyring = aiocluster::Keyring({key_from(rng)});
  const NodeIndex outsider_slot = sim.add_node(std::move(outsider));

  Problems problems;
  auto every_member = [&](const std::function<void(aiocluster::Node&)>& step) {
    for (NodeIndex i = 0; i < n; ++i) sim.update(i, step);
  };
  // Each step of the rotation at a random moment, one after the other.
  sim.run_for(std::chrono::milliseconds(5'000 + rng.below(10'000)));
  every_member([&](aiocluster::Node& node) { node.install_key(new_key); });
  sim.run_for(std::chrono::milliseconds(1'000 + rng.below(5'000)));
  every_member([&](aiocluster::Node& node) {
    node.make_primary_key(new_key);
    node.set("rotated", "yes");
  });
  sim.run_for(std::chrono::milliseconds(1'000 + rng.below(5'000)));
  every_member([&](aiocluster::Node& node) { node.remove_key(old_key); });
  sim.run_for(20s);

  for (NodeIndex i = 0; i < n; ++i) {
    const aiocluster::Node& node = sim.node(i);
    sealed += node.stats().packets_sealed;
    const aiocluster::Stats& s = node.stats();
    // Only the outsider's packets are refused, as under a key we lack, and
    // UDP duplicates as replays. (A packet stamped before its receiver booted,
    // in flight at the boot, is refused as stale by design: not counted here.)
    problems.check(s.dropped_seal_forged + s.dropped_unsealed + s.dropped_seal_malformed == 0,
                   sim.node_id(i).name + " refused an honest sealed packet: forged " +
                       std::to_string(s.dropped_seal_forged) + ", unsealed " +
                       std::to_string(s.dropped_unsealed));
    problems.check(node.config().sealing.keyring.keys().size() == 1,
                   sim.node_id(i).name + " kept the old key");
    for (NodeIndex j = 0; j < n; ++j) {
      problems.check(node.is_live(sim.node_id(j)),
                     sim.node_id(i).name + " lost " + sim.node_id(j).name);
      const aiocluster::NodeState* st = node.node_state(sim.node_id(j));
      problems.check(
          st != nullptr && st->value("rotated") == "yes" && st->value("slot") == std::to_string(j),
          sim.node_id(i).name + " misses a key of " + sim.node_id(j).name);
    }
    problems.check(s.dropped_seal_stale <= 2, sim.node_id(i).name + " refused " +
                                                  std::to_string(s.dropped_seal_stale) +
                                                  " packets as stale");
    problems.check(node.node_state(sim.node_id(outsider_slot)) == nullptr,
                   sim.node_id(i).name + " lets the outsider in");
  }
  problems.check(sim.counters().false_deaths == 0, "a healthy node was declared dead");
  return problems;
}

TEST_SUITE("sealing") {
  TEST_CASE(kRotation) {
    std::uint64_t sealed = 0;
    std::vector<std::uint64_t> all = seeds();
    // Each seed runs about 40 virtual seconds; a quarter of the seeds is plenty.
    all.resize(std::max<std::size_t>(1, all.size() / 4));
    for (std::uint64_t seed : all) {
      const Problems problems = check_rotation(seed, sealed);
      CHECK_MESSAGE(problems.empty(), problems.joined(), "\n", replay(seed, kRotation));
    }
    CHECK(sealed > 0);
  }
}

}  // namespace
}  // namespace simtest
