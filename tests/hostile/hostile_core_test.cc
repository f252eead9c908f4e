// Hostile input at the core level: what a broken peer, a scanner, another
// cluster or an attacker can hand Node::handle_packet. Each case checks that
// the input is refused or bounded, counted in Stats, and changes nothing it
// should not; and afterwards that the node still answers a valid Syn and its
// cluster still converges. The same cases through real sockets live with the
// drivers' tests.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <aiocluster/aiocluster.h>
#include <aiocluster/proto/aiocluster.pb.h>
#include <doctest/doctest.h>
#include <google/protobuf/stubs/logging.h>
#include <zstd.h>

#include <functional>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <variant>

#include "scenario.h"

namespace {

using namespace aiocluster;
using namespace std::chrono_literals;
using fuzz::MemCluster;

constexpr std::uint64_t kHuge = std::numeric_limits<std::uint64_t>::max();
const std::string kCluster = fuzz::kClusterId;

Address addr(int i) { return Address{"127.0.0.1", static_cast<std::uint16_t>(7000 + i)}; }

// Three converged nodes; the tests throw bad input at node 0. `tweak`
// configures node 0, or every node with `tweak_all`.
struct Fixture {
  MemCluster c;
  int probes = 0;

  explicit Fixture(const std::function<void(Config&)>& tweak = {}, bool tweak_all = false) {
    // Whatever a peer sends, libprotobuf must have nothing to log.
    google::protobuf::SetLogHandler(
        [](google::protobuf::LogLevel, const char*, int, const std::string& message) {
          FAIL("libprotobuf logged: " << message);
        });
    for (int i = 0; i < 3; ++i) {
      Config config = fuzz::scenario_config(i);
      config.marked_for_deletion_grace_period = 2h;
      config.dead_node_grace_period = 24h;
      if ((i == 0 || tweak_all) && tweak) tweak(config);
      c.add(std::move(config), {{"role", "r" + std::to_string(i)}});
    }
    c.run(15s);
    REQUIRE(c.converged());
  }

  Node& target() { return *c.nodes[0]; }
  Node& peer() { return *c.nodes[1]; }
  const Stats& stats() { return target().stats(); }

  std::optional<Reply> send(const Bytes& bytes, Stage stage, const Address& from = addr(1)) {
    std::optional<Reply> reply;
    REQUIRE_NOTHROW(reply = target().handle_packet(bytes, c.now, {stage, PeerKey::of(from)}).reply);
    if (reply) CHECK(reply->payload.size() <= target().config().max_payload_size);
    return reply;
  }
  std::optional<Reply> send(const Packet& packet, Stage stage, const Address& from = addr(1)) {
    return send(encode(packet), stage, from);
  }

