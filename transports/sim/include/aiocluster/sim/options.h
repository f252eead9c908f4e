// What a simulated network does to packets, and the options of one
// simulation run. Everything random is drawn from `Options::seed`.
//
//   aiocluster::sim::Options options;
//   options.seed = 42;
//   options.network.loss = 0.1;                      // 10% of datagrams vanish
//   options.network.latency = {1ms, 20ms};           // each packet draws its own delay
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "aiocluster/types.h"

namespace aiocluster::sim {

using namespace std::chrono_literals;

// How packets travel: one datagram per message (UDP), or the three messages
// of an exchange on one connection (TCP, length-prefixed frames).
enum class Transport : std::uint8_t { kUdp, kTcp };

// One-way delay of a packet. Every packet draws its own delay, so packets
// sent close together overtake each other: that is how the network reorders.
// Draws are integer nanoseconds, so a run replays on every platform.
struct Latency {
  Duration min = 1ms;
  Duration max = 10ms;  // uniform in [min, max]
  // With this probability a packet is slow: uniform in [max, spike_max].
  double spike_probability = 0.0;
  Duration spike_max = Duration::zero();
};

// What one direction of a link does.
struct LinkFaults {
  Latency latency;
  // UDP: the datagram is lost. TCP: the connection is cut before this
  // message arrives (the rest of the exchange is lost with it).
  double loss = 0.0;
  // UDP only: the datagram arrives twice, each copy with its own delay.
  double duplicate = 0.0;
};

// A node's own clock. Nodes never read the simulator's true virtual time:
// each reads its clock, which from the moment it is set (Simulator::set_clock)
// reads true time + offset and runs (1 + drift_ppm / 10^6) times as fast.
// Everything a node computes (gossip rounds, failure detection, grace
// periods, its generation id) follows its own clock; the network, pauses and
// stream timeouts follow true time.
struct NodeClock {
  Duration offset = Duration::zero();  // ahead of true time; negative: behind
  // Parts per million it gains per true second; negative: it runs slow
  // (-50'000: 5% slow). Within (-1'000'000, 1'000'000): a clock never stops.
  std::int64_t drift_ppm = 0;
};

struct Options {
  // Drives every random choice of the run: the network, boot phases and the
  // nodes' own generators (derived from it per node and incarnation).
  std::uint64_t seed = 0;
  Transport transport = Transport::kUdp;
  // Every link, unless Simulator::set_link overrides one direction.
  LinkFaults network;
  // Virtual time starts here; it never reads a real clock.
  Instant epoch = Instant{} + std::chrono::hours(1000);
  // A node boots at a random moment in [0, boot_jitter) after add_node, so
  // the nodes' gossip rounds are not all in phase (zero: boot at once).
  Duration boot_jitter = 1s;
  // TCP: a connection gives up this long after it was opened, so a message
  // that arrives later (a slow link, a paused peer) is dropped.
  Duration stream_timeout = 3s;
  // Packets a paused node's socket holds until it resumes; more are dropped.
  std::size_t pause_buffer = 1024;
  // Threads that handle nodes' packets and timers at once (0 or 1: the
  // calling thread alone). The run is the same whatever the number: only
  // inputs that cannot affect one another run together (of different
  // nodes, closer in time than the fastest packet), and everything else
  // (the network's draws, the trace, events, hooks) happens on the calling
  // thread in the order of a one-thread run. Packet filters and on_input
  // hooks turn it off; on_event hooks run as usual but must not change the
  // simulation (they may read it: nodes of the same batch may be seen a
  // packet or a timer ahead).
  std::size_t threads = 1;
};

}  // namespace aiocluster::sim
