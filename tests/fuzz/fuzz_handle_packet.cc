// Fuzz target: Node::handle_packet on a node that already holds a populated
// cluster state (scenario.h). The input is a program of operations: raw
// packets, packets built from typed fields around the node's real state (so
// the fuzzer reaches the reset, gap and limit rules, not just the parser),
// time steps and local writes, each on any Stage and from any address.
//
// After every operation: handle_packet did not throw; a reply fits in
// max_payload_size, decodes, and matches the stage; every replica's
// (last_gc_version, max_version) only grew; our own state is untouched by
// peers but for the beat of a Syn we answer; at most one drop counter moved;
// every node state is internally consistent and within the limits. At the
// end, the node still answers a valid Syn and converges with an honest peer
// (on every replica but those in the middle of a reset whose collection the
// other side does not know).
//
// Operation format: one byte whose low two bits pick the kind (0 raw packet,
// 1 typed packet, 2 time step, 3 local write); packets then take one byte
// for stage (bits 0-1), TLS peer names (bits 2-3) and sender (bits 4-7),
// and raw packets a 2-byte little-endian length before their bytes.
#include <aiocluster/aiocluster.h>
#include <google/protobuf/stubs/logging.h>

#include <limits>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "fuzz_support.h"
#include "handle_packet_ops.h"
#include "scenario.h"

namespace {

using namespace aiocluster;
using fuzz::require;

using Pairs = std::map<NodeId, std::pair<std::uint64_t, std::uint64_t>>;

Pairs versions(const Node& node) {
  Pairs out;
  for (const auto& [id, st] : node.cluster_state().nodes())
    out[id] = {st.last_gc_version(), st.max_version()};
  return out;
}

std::uint64_t drops(const Stats& s) { return s.packets_dropped(); }

// Every node state is a consistent index within the configured limits.
void check_states(const Node& node) {
  const Limits& limits = node.config().limits;
  const ClusterState& cs = node.cluster_state();
  require(cs.size() <= limits.max_nodes, "known nodes within limits.max_nodes");
  require(cs.find(node.self_id()) == &cs.self(), "self() is the node's own state");
  for (const auto& entry : cs.nodes()) {
    const NodeState& st = entry.second;  // named, not bound: lambdas below capture it
    require(st.id() == entry.first, "a node state is filed under its own id");
    require(st.size() <= limits.max_keys_per_node, "keys within limits.max_keys_per_node");
    std::size_t count = 0;
    std::uint64_t previous = 0;
    st.for_each_since(0, [&](std::string_view key, const VersionedValue& vv) {
      require(count == 0 || vv.version > previous, "versions are unique and indexed in order");
      require(vv.version <= st.max_version(), "no entry is newer than max_version");
      require(key.size() <= limits.max_key_size && vv.value.size() <= limits.max_value_size,
              "keys and values within their size limits");
      require(st.find(key) == vv, "the version index and the key map agree");
      previous = vv.version;
      ++count;
      return true;
    });
    require(count == st.size(), "every entry is in the version index");
  }
  const auto live = node.live_nodes();
  for (const auto& id : node.dead_nodes()) {
    require(std::find(live.begin(), live.end(), id) == live.end(), "no node is both live and dead");
    require(cs.find(id) != nullptr, "dead nodes are known");
  }
}

// A delta we send carries exactly what we hold.
void check_outgoing_delta(const Node& node, const Delta& delta) {
  for (const auto& nd : delta.node_deltas) {
    const NodeState* st = node.node_state(nd.node_id);
    require(st != nullptr && !st->scheduled_for_deletion(), "we only send nodes we announce");
    require(nd.last_gc_version == st->last_gc_version(),
            "a node delta carries our last_gc_version");
    require(nd.max_version && *nd.max_version <= st->max_version(),
            "a node delta's max_version is ours or less");
    for (const auto& kv : nd.key_values) {
      const std::optional<VersionedValue> vv = st->find(kv.key);
      require(vv && vv->version == kv.version && vv->value == kv.value && vv->status == kv.status,
              "a node delta's key-values are ours");
    }
  }
}

Packet decode_ours(const Node& node, const Bytes& bytes, std::string_view what) {
  require(bytes.size() <= node.config().max_payload_size, what);
  // A compressed packet (proto/README.md section 5) holds the plain one.
  const std::optional<Bytes> plain = decompress(bytes);
  DecodeResult result = decode(plain ? ByteView(*plain) : ByteView(bytes));
  require(std::holds_alternative<Packet>(result), what);
  Packet packet = std::get<Packet>(std::move(result));
  require(packet.cluster_id == node.config().cluster_id, what);
  return packet;
}

void check_reply(const Node& node, const std::optional<Reply>& reply) {
  if (!reply) return;
  const Packet packet =
      decode_ours(node, reply->payload, "a reply fits, decodes and names our cluster");
  if (const auto* synack = std::get_if<SynAck>(&packet.message)) {
    require(reply->awaits_ack, "a SynAck waits for the Ack");
    require(!synack->digest.node_digests.empty() &&
                synack->digest.node_digests.front().node_id == node.self_id(),
            "our digest opens with ourselves");
    check_outgoing_delta(node, synack->delta);
  } else if (const auto* ack = std::get_if<Ack>(&packet.message)) {
    require(!reply->awaits_ack, "an Ack ends the exchange");
    check_outgoing_delta(node, ack->delta);
  } else {
    require(std::holds_alternative<BadCluster>(packet.message) && !reply->awaits_ack,
            "the only other reply is a final BadCluster");
  }
}

struct Harness {
  Node node;
  Instant now;
  const fuzz::MemCluster& scenario;

