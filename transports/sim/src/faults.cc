#include "aiocluster/sim/faults.h"

#include <algorithm>
#include <chrono>

namespace aiocluster::sim {

using namespace std::chrono_literals;

namespace {

Duration millis(std::uint64_t n) { return std::chrono::milliseconds(n); }

// prefix + n, built by appending (GCC 12 warns, wrongly, about
// "literal" + std::to_string(n) once inlined).
std::string tagged(const char* prefix, std::uint64_t n) {
  std::string s = prefix;
  s += std::to_string(n);
  return s;
}

long long ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// Uniform in [-bound, bound]; no draw when bound is zero.
std::int64_t symmetric(Rng& rng, std::int64_t bound) {
  if (bound <= 0) return 0;
  const auto span = static_cast<std::uint64_t>(bound) * 2 + 1;
  return static_cast<std::int64_t>(rng.below(span)) - bound;
}

}  // namespace

FaultSchedule::FaultSchedule(std::uint64_t seed, FaultOptions options)
    : options_(options), rng_(seed ^ 0x5ce7a210c0ffeeULL) {
  Options sim_options;
  sim_options.seed = seed;
  sim_options.transport = rng_.chance(0.5) ? Transport::kUdp : Transport::kTcp;
  sim_options.network.latency = {1ms, millis(1 + rng_.below(60)), rng_.below(3) / 100.0,
                                 millis(500 + rng_.below(2500))};
  sim_options.network.loss = rng_.below(26) / 100.0;
  sim_options.network.duplicate = rng_.below(16) / 100.0;
  sim_ = std::make_unique<Simulator>(sim_options);
  checker_ = std::make_unique<InvariantChecker>(*sim_);

  const std::size_t n = 3 + rng_.below(4);
  const Duration tombstone_grace = millis(2000 + rng_.below(13000));
  const Duration dead_grace = options_.short_dead_grace ? millis(20000 + rng_.below(70000))
                                                        : Config{}.dead_node_grace_period;
  for (NodeIndex i = 0; i < n; ++i) {
    // Seeds: one of the first two nodes other than itself (a node whose
    // only seed is itself cannot join a cluster that never heard of it),
    // sometimes repeated, sometimes with the node itself, sometimes with an
    // address where nobody listens.
    std::vector<NodeIndex> seeds = {i < 2 ? 1 - i : rng_.below(2)};
    if (rng_.chance(0.3)) seeds.push_back(seeds.front());
    if (rng_.chance(0.3)) seeds.push_back(i);
    Config config = Simulator::make_config(i, seeds);
    if (rng_.chance(0.2)) config.seeds.push_back(Simulator::address_of(250));
    config.marked_for_deletion_grace_period = tombstone_grace;
    config.dead_node_grace_period = dead_grace;
    KeyValues kvs;
    for (std::uint64_t k = rng_.below(3); k > 0; --k) {
      kvs.emplace_back(tagged("k", rng_.below(5)), tagged("init-", i));
    }
    sim_->add_node(std::move(config), std::move(kvs));
  }
  // From a generator of their own, so that every other draw of a seed is
  // the same with or without clocks.
  Rng clocks(seed ^ 0xc10c4ULL);
  std::string clock_text;
  for (NodeIndex i = 0; i < n; ++i) {
    const NodeClock clock{Duration(symmetric(clocks, options_.clock_skew.count())),
                          symmetric(clocks, options_.clock_drift_ppm)};
    if (clock.offset == Duration::zero() && clock.drift_ppm == 0) continue;
    sim_->set_clock(i, clock);
    clock_text += (clock_text.empty() ? ", clocks" : "") + tagged(" ", i) + ":" +
                  std::to_string(ms(clock.offset)) + "ms" + (clock.drift_ppm >= 0 ? "+" : "") +
                  std::to_string(clock.drift_ppm) + "ppm";
  }
  description_ = std::to_string(n) + " nodes, " +
                 (sim_options.transport == Transport::kUdp ? "udp" : "tcp") + ", loss " +
                 std::to_string(static_cast<int>(sim_options.network.loss * 100)) + "%, dup " +
                 std::to_string(static_cast<int>(sim_options.network.duplicate * 100)) +
                 "%, latency 1-" + std::to_string(ms(sim_options.network.latency.max)) +
                 " ms, tombstone grace " + std::to_string(ms(tombstone_grace)) +
                 " ms, dead grace " + std::to_string(ms(dead_grace)) + " ms" + clock_text;
}

std::string FaultSchedule::describe() const { return description_; }

void FaultSchedule::run_faults() {
  const Instant end = sim_->now() + options_.fault_phase;
  while (sim_->now() < end) {
    sim_->run_until(std::min(end, sim_->now() + millis(200 + rng_.below(2800))));
    if (sim_->now() < end) random_fault();
  }
}

void FaultSchedule::random_fault() {
  Simulator& sim = *sim_;
  const std::uint64_t r = rng_.below(100);
  if (r < 40) {
    if (!options_.mutations) return;
    const NodeIndex i = any_slot();
    if (!sim.is_up(i)) return;
    const std::string key = tagged("k", rng_.below(5));
    const std::string value = tagged("v", rng_.below(1000));
    switch (rng_.below(4)) {
      case 0:
        sim.update(i, [&](Node& n) { n.set(key, value); });
        break;
      case 1:
        sim.update(i, [&](Node& n) { n.remove(key); });
        break;
      case 2:
        sim.update(i, [&](Node& n) { n.set_with_ttl(key, value); });
        break;
      default:
        sim.update(i, [&](Node& n) { n.delete_after_ttl(key); });
        break;
    }
  } else if (r < 52) {
    if (!options_.partitions || partitions_.size() >= 2) return;
    std::vector<NodeIndex> a;
    std::vector<NodeIndex> b;
    for (NodeIndex i = 0; i < sim.size(); ++i) (rng_.chance(0.5) ? a : b).push_back(i);
    if (a.empty() || b.empty()) return;
    partitions_.push_back(sim.partition(a, b, rng_.chance(0.3)));
  } else if (r < 62) {
    if (partitions_.empty()) return;
    const std::size_t k = rng_.below(partitions_.size());
    sim.heal(partitions_[k]);
    partitions_.erase(partitions_.begin() + static_cast<std::ptrdiff_t>(k));
  } else if (r < 70) {
    if (!options_.crashes) return;
    std::size_t up = 0;
    for (NodeIndex i = 0; i < sim.size(); ++i) up += sim.is_up(i) ? 1 : 0;
    const NodeIndex i = any_slot();
    if (up > 2 && sim.is_up(i)) sim.crash(i);
  } else if (r < 78) {
    if (!options_.crashes) return;
    sim.restart(any_slot());
  } else if (r < 86) {
    if (!options_.pauses) return;
    const NodeIndex i = any_slot();
    if (sim.is_up(i)) sim.pause(i, millis(100 + rng_.below(7900)));
  } else if (r < 94) {
    if (!options_.link_faults) return;
    const NodeIndex from = any_slot();
    const NodeIndex to = any_slot();
    if (from == to) return;
    LinkFaults faults;
    faults.latency = {1ms, millis(1 + rng_.below(500))};
    faults.loss = rng_.below(101) / 100.0;
    faults.duplicate = rng_.below(30) / 100.0;
    sim.set_link(from, to, faults);
    overridden_links_.emplace_back(from, to);
  } else {
    if (overridden_links_.empty()) return;
    const std::size_t k = rng_.below(overridden_links_.size());
    sim.clear_link(overridden_links_[k].first, overridden_links_[k].second);
    overridden_links_.erase(overridden_links_.begin() + static_cast<std::ptrdiff_t>(k));
  }
}

void FaultSchedule::heal() {
  Simulator& sim = *sim_;
  sim.heal_all();
  partitions_.clear();
  for (const auto& [from, to] : overridden_links_) sim.clear_link(from, to);
  overridden_links_.clear();
  sim.set_network(LinkFaults{{1ms, 10ms}, 0.0, 0.0});
  for (NodeIndex i = 0; i < sim.size(); ++i) {
    if (!sim.is_up(i)) sim.restart(i);
  }
  // Let pauses end, so every node takes part from here on.
  for (NodeIndex i = 0; i < sim.size(); ++i) {
    while (sim.is_paused(i)) sim.run_for(100ms);
  }
}

}  // namespace aiocluster::sim
