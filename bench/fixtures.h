// Cluster states and node pairs the benchmarks share, all built through the
// core's public API. Identities look like real ones (nanosecond generation
// ids, IPv4 addresses), keys and values are small ("key-42" / "value-42").
#pragma once

#include <aiocluster/aiocluster.h>

// Core internals: the benchmarks time the paths a Node takes.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "packing.h"
#include "wire.h"

namespace bench {

using namespace aiocluster;
using namespace std::chrono_literals;

inline constexpr const char* kClusterId = "bench-cluster";
inline constexpr std::size_t kMaxPayload = 65'507;

inline Instant t0() { return Instant{} + 1000h; }

NodeId node_id(std::size_t index);
std::string key_name(std::size_t k);
std::string value_of(std::size_t k, std::uint64_t round = 0);

// Config of node `index`: default protocol settings, no seeds, and a
// dead-node grace period long enough that a long benchmark never removes the
// (silent) replicas it holds.
Config make_config(std::size_t index);

// The state node 0 holds once it knows `nodes` nodes (itself included), each
// with `keys_per_node` keys at versions 1..keys_per_node.
ClusterState make_cluster(std::size_t nodes, std::size_t keys_per_node);

// The largest DeltaPb body of an Ack (PROTOCOL.md section 5).
std::size_t ack_delta_budget();

// A SynAck as a responder plans it, from a make_cluster state: its digest
// and a delta for a peer that knows nothing, filled up to the payload budget.
struct SynAckPlan {
  SynAckPlan(std::size_t nodes, std::size_t keys_per_node);
  Bytes write() const;
  std::size_t key_values() const;

  ClusterState state;
  DigestPlan digest;
  DeltaPlan delta;
};

// The same as a packet of our types.
Packet full_synack(std::size_t nodes, std::size_t keys_per_node);

// The Ack carrying what BM_DeltaFull plans: every key of a make_cluster
// state that fits, for a peer that knows nothing.
Bytes full_ack(std::size_t nodes, std::size_t keys_per_node);

// A Syn whose digest announces nodes [first, last) of a make_cluster state
// with `keys_per_node` keys each at this heartbeat.
Bytes announce(std::size_t first, std::size_t last, std::size_t keys_per_node,
               std::uint64_t heartbeat);

// That Syn, then node deltas carrying every key of those nodes packed into
// Acks of at most kMaxPayload bytes: fed to a Node, they make it a replica.
std::vector<Bytes> seed_packets(std::size_t first, std::size_t last, std::size_t keys_per_node,
                                std::uint64_t heartbeat);

// Two Nodes, 0 and 1, that both replicate the same `nodes`-node cluster with
// `keys_per_node` keys per node and have converged. exchange() runs one whole
// round of node 0 and carries its Syn to node 1 over a stream (Syn, SynAck,
// Ack, each encoded and decoded), then drains both nodes.
// The other nodes beat as in a healthy cluster: every 10 s of virtual time a
// third party tells both nodes their new heartbeats (refresh_others(), done
// by the benchmark outside the timed region), so node 0 sees them live (node
// 1 only answers: it runs no rounds, so it neither beats nor judges).
class NodePair {
 public:
  NodePair(std::size_t nodes, std::size_t keys_per_node);

  // Returns the bytes of the three packets; 0 when the exchange broke off.
  std::size_t exchange();
  // True when the other nodes are due to beat (every 10 exchanges).
  bool others_due() const { return exchanges_ % 10 == 0; }
  void refresh_others();
  Node& a() { return *a_; }
  Node& b() { return *b_; }
  Instant now() const { return now_; }

 private:
  std::size_t nodes_;
  std::size_t keys_per_node_;
  std::unique_ptr<Node> a_;
  std::unique_ptr<Node> b_;
  Instant now_;
  std::uint64_t exchanges_ = 0;
  std::uint64_t others_heartbeat_ = 1000;
};

}  // namespace bench
