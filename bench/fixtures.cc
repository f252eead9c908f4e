#include "fixtures.h"

#include <stdexcept>
#include <utility>

namespace bench {

NodeId node_id(std::size_t index) {
  const std::string host = "10." + std::to_string((index >> 16) & 0xff) + "." +
                           std::to_string((index >> 8) & 0xff) + "." + std::to_string(index & 0xff);
  return NodeId{"node-" + std::to_string(index), 1'700'000'000'000'000'000ULL + index * 7919,
                Address{host, 7946}, ""};
}

std::string key_name(std::size_t k) { return "key-" + std::to_string(k); }

std::string value_of(std::size_t k, std::uint64_t round) {
  std::string value = "value-";
  value += std::to_string(k);
  if (round != 0) {
    value += '-';
    value += std::to_string(round);
  }
  return value;
}

Config make_config(std::size_t index) {
  Config config;
  config.cluster_id = kClusterId;
  config.node_id = node_id(index);
  config.dead_node_grace_period = 24h * 365 * 100;
  return config;
}

ClusterState make_cluster(std::size_t nodes, std::size_t keys_per_node) {
  ClusterState cs(node_id(0));
  for (std::size_t k = 0; k < keys_per_node; ++k) cs.self().set(key_name(k), value_of(k), t0());
  cs.self().observe_heartbeat(1000);
  for (std::size_t i = 1; i < nodes; ++i) {
    NodeState* st = cs.find_or_create(node_id(i), SIZE_MAX);
    for (std::size_t k = 0; k < keys_per_node; ++k) {
      st->apply(key_name(k), VersionedValue{value_of(k), k + 1, KeyStatus::kSet}, t0());
    }
    st->raise_max_version(keys_per_node);
    st->observe_heartbeat(1000 + i);
  }
  return cs;
}

std::size_t ack_delta_budget() { return aiocluster::ack_delta_budget(kClusterId, kMaxPayload); }

SynAckPlan::SynAckPlan(std::size_t nodes, std::size_t keys_per_node)
    : state(make_cluster(nodes, keys_per_node)) {
  Rng rng(1);
  PacketPaths::plan_digest(state, synack_digest_budget(kClusterId, kMaxPayload), rng, digest);
  PacketPaths::plan_delta(state, {}, synack_delta_budget(kClusterId, kMaxPayload, digest.size), rng,
                          delta);
}

Bytes SynAckPlan::write() const { return write_synack(kClusterId, state, digest, delta); }

std::size_t SynAckPlan::key_values() const {
  std::size_t n = 0;  // a make_cluster state has no holes in its logs
  for (const auto& part : delta.parts) n += part.end_slot - part.first_slot;
  return n;
}

Packet full_synack(std::size_t nodes, std::size_t keys_per_node) {
  return std::get<Packet>(decode(SynAckPlan(nodes, keys_per_node).write()));
}

Bytes full_ack(std::size_t nodes, std::size_t keys_per_node) {
  const ClusterState cs = make_cluster(nodes, keys_per_node);
  Rng rng(7);
  DeltaPlan plan;
  PacketPaths::plan_delta(cs, {}, ack_delta_budget(), rng, plan);
  return write_ack(kClusterId, cs, plan);
}

Bytes announce(std::size_t first, std::size_t last, std::size_t keys_per_node,
               std::uint64_t heartbeat) {
  Syn syn;
  syn.digest.node_digests.reserve(last - first);
  for (std::size_t i = first; i < last; ++i) {
    syn.digest.node_digests.push_back(NodeDigest{node_id(i), heartbeat, 0, keys_per_node});
  }
  return encode(Packet{kClusterId, std::move(syn)});
}

std::vector<Bytes> seed_packets(std::size_t first, std::size_t last, std::size_t keys_per_node,
                                std::uint64_t heartbeat) {
  std::vector<Bytes> out{announce(first, last, keys_per_node, heartbeat)};
  Ack ack;
  std::size_t delta_len = 0;
  for (std::size_t i = first; i < last && keys_per_node > 0; ++i) {
    NodeDelta nd{node_id(i), 0, 0, {}, keys_per_node};
    for (std::size_t k = 0; k < keys_per_node; ++k) {
      nd.key_values.push_back(KeyValueUpdate{key_name(k), value_of(k), k + 1, KeyStatus::kSet});
    }
    const std::size_t nd_len = wire_size::length_delimited(wire_size::node_delta(nd));
    if (nd_len > ack_delta_budget()) {
      throw std::invalid_argument("seed_packets: one node's keys do not fit in a packet");
    }
    if (delta_len + nd_len > ack_delta_budget()) {
      out.push_back(encode(Packet{kClusterId, std::move(ack)}));
      ack = Ack{};
      delta_len = 0;
    }
    ack.delta.node_deltas.push_back(std::move(nd));
    delta_len += nd_len;
  }
  if (!ack.delta.node_deltas.empty()) out.push_back(encode(Packet{kClusterId, std::move(ack)}));
  return out;
}

NodePair::NodePair(std::size_t nodes, std::size_t keys_per_node)
    : nodes_(nodes), keys_per_node_(keys_per_node), now_(t0()) {
  KeyValues own;
  for (std::size_t k = 0; k < keys_per_node; ++k) own.emplace_back(key_name(k), value_of(k));
  a_ = std::make_unique<Node>(make_config(0), now_, 1, own);
  b_ = std::make_unique<Node>(make_config(1), now_, 2, own);
  // Both learn the other nodes from a third party: a Syn with their
  // heartbeats (its SynAck is dropped) and Acks with their keys.
  for (Node* n : {a_.get(), b_.get()}) {
    const auto packets = seed_packets(2, nodes, keys_per_node, others_heartbeat_);
    n->handle_packet(packets[0], now_, Inbound{Stage::kStreamOpen});
    for (std::size_t i = 1; i < packets.size(); ++i) {
      n->handle_packet(packets[i], now_, Inbound{Stage::kStreamAck});
    }
  }
  // A few exchanges carry 0's and 1's own keys across and two more beats of
  // the others make them live; after that nothing is new on either side.
  for (int i = 0; i < 20; ++i) {
    if (others_due()) refresh_others();
    exchange();
  }
  const NodeState* b_at_a = a_->node_state(b_->self_id());
  const NodeState* a_at_b = b_->node_state(a_->self_id());
  if (a_->cluster_state().size() != nodes || b_->cluster_state().size() != nodes ||
      b_at_a == nullptr || a_at_b == nullptr || b_at_a->max_version() != keys_per_node ||
      a_at_b->max_version() != keys_per_node) {
    throw std::logic_error("NodePair: the two nodes did not converge");
  }
  // Node 1 only answers (it runs no rounds), so only node 0 tracks liveness.
  if (nodes > 2 && (!a_->is_live(node_id(2)) || !a_->is_live(node_id(nodes - 1)))) {
    throw std::logic_error("NodePair: the other nodes are not live");
  }
}

void NodePair::refresh_others() {
  if (nodes_ <= 2) return;
  ++others_heartbeat_;
  const Bytes syn = announce(2, nodes_, keys_per_node_, others_heartbeat_);
  for (Node* n : {a_.get(), b_.get()}) {
    n->handle_packet(syn, now_, Inbound{Stage::kStreamOpen});
    while (n->poll_event()) {
    }
  }
}

std::size_t NodePair::exchange() {
  ++exchanges_;
  now_ += a_->config().gossip_interval;
  a_->handle_timeout(now_);
  std::optional<Transmit> syn = a_->poll_transmit();
  // Node 0 picked random peers; the Syn is the same for all, node 1 gets it.
  while (a_->poll_transmit()) {
  }
  std::size_t bytes = 0;
  if (syn) {
    StreamExchange initiating = StreamExchange::initiate(std::move(syn->payload));
    StreamExchange responding = StreamExchange::respond();
    std::size_t carried = 0;
    run_in_process(*a_, initiating, *b_, responding, now_,
                   [&carried](ByteView packet, StreamExchange::Role) {
                     carried += packet.size();
                     return true;
                   });
    if (responding.completed()) bytes = carried;
  }
  while (a_->poll_event()) {
  }
  while (b_->poll_event()) {
  }
  return bytes;
}

}  // namespace bench
