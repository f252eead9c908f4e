// A deterministic simulator of a whole cluster: many aiocluster::Node
// instances in one process, on virtual time, over a network that delays,
// reorders, loses, duplicates, partitions, and nodes that crash, restart and
// pause. One seed drives every draw: the same seed and the same calls give a
// bit-identical run, summarized by trace_hash().
//
//   aiocluster::sim::Options options;
//   options.seed = 7;
//   aiocluster::sim::Simulator sim(options);
//   for (std::size_t i = 0; i < 5; ++i)
//     sim.add_node(aiocluster::sim::Simulator::make_config(i, {0}), {{"role", "db"}});
//   auto converged_at = sim.run_until_converged(sim.epoch() + 60s, 100ms);
//   sim.crash(3);
//   sim.run_for(60s);
//   assert(sim.crashes()[0].detected_at && sim.counters().false_deaths == 0);
//
// Indices (NodeIndex) name slots: a slot keeps its name and address across
// restarts, each restart is a new incarnation with a new generation id.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "aiocluster/config.h"
#include "aiocluster/events.h"
#include "aiocluster/node.h"
#include "aiocluster/sim/options.h"
#include "aiocluster/types.h"

namespace aiocluster::sim {

using NodeIndex = std::size_t;
using PartitionId = std::uint64_t;

// Traffic and fault counters of a run.
struct Counters {
  std::uint64_t messages = 0;   // packets handed to the network (a duplicate is not a new one)
  std::uint64_t bytes = 0;      // their encoded size, without TCP framing
  std::uint64_t delivered = 0;  // packets a node handled (duplicates included)
  std::uint64_t lost = 0;       // random loss; with TCP, the message its connection was cut at
  std::uint64_t duplicated = 0;
  std::uint64_t blocked = 0;        // dropped by a partition
  std::uint64_t undeliverable = 0;  // no node at the address, node down, connection reset
  std::uint64_t timed_out = 0;      // TCP: arrived after its connection gave up
  std::uint64_t overflowed = 0;     // arrived at a paused node whose buffer was full
  std::uint64_t streams_opened = 0;
  std::uint64_t streams_cut = 0;
  std::uint64_t max_packet_bytes = 0;
  std::uint64_t oversized_packets = 0;  // larger than the sender's max_payload_size
  std::uint64_t events = 0;             // events the nodes emitted
  // A healthy node (never crashed, restarted, paused or partitioned) that
  // another healthy node declared dead.
  std::uint64_t false_deaths = 0;
  // A healthy node declared dead by a node whose only faults were pauses
  // (never crashed, restarted or partitioned): the false positive of a
  // node that slept and blames the others.
  std::uint64_t false_deaths_by_paused = 0;
  std::uint64_t filtered = 0;  // dropped by a packet filter
  // Inputs (packets, timers) handled in a batch of more than one, on
  // Options::threads threads: how much of the run could go in parallel.
  std::uint64_t batched_inputs = 0;
};

// The message a packet carries, for packet filters (in the order of
// aiocluster::Message).
enum class MessageKind : std::uint8_t { kSyn, kSynAck, kAck, kBadCluster, kUnreadable };

// A packet about to reach a node, as a packet filter sees it.
struct Arrival {
  NodeIndex from = 0;
  NodeIndex to = 0;
  MessageKind message = MessageKind::kUnreadable;
  ByteView payload;  // the packet, without framing
};

// One crash and when the survivors noticed it.
struct CrashReport {
  NodeIndex slot = 0;
  NodeId id;
  Instant at;
  // First moment every running node (other than the crashed one) saw `id`
  // dead or no longer knew it; nullopt until then.
  std::optional<Instant> detected_at;
};

class Simulator {
 public:
  explicit Simulator(Options options = {});
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;
  Simulator(Simulator&&) noexcept;
  Simulator& operator=(Simulator&&) noexcept;

  // The conventional identity of slot `index`: name "node-<index>", address
  // 10.x.y.z:7946 unique per index, cluster id "sim", seeds by index.
  static Address address_of(NodeIndex index);
  static Config make_config(NodeIndex index, std::span<const NodeIndex> seeds = {});

  // --- Building the cluster ---
  // Adds a slot that boots within options.boot_jitter. A generation_id of 0
  // is replaced by the boot time in nanoseconds, like a monotonic clock.
  // Throws ConfigError on a bad config, std::invalid_argument when another
  // slot already has this address.
  NodeIndex add_node(Config config, KeyValues initial_key_values = {});
  std::size_t size() const;