  void packet(const Bytes& bytes, const Inbound& from) {
    const Pairs before = versions(node);
    const NodeState& self = node.cluster_state().self();
    const auto self_before =
        std::tuple(self.max_version(), self.last_gc_version(), self.size(), self.heartbeat());
    const std::uint64_t drops_before = drops(node.stats());

    const Stats stats_before = node.stats();
    Outcome outcome;
    try {
      outcome = node.handle_packet(bytes, now, from);
    } catch (...) {
      fuzz::fail("handle_packet threw");
    }

    check_reply(node, outcome.reply);
    if (outcome.dropped) {
      require(node.stats().dropped(*outcome.dropped) == stats_before.dropped(*outcome.dropped) + 1,
              "a drop's reason is the counter it moved");
    } else {
      require(drops(node.stats()) == drops_before, "an accepted packet moves no drop counter");
    }
    const Pairs after = versions(node);
    for (const auto& [id, pair] : before) {
      const auto it = after.find(id);
      require(it != after.end(), "handle_packet forgets no node");
      require(it->second >= pair, "(last_gc_version, max_version) never decreases");
    }
    // Answering a Syn beats our own heartbeat, once; nothing a peer sends
    // changes the rest of our state.
    const bool answered_syn =
        !outcome.dropped && node.stats().packets_in.syn == stats_before.packets_in.syn + 1;
    const std::uint64_t beat = answered_syn ? 1 : 0;
    require(std::tuple(self.max_version(), self.last_gc_version(), self.size(), self.heartbeat()) ==
                std::tuple(std::get<0>(self_before), std::get<1>(self_before),
                           std::get<2>(self_before), std::get<3>(self_before) + beat),
            "peers never change our own state");
    require(drops(node.stats()) - drops_before <= 1, "an input moves at most one drop counter");
    while (auto ev = node.poll_event()) {
      if (const auto* kc = std::get_if<KeyChanged>(&*ev)) {
        require(kc->node != node.self_id(), "no peer writes our keys");
      }
    }
    check_states(node);
  }

  void step(Duration by) {
    now += by;
    node.handle_timeout(now);
    while (auto tx = node.poll_transmit()) {
      const Packet p = decode_ours(node, tx->payload, "a Syn we send fits and decodes");
      require(std::holds_alternative<Syn>(p.message), "rounds send Syns");
      // As if sent as a datagram: a SynAck from that peer may answer it.
      node.handle_datagram_sent(PeerKey::of(tx->to));
    }
    while (node.poll_event()) {
    }
    check_states(node);
  }
};

// An honest peer's Syn is still answered, and after a few exchanges both ways
// the two nodes agree on every version they both track.
void check_still_works(Harness& h) {
  Node peer = h.scenario.nodes[1]->fork(1);
  auto exchange = [&](Node& a, Node& b) {
    // a opens an exchange with b.
    Rng rng(7);
    const Bytes syn =
        encode(Packet{a.config().cluster_id, Syn{a.cluster_state().digest(40'000, rng)}});
    StreamExchange initiating = StreamExchange::initiate(syn);
    StreamExchange responding = StreamExchange::respond();
    run_in_process(a, initiating, b, responding, h.now);
    require(initiating.completed() && responding.completed(),
            "a valid Syn is answered with a SynAck, and that with an Ack");
  };
  for (int i = 0; i < 3; ++i) {
    exchange(peer, h.node);
    exchange(h.node, peer);
  }
  check_states(h.node);
  for (const auto& [id, st] : h.node.cluster_state().nodes()) {
    if (id == h.node.self_id() || id == peer.self_id()) continue;  // their owners' word is final
    const NodeState* other = peer.node_state(id);
    if (other == nullptr || st.scheduled_for_deletion() || other->scheduled_for_deletion())
      continue;
    // A replica in the middle of a reset (last_gc_version above max_version)
    // takes versions up to that collection only from a sender that knows it
    // (NodeDeltaOutcome::kRejectedStale): one that does not cannot complete it.
    auto waits_for = [](const NodeState& mid_reset, const NodeState& sender) {
      return mid_reset.last_gc_version() > mid_reset.max_version() &&
             sender.last_gc_version() < mid_reset.last_gc_version();
    };
    if (waits_for(st, *other) || waits_for(*other, st)) continue;
    require(other->max_version() == st.max_version(),
            "an honest peer converges on every shared node");
  }
}

const fuzz::MemCluster& scenario() {
  static const fuzz::MemCluster c = [] {
    // Whatever a peer sends, libprotobuf must have nothing to log.
    google::protobuf::SetLogHandler(
        [](google::protobuf::LogLevel, const char*, int, const std::string& message) {
          fuzz::fail("libprotobuf logged: " + message);
        });
    return fuzz::build_scenario();
  }();
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::MemCluster& c = scenario();
  Harness h{c.nodes[0]->fork(0), c.now, c};
  fuzz::Input in({data, size});
  fuzz::PacketBuilder builder(h.node, c);
  for (int ops = 0; !in.empty() && ops < 64; ++ops) {
    const std::uint8_t op = in.byte();
    switch (op & 3) {
      case 0:
      case 1: {
        const Inbound from = fuzz::inbound(in.byte());
        if ((op & 3) == 0) {
          const std::size_t len = in.u16();
          const auto raw = in.take(len);
          h.packet(Bytes(raw.begin(), raw.end()), from);
        } else {
          h.packet(encode(builder.packet(in)), from);
        }
        break;
      }
      case 2:
        h.step(std::chrono::milliseconds(in.u16() % 4000));
        break;
      case 3: {
        const std::string key = "local-" + std::to_string(in.byte() % 4);
        h.node.set(key, std::to_string(in.byte()));
        while (h.node.poll_event()) {
        }
        break;
      }
    }
  }
  check_still_works(h);
  return 0;
}