  Bytes syn_of(const Node& node, const std::string& cluster_id = kCluster) {
    Rng rng(5);
    return encode(Packet{cluster_id, Syn{node.cluster_state().digest(60'000, rng)}});
  }

  // Every replica's versions and entries: equal before and after means
  // "nothing changed".
  std::string fingerprint() {
    std::string out;
    for (const auto& ns : target().snapshot().nodes) {
      out += ns.id.name + "/" + std::to_string(ns.id.generation_id) + ":" +
             std::to_string(ns.heartbeat) + ":" + std::to_string(ns.last_gc_version) + ":" +
             std::to_string(ns.max_version) + "{";
      for (const auto& [k, vv] : ns.key_values)
        out += k + "=" + vv.value + "@" + std::to_string(vv.version) + ",";
      out += "};";
    }
    return out;
  }

  std::uint64_t drops() {
    const Stats& s = stats();
    return s.packets_dropped();
  }

  std::vector<Event> events() {
    std::vector<Event> out;
    while (auto ev = target().poll_event()) out.push_back(std::move(*ev));
    return out;
  }

  // The node still answers a valid Syn, and fresh writes (on the target too,
  // unless its limits forbid one more key) spread through the whole cluster.
  void expect_healthy(bool write_on_target = true) {
    const Bytes syn = syn_of(peer());
    const auto reply = target().handle_packet(syn, c.now, {Stage::kStreamOpen}).reply;
    REQUIRE(reply);
    CHECK(reply->awaits_ack);
    const DecodeResult decoded = decode(reply->payload);
    REQUIRE(std::holds_alternative<Packet>(decoded));
    CHECK(std::get<Packet>(decoded).cluster_id == kCluster);
    CHECK(std::holds_alternative<SynAck>(std::get<Packet>(decoded).message));

    const std::string probe = "probe-" + std::to_string(++probes);
    if (write_on_target) target().set("probe", probe);
    c.nodes[2]->set("probe", probe);
    c.run(10s);
    CHECK(c.converged());
    for (int observer = 0; observer < 3; ++observer) {
      for (int owner : {0, 2}) {
        if (owner == 0 && !write_on_target) continue;
        const NodeState* st = c.nodes[static_cast<std::size_t>(observer)]->node_state(
            c.nodes[static_cast<std::size_t>(owner)]->self_id());
        REQUIRE(st != nullptr);
        CHECK(st->value("probe") == probe);
      }
    }
  }
};

NodeId fake_id(std::size_t i) {
  return NodeId{"fake-" + std::to_string(i), 1,
                Address{"10." + std::to_string(i / 65536 % 256) + "." +
                            std::to_string(i / 256 % 256) + "." + std::to_string(i % 256),
                        7946},
                ""};
}

Bytes bytes_of(const google::protobuf::MessageLite& message) {
  const std::string s = message.SerializeAsString();
  return Bytes(s.begin(), s.end());
}

}  // namespace

TEST_CASE("thousands of fake nodes in digests are capped at max_nodes and counted") {
  Fixture f([](Config& config) { config.limits.max_nodes = 2'000; });
  std::size_t sent = 0;
  for (int packet = 0; packet < 3; ++packet) {
    Digest digest;
    for (int i = 0; i < 1'500; ++i)
      digest.node_digests.push_back(NodeDigest{fake_id(sent++), 7, 0, 3});
    const Bytes syn = encode(Packet{kCluster, Syn{digest}});
    REQUIRE(syn.size() <= f.target().config().max_payload_size);
    const auto reply = f.send(syn, Stage::kStreamOpen);
    REQUIRE(reply);  // answered, within max_payload_size (checked by send)
  }
  CHECK(f.target().cluster_state().size() == 2'000);
  CHECK(f.stats().nodes_refused == sent - (2'000 - 3));
  // A node id beyond limits.max_node_id_size is refused even below the cap.
  Fixture g;
  NodeId huge = fake_id(1);
  huge.name = std::string(2'000, 'x');
  g.send(Packet{kCluster, Syn{Digest{{NodeDigest{huge, 1, 0, 1}}}}}, Stage::kStreamOpen);
  CHECK(g.target().node_state(huge) == nullptr);
  CHECK(g.stats().nodes_refused == 1);
  const Delta delta{{NodeDelta{huge, 0, 0, {{"k", "v", 1, {}}}, 1}}};
  g.send(Packet{kCluster, Ack{delta}}, Stage::kStreamAck);
  CHECK(g.target().node_state(huge) == nullptr);
  CHECK(g.stats().rejected_limit == 1);

  // The fake nodes never become live, so they do not multiply our traffic:
  // each round still sends at most gossip_count Syns, one to a dead node and
  // one to a seed.
  for (int round = 0; round < 5; ++round) {
    f.c.now += 1s;
    f.target().handle_timeout(f.c.now);
    std::size_t syns = 0;
    while (auto tx = f.target().poll_transmit()) {
      ++syns;
      CHECK(tx->payload.size() <= f.target().config().max_payload_size);
      f.c.exchange(0, *tx);
    }
    CHECK(syns <= f.target().config().gossip_count + 2);
  }
  CHECK(f.target().live_nodes().size() == 3);
  f.expect_healthy();
  g.expect_healthy();
}

TEST_CASE("a delta from the future is rejected as a gap and changes nothing") {
  Fixture f;
  const NodeId peer = f.peer().self_id();
  const std::uint64_t max = f.target().node_state(peer)->max_version();
  const std::string before = f.fingerprint();
  for (const std::uint64_t from : {max + 1, max + 1'000, kHuge - 1}) {
    const Delta delta{{NodeDelta{peer, from, 0, {{"role", "forged", from + 1, {}}}, from + 1}}};
    CHECK_FALSE(f.send(Packet{kCluster, Ack{delta}}, Stage::kStreamAck));
  }
  CHECK(f.stats().rejected_gap == 3);
  CHECK(f.fingerprint() == before);
  CHECK(f.events().empty());
  // A node nobody knows cannot start anywhere but at version 0.
  const Delta unknown{{NodeDelta{fake_id(1), 5, 0, {{"k", "v", 6, {}}}, 6}}};
  CHECK_FALSE(f.send(Packet{kCluster, Ack{unknown}}, Stage::kStreamAck));
  CHECK(f.stats().rejected_gap == 4);
  CHECK(f.target().node_state(fake_id(1)) == nullptr);
  f.expect_healthy();
}

TEST_CASE("a peer claiming to be us changes nothing of ours") {
  Fixture f;
  const NodeId self = f.target().self_id();
  const NodeState& mine = f.target().cluster_state().self();
  const auto before =
      std::tuple(mine.heartbeat(), mine.max_version(), mine.last_gc_version(), mine.size());
  const std::optional<std::string> role = f.target().get("role");

  // Our id in a digest, with heartbeat and versions far ahead.
  const Digest digest{{NodeDigest{self, kHuge, kHuge, kHuge}}};
  REQUIRE(f.send(Packet{kCluster, Syn{digest}}, Stage::kStreamOpen));
  // Our id in deltas: a plain update, and a reset that would wipe us.
  const Delta delta{
      {NodeDelta{self, 0, 0, {{"role", "forged", 1, {}}, {"extra", "x", 2, {}}}, 2},
       NodeDelta{self, 0, kHuge - 5, {{"role", "forged", kHuge - 4, {}}}, kHuge - 4}}};
  CHECK_FALSE(f.send(Packet{kCluster, Ack{delta}}, Stage::kStreamAck));
  f.c.now += 1s;
  f.target().handle_timeout(f.c.now);  // puts Syns in flight for the SynAck below
  while (auto tx = f.target().poll_transmit()) {
    f.target().handle_datagram_sent(PeerKey::of(tx->to));
    const auto reply = f.send(Packet{kCluster, SynAck{digest, delta}}, Stage::kDatagram, tx->to);
    CHECK(reply);  // an Ack: the exchange goes on, our state does not move
  }
  // Our own beats only: the Syn we answered and the round we ran.
  CHECK(std::tuple(mine.heartbeat(), mine.max_version(), mine.last_gc_version(), mine.size()) ==
        std::tuple(std::get<0>(before) + 2, std::get<1>(before), std::get<2>(before),
                   std::get<3>(before)));
  CHECK(f.target().get("role") == role);
  CHECK_FALSE(f.target().get("extra"));
  for (const Event& ev : f.events()) {
    if (const auto* kc = std::get_if<KeyChanged>(&ev)) CHECK(kc->node != self);
  }
  // Our name at another address or generation is another node, not us.
  NodeId impostor = self;
  impostor.generation_id += 1;
  f.send(
      Packet{kCluster, Ack{Delta{{NodeDelta{impostor, 0, 0, {{"role", "impostor", 1, {}}}, 1}}}}},
      Stage::kStreamAck);
  CHECK(f.target().get("role") == role);
  REQUIRE(f.target().node_state(impostor) != nullptr);
  CHECK(f.target().node_state(impostor) != &mine);
  f.expect_healthy();
}

TEST_CASE("valid protobuf of the wrong shape is dropped and counted") {
  Fixture f;
  const std::string before = f.fingerprint();
  std::vector<std::pair<std::string, Bytes>> cases;

  NodeIdPb node_id;
  node_id.set_name("node-9");
  node_id.set_generation_id(5);
  node_id.mutable_gossip_advertise_addr()->set_host("10.0.0.9");
  node_id.mutable_gossip_advertise_addr()->set_port(9);
  cases.emplace_back("a NodeIdPb", bytes_of(node_id));
  DigestPb digest;
  *digest.add_node_digests()->mutable_node_id() = node_id;
  cases.emplace_back("a DigestPb", bytes_of(digest));
  KeyValueUpdatePb kv;
  kv.set_key("k");
  kv.set_version(3);
  cases.emplace_back("a KeyValueUpdatePb", bytes_of(kv));
  // The syn member sent as a varint instead of a message.
  cases.emplace_back("a oneof member of the wrong wire type", Bytes{0x0a, 0x01, 'x', 0x10, 0x01});
  // A oneof member from the future, alone.
  cases.emplace_back("an unknown oneof member", Bytes{0x0a, 0x01, 'x', 0x32, 0x00});
  {
    PacketPb p;
    p.set_cluster_id(kCluster);
    auto* nd = p.mutable_syn()->mutable_digest()->add_node_digests();
    *nd->mutable_node_id() = node_id;
    nd->mutable_node_id()->mutable_gossip_advertise_addr()->set_port(70'000);
    cases.emplace_back("a port above 65535", bytes_of(p));
  }
  {
    PacketPb p;
    p.set_cluster_id(kCluster);
    auto* nd = p.mutable_ack()->mutable_delta()->add_node_deltas();
    *nd->mutable_node_id() = node_id;
    auto* bad = nd->add_key_values();
    bad->set_key("k");
    bad->set_version(1);
    bad->set_status(static_cast<VersionStatusEnumPb>(7));
    cases.emplace_back("an unknown key status", bytes_of(p));
  }
  {
    PacketPb p;
    p.set_cluster_id(kCluster);
    auto* nd = p.mutable_ack()->mutable_delta()->add_node_deltas();
    *nd->mutable_node_id() = node_id;
    auto* bad = nd->add_key_values();
    bad->set_key(std::string("\xff\xfe", 2));
    bad->set_version(1);
    cases.emplace_back("a key that is not UTF-8", bytes_of(p));
  }
  // Unknown groups nested far deeper than any parser stack should go.
  cases.emplace_back("deeply nested unknown groups", Bytes(50'000, 0x33));
  // A length prefix running past the end.
  cases.emplace_back("a length past the end", Bytes{0x0a, 0x7f, 'x'});

  for (const auto& one : cases) {
    CAPTURE(one.first);
    for (Stage stage :
         {Stage::kDatagram, Stage::kStreamOpen, Stage::kStreamAck, Stage::kStreamReply}) {
      const std::uint64_t drops = f.drops();
      CHECK_FALSE(f.send(one.second, stage));
      CHECK(f.drops() == drops + 1);
    }
  }
  CHECK(f.fingerprint() == before);
  CHECK(f.events().empty());
  f.expect_healthy();
}

TEST_CASE("oversized packets are dropped unread, whatever they hold") {
  Fixture f;
  const std::string before = f.fingerprint();
  const std::size_t max = f.target().config().max_inbound_payload_size;
  // A valid Syn with padding after it, one byte past the inbound limit.
  Bytes padded = f.syn_of(f.peer());
  padded.resize(max + 1, 0);
  for (Stage stage : {Stage::kDatagram, Stage::kStreamOpen}) CHECK_FALSE(f.send(padded, stage));
  CHECK_FALSE(f.send(Bytes(16 * 1024 * 1024, 0x0a), Stage::kStreamOpen));
  CHECK(f.stats().dropped_oversized == 3);
  // Exactly at the limit it is read (and here found malformed), and counted
  // as larger than what this node would send.
  CHECK_FALSE(f.send(Bytes(max, 0xff), Stage::kStreamOpen));
  CHECK(f.stats().dropped_malformed == 1);
  CHECK(f.stats().packets_in_above_max_payload == 1);
  CHECK(f.fingerprint() == before);
  f.expect_healthy();
}

// zstd frames (proto/README.md section 5) behind the compression marker,
// written by zstd itself.
Bytes zstd_packet(ByteView plain, int level = 1) {
  Bytes out(1 + ZSTD_compressBound(plain.size()));
  out[0] = 0xB7;
  const std::size_t n =
      ZSTD_compress(out.data() + 1, out.size() - 1, plain.data(), plain.size(), level);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(1 + n);
  return out;
}

TEST_CASE("a decompression bomb is refused before it is inflated") {
  Fixture f;
  const std::string before = f.fingerprint();
  const std::uint64_t decompressed = f.stats().packets_decompressed;  // from its peers
  // 64 MiB of zeros squeezed into a few kilobytes, and one just past the
  // inbound limit in a few dozen bytes: both declare their size, and both
  // are refused on it, before any byte is inflated.
  const Bytes huge = zstd_packet(Bytes(std::size_t{64} << 20, 0));
  const Bytes just_over =
      zstd_packet(Bytes(f.target().config().max_inbound_payload_size + 1, 0x0a));
  CHECK(huge.size() < 16 * 1024);
  CHECK(just_over.size() < 200);
  for (Stage stage : {Stage::kDatagram, Stage::kStreamOpen}) {
    CHECK_FALSE(f.send(huge, stage));
    CHECK_FALSE(f.send(just_over, stage));
  }
  CHECK(f.stats().dropped_decompress_oversized == 4);
  // The same bytes as a valid Syn wrapped twice: compression does not nest.
  CHECK_FALSE(f.send(zstd_packet(zstd_packet(f.syn_of(f.peer()))), Stage::kStreamOpen));
  CHECK(f.stats().dropped_malformed == 1);
  CHECK(f.stats().packets_decompressed == decompressed + 1);
  // Garbage behind the marker.
  CHECK_FALSE(f.send(Bytes{0xB7, 0x28, 0xB5, 0x2F, 0xFD, 0xff, 0xff}, Stage::kStreamOpen));
  CHECK(f.stats().dropped_decompress_malformed == 1);
  CHECK(f.fingerprint() == before);
  f.expect_healthy();
}

TEST_CASE("every truncation of a real exchange is harmless") {
  Fixture f;
  f.peer().set("fresh", std::string(300, 'f'));  // so the deltas carry key-values
  // A whole exchange initiated by the peer, and one by the target, captured.
  Node peer_copy = f.peer().fork(1);
  Node target_copy = f.target().fork(2);
  // Each packet of a whole exchange, as it went over the wire.
  auto capture = [&](Node& initiator, Node& responder, Bytes syn) {
    std::vector<Bytes> packets;
    StreamExchange initiating = StreamExchange::initiate(std::move(syn));
    StreamExchange responding = StreamExchange::respond();
    run_in_process(initiator, initiating, responder, responding, f.c.now,
                   [&](ByteView packet, StreamExchange::Role) {
                     packets.emplace_back(packet.begin(), packet.end());
                     return true;
                   });
    REQUIRE(initiating.completed());
    return packets;
  };
  const std::vector<Bytes> by_peer = capture(peer_copy, target_copy, f.syn_of(peer_copy));
  REQUIRE(by_peer.size() == 3);
  const Bytes& syn = by_peer[0];
  const Bytes& ack = by_peer[2];
  Node peer_copy2 = f.peer().fork(3);
  Node target_copy2 = f.target().fork(4);
  const Bytes synack_to_target = capture(target_copy2, peer_copy2, f.syn_of(f.target())).at(1);
  using Pairs = std::map<NodeId, std::pair<std::uint64_t, std::uint64_t>>;
  auto versions = [&] {
    Pairs out;
    for (const auto& [id, st] : f.target().cluster_state().nodes())
      out[id] = {st.last_gc_version(), st.max_version()};
    return out;
  };
  for (const auto& [bytes, stage] :
       {std::pair{syn, Stage::kStreamOpen}, std::pair{ack, Stage::kStreamAck},
        std::pair{synack_to_target, Stage::kStreamReply}}) {
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
      CAPTURE(cut);
      const Pairs before = versions();
      const std::uint64_t drops = f.drops();
      const auto reply =
          f.send(Bytes(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut)), stage);
      if (reply) CHECK(std::holds_alternative<Packet>(decode(reply->payload)));
      CHECK(f.drops() <= drops + 1);
      const Pairs after = versions();
      for (const auto& [id, pair] : before) {
        REQUIRE(after.contains(id));
        CHECK(after.at(id) >= pair);
      }
    }
  }
  CHECK(f.stats().dropped_malformed > 0);
  f.events();
  f.expect_healthy();
}

TEST_CASE("a wrong cluster id is answered with BadCluster and changes nothing") {
  Fixture f;
  const std::string before = f.fingerprint();
  const Digest digest{{NodeDigest{fake_id(1), 50, 0, 9}}};
  const Delta delta{{NodeDelta{fake_id(1), 0, 0, {{"k", "v", 1, {}}}, 1}}};
  for (const std::string& other : {std::string("other-cluster"), std::string(), kCluster + " "}) {
    CAPTURE(other);
    for (Stage stage : {Stage::kStreamOpen, Stage::kDatagram}) {
      const auto reply = f.send(Packet{other, Syn{digest}}, stage, Address{"10.1.1.1", 1});
      REQUIRE(reply);
      CHECK_FALSE(reply->awaits_ack);
      const Packet answer = std::get<Packet>(decode(reply->payload));
      CHECK(answer.cluster_id == kCluster);
      CHECK(std::holds_alternative<BadCluster>(answer.message));
    }
    CHECK_FALSE(f.send(Packet{other, SynAck{digest, delta}}, Stage::kStreamReply));
    CHECK_FALSE(f.send(Packet{other, Ack{delta}}, Stage::kStreamAck));
  }
  CHECK(f.stats().dropped_wrong_cluster == 12);
  CHECK(f.stats().packets_out.bad_cluster == 6);
  // A BadCluster reply ends our exchange and changes nothing either.
  CHECK_FALSE(f.send(Packet{"other-cluster", BadCluster{}}, Stage::kStreamReply));
  CHECK(f.fingerprint() == before);
  CHECK(f.target().node_state(fake_id(1)) == nullptr);
  CHECK(f.events().empty());
  f.expect_healthy();
}

TEST_CASE("messages out of place are dropped and counted, on every stage") {
  Fixture f;
  const Address stranger{"10.2.2.2", 2};
  const Bytes syn = f.syn_of(f.peer());
  const Bytes synack = encode(Packet{kCluster, SynAck{}});
  const Bytes ack = encode(Packet{kCluster, Ack{}});
  const Bytes bad = encode(Packet{kCluster, BadCluster{}});
  enum class Want { kReply, kAccepted, kOutOfPlace };
  struct Row {
    Stage stage;
    const Bytes* bytes;
    Want want;
  };
  const Row rows[] = {
      {Stage::kStreamOpen, &syn, Want::kReply},
      {Stage::kStreamOpen, &synack, Want::kOutOfPlace},
      {Stage::kStreamOpen, &ack, Want::kOutOfPlace},
      {Stage::kStreamOpen, &bad, Want::kOutOfPlace},
      {Stage::kStreamAck, &syn, Want::kOutOfPlace},
      {Stage::kStreamAck, &synack, Want::kOutOfPlace},
      {Stage::kStreamAck, &ack, Want::kAccepted},
      {Stage::kStreamAck, &bad, Want::kOutOfPlace},
      {Stage::kStreamReply, &syn, Want::kOutOfPlace},
      {Stage::kStreamReply, &synack, Want::kReply},
      {Stage::kStreamReply, &ack, Want::kOutOfPlace},
      {Stage::kStreamReply, &bad, Want::kAccepted},
      {Stage::kDatagram, &syn, Want::kReply},
      {Stage::kDatagram, &synack, Want::kOutOfPlace},
      {Stage::kDatagram, &ack, Want::kOutOfPlace},
      {Stage::kDatagram, &bad, Want::kOutOfPlace},
  };
  for (const Row& row : rows) {
    CAPTURE(static_cast<int>(row.stage));
    CAPTURE(row.bytes->size());
    // The datagram rows come from an address with no exchange in flight.
    const Address from = row.stage == Stage::kDatagram && row.bytes != &syn ? stranger : addr(1);
    const std::uint64_t out_of_place = f.stats().dropped_out_of_place;
    const auto reply = f.send(*row.bytes, row.stage, from);
    CHECK(reply.has_value() == (row.want == Want::kReply));
    CHECK(f.stats().dropped_out_of_place == out_of_place + (row.want == Want::kOutOfPlace ? 1 : 0));
  }

  // Datagrams: a SynAck counts only from an address we sent a Syn to, once,
  // and before the exchange timeout.
  f.c.now += 1s;
  f.target().handle_timeout(f.c.now);
  const auto tx = f.target().poll_transmit();
  REQUIRE(tx);
  f.target().handle_datagram_sent(PeerKey::of(tx->to));
  while (f.target().poll_transmit()) {
  }
  const std::uint64_t before = f.stats().dropped_out_of_place;
  CHECK(f.send(synack, Stage::kDatagram, tx->to));
  CHECK_FALSE(f.send(synack, Stage::kDatagram, tx->to));  // a replay
  CHECK(f.stats().dropped_out_of_place == before + 1);
  f.c.now += 1s;
  f.target().handle_timeout(f.c.now);
  const auto late = f.target().poll_transmit();
  REQUIRE(late);
  f.target().handle_datagram_sent(PeerKey::of(late->to));
  while (f.target().poll_transmit()) {
  }
  f.c.now += f.target().config().exchange_timeout;
  CHECK_FALSE(f.send(synack, Stage::kDatagram, late->to));
  // An Ack counts only after our SynAck to that address, once.
  REQUIRE(f.send(syn, Stage::kDatagram, stranger));
  CHECK_FALSE(f.send(ack, Stage::kDatagram, stranger));
  CHECK_FALSE(f.send(ack, Stage::kDatagram, stranger));
  CHECK(f.stats().dropped_out_of_place == before + 3);
  f.events();
  f.expect_healthy();
}

TEST_CASE("pending datagram exchanges are capped and evictions counted") {
  Fixture f([](Config& config) { config.limits.max_pending_exchanges = 16; });
  const Bytes syn = f.syn_of(f.peer());
  for (int i = 0; i < 40; ++i) {
    // Later Syns expire later, so the oldest are the ones evicted.
    f.c.now += 1ms;
    REQUIRE(
        f.send(syn, Stage::kDatagram, Address{"10.3.3.3", static_cast<std::uint16_t>(1000 + i)}));
  }
  CHECK(f.stats().exchanges_evicted == 40 - 16);
  const Bytes ack = encode(Packet{kCluster, Ack{}});
  const std::uint64_t before = f.stats().dropped_out_of_place;
  f.send(ack, Stage::kDatagram, Address{"10.3.3.3", 1000});  // evicted
  CHECK(f.stats().dropped_out_of_place == before + 1);
  f.send(ack, Stage::kDatagram, Address{"10.3.3.3", 1039});  // still pending
  CHECK(f.stats().dropped_out_of_place == before + 1);
  f.expect_healthy();
}

TEST_CASE("key-value limits of replicas are enforced and counted") {
  Fixture f([](Config& config) {
    config.limits.max_keys_per_node = 4;
    config.limits.max_key_size = 16;
    config.limits.max_value_size = 64;
  });
  const NodeId ghost = fake_id(7);
  // More keys in one node delta than a node may hold: refused whole.
  NodeDelta many{ghost, 0, 0, {}, 7};
  for (std::uint64_t v = 1; v <= 7; ++v)
    many.key_values.push_back({"k" + std::to_string(v), "v", v, {}});
  f.send(Packet{kCluster, Ack{Delta{{many}}}}, Stage::kStreamAck);
  CHECK(f.stats().rejected_limit == 1);
  CHECK(f.target().node_state(ghost) == nullptr);
  // Three keys, then three more: the replica stops at four, complete up to
  // the last one it kept.
  many.key_values.resize(3);
  many.max_version = 3;
  f.send(Packet{kCluster, Ack{Delta{{many}}}}, Stage::kStreamAck);
  NodeDelta more{ghost, 3, 0, {{"k4", "v", 4, {}}, {"k5", "v", 5, {}}, {"k6", "v", 6, {}}}, 6};
  f.send(Packet{kCluster, Ack{Delta{{more}}}}, Stage::kStreamAck);
  CHECK(f.stats().rejected_limit == 2);
  REQUIRE(f.target().node_state(ghost) != nullptr);
  CHECK(f.target().node_state(ghost)->size() == 4);
  CHECK(f.target().node_state(ghost)->max_version() == 4);
  // Oversized keys and values refuse the whole node delta.
  const NodeId other = fake_id(8);
  f.send(Packet{kCluster,
                Ack{Delta{{NodeDelta{other, 0, 0, {{std::string(17, 'k'), "v", 1, {}}}, 1},
                           NodeDelta{other, 0, 0, {{"k", std::string(65, 'v'), 1, {}}}, 1}}}}},
         Stage::kStreamAck);
  CHECK(f.stats().rejected_malformed == 2);
  CHECK(f.target().node_state(other) == nullptr);
  // Versions out of order, repeated, or beyond the node delta's max_version.
  f.send(
      Packet{kCluster, Ack{Delta{{NodeDelta{other, 0, 0, {{"a", "", 2, {}}, {"b", "", 1, {}}}, 2},
                                  NodeDelta{other, 0, 0, {{"a", "", 2, {}}, {"b", "", 2, {}}}, 2},
                                  NodeDelta{other, 0, 0, {{"a", "", 9, {}}}, 3}}}}},
      Stage::kStreamAck);
  CHECK(f.stats().rejected_malformed == 5);
  CHECK(f.target().node_state(other) == nullptr);
  // The application is held to the same limits, and to UTF-8.
  CHECK_THROWS_AS(f.target().set(std::string(17, 'k'), "v"), std::invalid_argument);
  CHECK_THROWS_AS(f.target().set("k", std::string(65, 'v')), std::invalid_argument);
  CHECK_THROWS_AS(f.target().set("k", "\xc3\x28"), std::invalid_argument);
  for (int i = 0; i < 3; ++i) f.target().set("own" + std::to_string(i), "v");  // with "role": four
  CHECK_THROWS_AS(f.target().set("one-too-many", "v"), std::invalid_argument);
  f.target().set("own0", "rewritten");  // an existing key is fine
  f.target().remove("own2");            // so is a tombstone
  CHECK(f.target().get("own0") == "rewritten");
  f.events();
  f.expect_healthy(false);
}

TEST_CASE("a key-value too large for any packet is refused at the source") {
  // A UDP-sized packet with the default max_value_size of 60,000: a value
  // that no packet can carry would stall this node's replication for good.
  Fixture f([](Config& config) { config.max_payload_size = 1'400; }, true);
  CHECK_THROWS_AS(f.target().set("big", std::string(1'400, 'x')), std::invalid_argument);
  CHECK_THROWS_AS(f.target().set_with_ttl("big", std::string(1'400, 'x')), std::invalid_argument);
  const std::string fits(1'200, 'y');
  f.target().set("fits", fits);
  f.c.run(5s);
  for (int i = 1; i < 3; ++i) {
    const NodeState* st = f.c.nodes[static_cast<std::size_t>(i)]->node_state(f.target().self_id());
    REQUIRE(st != nullptr);
    CHECK(st->value("fits") == fits);
  }
  f.expect_healthy();
}