  // --- Virtual time ---
  Instant epoch() const;
  Instant now() const;
  Duration elapsed() const { return now() - epoch(); }
  // Handles the next scheduled thing (a delivery, a timer, a fault, an
  // action); false when nothing is scheduled.
  bool step();
  // Handles everything scheduled up to and including `deadline`, then sets
  // the clock to it.
  void run_until(Instant deadline);
  void run_for(Duration duration) { run_until(now() + duration); }
  // Runs until converged() holds at one of the probes taken every `probe`
  // from now on; returns that probe's time, or nullopt at `deadline`.
  std::optional<Instant> run_until_converged(Instant deadline, Duration probe);
  // Schedules `action` (faults, mutations, checks) at virtual time `when`.
  void at(Instant when, std::function<void(Simulator&)> action);
  void after(Duration delay, std::function<void(Simulator&)> action) {
    at(now() + delay, std::move(action));
  }

  // --- Nodes ---
  bool is_up(NodeIndex slot) const;  // booted and not crashed (a paused node is up)
  bool is_paused(NodeIndex slot) const;
  bool is_running(NodeIndex slot) const { return is_up(slot) && !is_paused(slot); }
  // The current incarnation. Precondition: is_up(slot).
  const Node& node(NodeIndex slot) const;
  // The id of the current (or, after a crash, the last) incarnation;
  // before boot, the id it will boot with except for the generation.
  const NodeId& node_id(NodeIndex slot) const;
  // The slot whose current or past incarnation is `id`.
  std::optional<NodeIndex> slot_of(const NodeId& id) const;
  // Healthy: never crashed, restarted, paused or partitioned so far.
  bool is_healthy(NodeIndex slot) const;
  // Runs `mutation` on the node (set, remove, ...) and carries out what it
  // asks. Precondition: is_up(slot).
  void update(NodeIndex slot, const std::function<void(Node&)>& mutation);

  // --- Clocks ---
  // Sets the clock of slot `slot` from now on (before boot too, and kept
  // across restarts, like a machine's clock). A pending timer of the node is
  // rescheduled by its new clock. Throws std::invalid_argument on a drift
  // outside (-10^6, 10^6) ppm, std::out_of_range on a bad slot.
  void set_clock(NodeIndex slot, NodeClock clock);
  NodeClock clock(NodeIndex slot) const;
  // What the clock of `slot` reads now: the `now` its node is given.
  Instant local_now(NodeIndex slot) const;

  // --- Faults, effective immediately (schedule them with at()) ---
  void set_network(const LinkFaults& faults);  // every link without an override
  void set_link(NodeIndex from, NodeIndex to, const LinkFaults& faults);  // one direction
  void clear_link(NodeIndex from, NodeIndex to);
  // Packets from side_a to side_b are dropped, and from side_b to side_a
  // too unless `one_way`. Packets already in flight still arrive.
  PartitionId partition(std::vector<NodeIndex> side_a, std::vector<NodeIndex> side_b,
                        bool one_way = false);
  void heal(PartitionId partition);
  void heal_all();
  // Stops the node silently: its state is gone, packets to it are lost.
  void crash(NodeIndex slot);
  // Boots a crashed (or running: it crashes first) slot again now, with the
  // same name, address, config and initial key-values and a new generation.
  void restart(NodeIndex slot);
  // The node stops handling anything for `duration`, like a long GC pause;
  // its socket holds up to options.pause_buffer packets meanwhile.
  void pause(NodeIndex slot, Duration duration);

  // --- What a test asserts ---
  // Every running node sees every running node (paused ones excluded) live,
  // with its replica as complete as the owner's own state (equal max_version,
  // hence all its keys).
  bool converged() const;
  // Why converged() is false, as one readable line naming the first observer
  // and node it found out of step; nullopt when converged.
  std::optional<std::string> convergence_gap() const;
  // Every crash so far, in order.
  const std::vector<CrashReport>& crashes() const;
  // No running node sees `id` live.
  bool seen_dead_by_all(const NodeId& id) const;
  // No running node holds any state of `id` any more.
  bool removed_everywhere(const NodeId& id) const;
  const Counters& counters() const;
  std::uint64_t trace_hash() const;

  // --- Observers, called synchronously; they must not call step() ---
  // Every event a node emits, in order.
  void on_event(std::function<void(NodeIndex, const Event&)> hook);
  // After a node handled an input (packet, timer, boot, mutation) and its
  // outputs were carried out.
  void on_input(std::function<void(NodeIndex)> hook);
  // Sees every packet that survived the network's faults before the node it
  // is addressed to handles it, filters in registration order: true lets it
  // through, false drops it (Counters::filtered; on TCP its connection is
  // cut). Drop or inspect messages by kind, direction or node.
  void filter_packets(std::function<bool(const Arrival&)> filter);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace aiocluster::sim
