// Our negotiated extensions (proto/README.md) through the public Node API:
// the compact digest between nodes that announce it, the base protocol with
// anyone else, partial digests, and hostile compact digests.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "compact_digest.h"
#include "harness.h"
#include "packing.h"
#include "wire.h"

using namespace testing;

namespace {

// --- A hand-written protobuf writer, to build packets a Node never sends. ---
void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, unsigned field, unsigned wire_type) {
  put_varint(out, field << 3 | wire_type);
}
void put_bytes(std::string& out, unsigned field, const std::string& body) {
  put_tag(out, field, 2);
  put_varint(out, body.size());
  out += body;
}
void put_uint(std::string& out, unsigned field, std::uint64_t v) {
  put_tag(out, field, 0);
  put_varint(out, v);
}
void put_fixed64(std::string& out, unsigned field, std::uint64_t v) {
  put_tag(out, field, 1);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

std::string node_id_pb(const NodeId& id) {
  std::string addr;
  put_bytes(addr, 1, id.gossip_advertise_addr.host);
  put_uint(addr, 2, id.gossip_advertise_addr.port);
  std::string out;
  put_bytes(out, 1, id.name);
  put_uint(out, 2, id.generation_id);
  put_bytes(out, 3, addr);
  return out;
}

// A Syn from `sender` listing only itself in full, with `compact` as its
// compact digest body and an announcement of the compact digest.
Bytes compact_syn(const std::string& cluster_id, const NodeId& sender, const std::string& compact,
                  std::uint64_t features = 1) {
  std::string entry;
  put_bytes(entry, 1, node_id_pb(sender));
  put_uint(entry, 2, 5);  // heartbeat
  std::string digest;
  put_bytes(digest, 1, entry);
  std::string syn;
  put_bytes(syn, 2, digest);
  put_bytes(syn, 16, compact);
  std::string announcement;
  put_uint(announcement, 1, features);
  std::string packet;
  put_bytes(packet, 1, cluster_id);
  put_bytes(packet, 2, syn);
  put_bytes(packet, 16, announcement);
  return Bytes(packet.begin(), packet.end());
}

// Entries as the spec packs them: (hash gap, heartbeat << 2, max_version).
std::string packed_entries(const std::vector<std::uint64_t>& values) {
  std::string out;
  for (std::uint64_t v : values) put_varint(out, v);
  return out;
}

std::string compact_body(std::uint64_t salt, const std::string& entries) {
  std::string out;
  put_fixed64(out, 1, salt);
  if (!entries.empty()) put_bytes(out, 2, entries);
  return out;
}

// An aligned compact digest (proto/README.md section 2.3): salt,
// fingerprint and positional entries.
std::string aligned_body(std::uint64_t fingerprint, const std::string& entries) {
  std::string out;
  put_fixed64(out, 1, 7);
  put_fixed64(out, 6, fingerprint);
  put_bytes(out, 7, entries);
  return out;
}

// Where a packet carries field 16: PacketPb's own (the announcement) and the
// Syn's or SynAck's (a compact digest). A base-protocol packet has neither.
struct Field16 {
  bool announcement = false;
  bool compact_digest = false;
};

// Calls on_field(number, body) for each field of a message (body empty for varints).
template <typename F>
void walk(ByteView body, F&& on_field) {
  std::size_t i = 0;
  auto varint = [&] {
    std::uint64_t v = 0;
    int shift = 0;
    while (i < body.size()) {
      const std::uint8_t b = body[i++];
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      shift += 7;
      if (b < 0x80) break;
    }
    return v;
  };
  while (i < body.size()) {
    const std::uint64_t key = varint();
    const auto field = static_cast<unsigned>(key >> 3);
    if ((key & 7) == 0) {
      varint();
      on_field(field, ByteView{});
      continue;
    }
    REQUIRE((key & 7) == 2);
    const std::uint64_t len = varint();
    REQUIRE(len <= body.size() - i);
    on_field(field, body.subspan(i, len));
    i += len;
  }
}

Field16 field16(ByteView packet) {
  Field16 out;
  walk(packet, [&](unsigned field, ByteView body) {
    if (field == 16) out.announcement = true;
    if (field == 2 || field == 3) {
      walk(body, [&](unsigned inner, ByteView) { out.compact_digest |= inner == 16; });
    }
  });
  return out;
}

std::uint64_t total(const MemCluster& c, std::uint64_t Stats::*counter) {
  std::uint64_t sum = 0;
  for (const auto& n : c.nodes) sum += n->stats().*counter;
  return sum;
}

}  // namespace

TEST_CASE("nodes that announce the compact digest use it: about 6 bytes a member") {
  auto run = [](bool compact) {
    MemCluster c = MemCluster::ring(40, [&](Config& config) {
      config.extensions.compact_digest = compact;
      config.extensions.compression = false;  // the digest's own gain
    });
    c.run(20s);
    REQUIRE(c.converged());
    const std::uint64_t before = total(c, &Stats::bytes_out);
    c.run(10s);
    return std::pair{total(c, &Stats::bytes_out) - before, total(c, &Stats::compact_digests_out)};
  };
  const auto [compact_bytes, compact_digests] = run(true);
  const auto [base_bytes, base_digests] = run(false);
  CHECK(base_digests == 0);
  CHECK(compact_digests > 0);
  // At steady state a round is digests and empty Acks: with 40 members,
  // under a third of the bytes (each packet's own full entry, cluster id and
  // announcement weigh more in small clusters).
  CHECK(compact_bytes * 3 < base_bytes);

  // One Syn in detail: 40 members, each at most 8 bytes beside the sender's
  // own full entry, the cluster id and the announcement.
  MemCluster c = MemCluster::ring(40);
  c.run(20s);
  std::size_t syn_size = 0;
  c.on_packet = [&](ByteView packet) {
    if (syn_size == 0) syn_size = packet.size();
  };
  c.step();
  CHECK(syn_size > 0);
  CHECK(syn_size <= 39 * 8 + 120);
}

TEST_CASE("an extension node and a legacy node exchange only base-protocol packets") {
  // Node 0 with the extension, node 1 without, like Python aiocluster 1.1.0.
  MemCluster c = MemCluster::ring(2, [](Config& config) {
    config.extensions.compact_digest = config.node_id.name == "node0";
    config.extensions.compression = config.node_id.name == "node0";
  });
  std::size_t packets = 0;
  std::size_t announced = 0;
  std::size_t compact = 0;
  c.on_packet = [&](ByteView packet) {
    ++packets;
    const Field16 f = field16(packet);
    announced += f.announcement ? 1 : 0;
    compact += f.compact_digest ? 1 : 0;
  };
  c.run(15s);
  CHECK(c.converged());
  // No compact digest ever went out; node 0 announced itself in each of its
  // Syns and SynAcks (a field 1.1.0 skips) and node 1 in none.
  CHECK(compact == 0);
  const Stats& s0 = c.nodes[0]->stats();
  const Stats& s1 = c.nodes[1]->stats();
  const std::uint64_t out0 =
      s0.packets_out.syn + s0.packets_out.synack + s0.packets_out.ack + s0.packets_out.bad_cluster;
  const std::uint64_t out1 =
      s1.packets_out.syn + s1.packets_out.synack + s1.packets_out.ack + s1.packets_out.bad_cluster;
  CHECK(announced == s0.packets_out.syn + s0.packets_out.synack);
  CHECK(packets == out0 + out1);
  CHECK(s0.compact_digests_out == 0);
  CHECK(s0.packets_dropped() == 0);
  CHECK(s1.packets_dropped() == 0);
}

TEST_CASE("mixed clusters converge and agree, over many seeds") {
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    CAPTURE(seed);
    MemCluster c;
    for (int i = 0; i < 16; ++i) {
      // A ring, plus a seed that depends on the run.
      Config config = make_config(i, {(i + 1) % 16, static_cast<int>((i * seed) % 16)});
      config.extensions.compact_digest = (i + seed) % 3 != 0;
      config.extensions.compression = (i + seed) % 4 != 1;
      c.add(std::move(config), {{"k", std::to_string(i)}});
    }
    c.run(25s);
    CHECK(c.converged());
    for (std::size_t i = 0; i < c.nodes.size(); ++i) {
      CHECK(c.nodes[i]->stats().packets_dropped() == 0);
      CHECK(c.value_seen(static_cast<int>(i), static_cast<int>((i + 5) % 16), "k") ==
            std::to_string((i + 5) % 16));
    }
    CHECK(total(c, &Stats::compact_digests_out) > 0);
  }
}

TEST_CASE("partial compact digests: say so, still converge, still detect a crash") {
  // 90 members in packets of 512 bytes: neither digest form fits whole.
  MemCluster c = MemCluster::ring(90, [](Config& config) { config.max_payload_size = 512; });
  c.run(60s);
  CHECK(c.converged());
  CHECK(total(c, &Stats::partial_digests_out) > 0);
  CHECK(total(c, &Stats::compact_digests_rejected) == 0);
  c.down[7] = true;
  c.run(40s);
  for (std::size_t i = 0; i < c.nodes.size(); ++i) {
    if (i == 7) continue;
    CHECK_FALSE(c.nodes[i]->is_live(c.nodes[7]->self_id()));
  }
  // No one else was taken for dead on the way.
  CHECK(c.converged());
}

TEST_CASE("hostile compact digests are dropped and counted, never applied") {
  MemCluster c = MemCluster::ring(3);
  c.run(10s);
  REQUIRE(c.converged());
  Node& node = *c.nodes[0];
  const NodeId stranger{"stranger", 9, Address{"10.0.0.9", 7999}, ""};
  const std::size_t known = node.cluster_state().size();

  auto send = [&](const std::string& compact) {
    return node.handle_packet(compact_syn("test-cluster", stranger, compact), c.now,
                              Inbound{Stage::kStreamOpen});
  };
  const std::uint64_t rejected = node.stats().compact_digests_rejected;
  const std::vector<std::string> hostile = {
      compact_body(0, packed_entries({1, 4, 1})),                    // no salt
      compact_body(7, packed_entries({1, 4})),                       // an entry cut short
      compact_body(7, packed_entries({0, 4, 1, 0, 4, 1})),           // a hash listed twice
      compact_body(7, packed_entries({0xffffffff, 4, 1, 2, 4, 1})),  // past 2^32
      compact_body(7, std::string("\xff\xff\xff", 3)),               // a broken varint
      std::string("\x09\x01\x02", 3),                                // a salt cut short
  };
  for (const std::string& body : hostile) {
    const Outcome out = send(body);
    CHECK(out.dropped == DropReason::kMalformed);
    CHECK_FALSE(out.reply);
  }
  CHECK(node.stats().compact_digests_rejected == rejected + hostile.size());
  CHECK(node.cluster_state().size() == known);

  // More entries than max_nodes: refused before any is kept.
  std::vector<std::uint64_t> many;
  for (int i = 0; i < 20'000; ++i) many.insert(many.end(), {1, 4, 1});
  const Outcome huge = send(compact_body(7, packed_entries(many)));
  CHECK(huge.dropped == DropReason::kMalformed);
  CHECK(node.cluster_state().size() == known);

  // Hashes that name no member are not an error: they are skipped, counted,
  // and the Syn is answered.
  const std::uint64_t unresolved = node.stats().compact_entries_unresolved;
  const Outcome fine = send(compact_body(7, packed_entries({12345, 4, 1, 999, 8, 2})));
  CHECK(fine.accepted());
  CHECK(fine.reply);
  CHECK(node.stats().compact_entries_unresolved >= unresolved + 1);
  // The stranger the full entry named is known now; nothing else is.
  CHECK(node.cluster_state().size() == known + 1);
}

TEST_CASE("a node keeps its salt for several Syns, and a SynAck reuses its Syn's") {
  MemCluster c = MemCluster::ring(30);
  c.run(20s);
  REQUIRE(c.converged());
  // The salt of each compact digest, by the PacketPb field that carries it:
  // 2 a Syn, 3 a SynAck (a compact digest starts with its fixed64 salt).
  std::set<std::uint64_t> syn_salts;
  std::size_t synacks = 0;
  std::size_t synacks_reusing = 0;
  std::size_t syns = 0;
  c.on_packet = [&](ByteView packet) {
    walk(packet, [&](unsigned field, ByteView body) {
      if (field != 2 && field != 3) return;
      walk(body, [&](unsigned inner, ByteView compact) {
        if (inner != 16) return;
        REQUIRE(compact.size() >= 9);
        REQUIRE(compact[0] == 0x09);
        std::uint64_t salt = 0;
        for (int i = 8; i >= 1; --i) salt = salt << 8 | compact[static_cast<std::size_t>(i)];
        if (field == 2) {
          ++syns;
          syn_salts.insert(salt);
        } else {
          ++synacks;
          synacks_reusing += syn_salts.count(salt);
        }
      });
    });
  };
  const std::uint64_t unresolved = total(c, &Stats::compact_entries_unresolved);
  c.run(10s);
  REQUIRE(syns > 100);
  // 30 nodes, a fresh salt every 16 Syns each: far fewer salts than Syns.
  CHECK(syn_salts.size() * 8 <= syns);
  CHECK(synacks > 0);
  // All but those answering Syns sent before we looked.
  CHECK(synacks_reusing * 10 >= synacks * 9);
  // Kept salts hash the same members the same way: still converged, nothing dropped.
  CHECK(c.converged());
  CHECK(total(c, &Stats::compact_digests_rejected) == 0);
  CHECK(total(c, &Stats::compact_entries_unresolved) == unresolved);
}

TEST_CASE("nodes holding the same members send aligned digests: about 2 to 3 bytes a member") {
  auto run = [](bool aligned) {
    MemCluster c = MemCluster::ring(40, [&](Config& config) {
      config.extensions.aligned_digest = aligned;
      config.extensions.compression = false;  // the digest's own gain
    });
    c.run(20s);
    REQUIRE(c.converged());
    const std::uint64_t before = total(c, &Stats::bytes_out);
    const std::uint64_t compact_before = total(c, &Stats::compact_digests_out);
    const std::uint64_t aligned_before = total(c, &Stats::aligned_digests_out);
    const std::uint64_t mismatched = total(c, &Stats::aligned_digests_mismatched);
    c.run(10s);
    CHECK(c.converged());
    CHECK(total(c, &Stats::aligned_digests_mismatched) == mismatched);
    CHECK(total(c, &Stats::compact_digests_rejected) == 0);
    return std::tuple{total(c, &Stats::bytes_out) - before,
                      total(c, &Stats::compact_digests_out) - compact_before,
                      total(c, &Stats::aligned_digests_out) - aligned_before};
  };
  const auto [aligned_bytes, compact, aligned] = run(true);
  const auto [hashed_bytes, hashed_compact, hashed_aligned] = run(false);
  CHECK(hashed_aligned == 0);
  CHECK(hashed_compact > 0);
  // At steady state nearly every compact digest is aligned, and a round
  // costs well under two thirds of what hashed digests cost.
  CHECK(aligned * 10 >= compact * 9);
  CHECK(aligned_bytes * 3 < hashed_bytes * 2);

  // One Syn in detail: 39 members by position, at most 3 bytes each beside
  // the sender's own full entry, the cluster id, fingerprint and announcement.
  MemCluster c = MemCluster::ring(40);
  c.run(20s);
  std::size_t syn_size = 0;
  c.on_packet = [&](ByteView packet) {
    if (syn_size == 0) syn_size = packet.size();
  };
  c.step();
  CHECK(syn_size > 0);
  CHECK(syn_size <= 39 * 3 + 130);
}

TEST_CASE("a node without the aligned digest never gets one, and still gets compact ones") {
  MemCluster c = MemCluster::ring(12, [](Config& config) {
    config.extensions.aligned_digest = config.node_id.name != "node0";
  });
  c.run(30s);
  CHECK(c.converged());
  const Stats& old = c.nodes[0]->stats();
  CHECK(old.compact_digests_in > 0);
  CHECK(old.aligned_digests_in == 0);
  CHECK(old.aligned_digests_out == 0);
  // A fingerprint would have been malformed to it: none came.
  CHECK(old.compact_digests_rejected == 0);
  CHECK(old.packets_dropped() == 0);
  CHECK(total(c, &Stats::aligned_digests_out) > 0);
  CHECK(total(c, &Stats::compact_digests_rejected) == 0);
}

TEST_CASE(
    "an aligned digest on another membership covers nothing: no member is taken for unknown") {
  MemCluster c = MemCluster::ring(6, [](Config& config) { config.extensions.compression = false; });
  c.run(15s);
  REQUIRE(c.converged());
  Node& node = *c.nodes[0];
  const NodeId sender = c.nodes[1]->self_id();
  // Node deltas of the SynAck answering `syn`, by node name.
  auto answer = [&](const Bytes& syn) {
    const Outcome out = node.handle_packet(syn, c.now, Inbound{Stage::kStreamOpen});
    REQUIRE(out.accepted());
    REQUIRE(out.reply);
    const DecodeResult decoded = decode(out.reply->payload);
    const auto* packet = std::get_if<Packet>(&decoded);
    REQUIRE(packet != nullptr);
    const auto* synack = std::get_if<SynAck>(&packet->message);
    REQUIRE(synack != nullptr);
    std::set<std::string> named;
    for (const auto& nd : synack->delta.node_deltas) named.insert(nd.node_id.name);
    return named;
  };
  const std::uint64_t mismatched = node.stats().aligned_digests_mismatched;
  const std::uint64_t in = node.stats().aligned_digests_in;
  // A fingerprint no membership has, and one entry (heartbeat 3, max_version 1).
  const std::set<std::string> covered_nothing = answer(
      compact_syn("test-cluster", sender, aligned_body(12345, packed_entries({3 << 4, 1})), 5));
  CHECK(node.stats().aligned_digests_mismatched == mismatched + 1);
  CHECK(node.stats().aligned_digests_in == in + 1);
  // At most the sender itself, whose full entry claimed no key-values.
  for (const std::string& name : covered_nothing) CHECK(name == sender.name);
  // The same Syn with a hashed digest listing no one: now every member is
  // unknown to the sender, so the answer carries them (the check above can fail).
  const std::set<std::string> listed_nothing =
      answer(compact_syn("test-cluster", sender, compact_body(7, ""), 5));
  CHECK(listed_nothing.size() >= 5);
  CHECK(node.stats().compact_digests_rejected == 0);
}

TEST_CASE("malformed aligned digests are dropped and counted, never applied") {
  MemCluster c = MemCluster::ring(
      3, [](Config& config) { config.extensions.aligned_digest = config.node_id.name != "node2"; });
  c.run(10s);
  REQUIRE(c.converged());
  const NodeId stranger{"stranger", 9, Address{"10.0.0.9", 7999}, ""};
  auto send = [&](Node& node, const std::string& compact) {
    return node.handle_packet(compact_syn("test-cluster", stranger, compact, 5), c.now,
                              Inbound{Stage::kStreamOpen});
  };
  std::string without_fingerprint;
  put_fixed64(without_fingerprint, 1, 7);
  put_bytes(without_fingerprint, 7, packed_entries({8, 1}));
  std::string with_hashed = compact_body(7, packed_entries({1, 4, 1}));
  put_fixed64(with_hashed, 6, 1);
  put_bytes(with_hashed, 7, packed_entries({8, 1}));
  std::string partial;
  put_fixed64(partial, 1, 7);
  put_uint(partial, 3, 1);
  put_uint(partial, 4, 1);
  put_uint(partial, 5, 9);
  put_fixed64(partial, 6, 1);
  put_bytes(partial, 7, packed_entries({8, 1}));
  std::vector<std::uint64_t> many;
  for (int i = 0; i < 20'000; ++i) many.insert(many.end(), {8, 1});
  const std::vector<std::string> hostile = {
      without_fingerprint,
      with_hashed,
      partial,
      aligned_body(1, packed_entries({8})),             // an entry cut short
      aligned_body(1, packed_entries({8 | 4, 1})),      // a last_gc_version, then no max_version
      aligned_body(1, std::string("\xff\xff\xff", 3)),  // a broken varint
      aligned_body(1, packed_entries(many)),            // more entries than max_nodes
  };
  Node& node = *c.nodes[0];
  const std::size_t known = node.cluster_state().size();
  const std::uint64_t rejected = node.stats().compact_digests_rejected;
  const std::uint64_t aligned_in = node.stats().aligned_digests_in;
  for (const std::string& body : hostile) {
    const Outcome out = send(node, body);
    CHECK(out.dropped == DropReason::kMalformed);
    CHECK_FALSE(out.reply);
  }
  CHECK(node.stats().compact_digests_rejected == rejected + hostile.size());
  CHECK(node.stats().aligned_digests_in == aligned_in);
  CHECK(node.cluster_state().size() == known);

  // To a node without the aligned digest, a fingerprint is as malformed as
  // it is to a node that predates it.
  Node& old = *c.nodes[2];
  std::string fingerprinted = compact_body(7, packed_entries({1, 4, 1}));
  put_fixed64(fingerprinted, 6, 1);
  const Outcome out = send(old, fingerprinted);
  CHECK(out.dropped == DropReason::kMalformed);
  CHECK(old.stats().compact_digests_rejected == 1);
}

TEST_CASE("a node joining a cluster at steady state: aligned digests fall back, all converge") {
  MemCluster c = MemCluster::ring(20);
  c.run(20s);
  REQUIRE(c.converged());
  const std::uint64_t aligned = total(c, &Stats::aligned_digests_out);
  CHECK(aligned > 0);
  c.add(make_config(20, {3}), {{"cluster", "20"}});
  c.run(20s);
  CHECK(c.converged());
  for (const auto& n : c.nodes) CHECK(n->stats().packets_dropped() == 0);
  CHECK(total(c, &Stats::compact_digests_rejected) == 0);
  // Aligned again once everyone knows the new member.
  const std::uint64_t settled = total(c, &Stats::aligned_digests_out);
  c.run(5s);
  CHECK(total(c, &Stats::aligned_digests_out) > settled);
  CHECK(c.value_seen(20, 7, "cluster") == "7");
  CHECK(c.value_seen(7, 20, "cluster") == "20");
}

TEST_CASE("an Ack does not send back the nodes its SynAck just brought") {
  MemCluster c =
      MemCluster::ring(10, [](Config& config) { config.extensions.compression = false; });
  c.run(20s);
  REQUIRE(c.converged());
  // A new node whose only contact is a seed: the seed's SynAck carries a
  // compact digest it cannot read (it knows none of the members yet) and a
  // delta of all of them.
  Config config = make_config(10, {3});
  config.extensions.compression = false;
  Node& joining = c.add(std::move(config), {{"cluster", "10"}});
  std::vector<std::set<std::string>> synack_nodes;
  std::vector<std::set<std::string>> ack_nodes;
  c.on_packet = [&](ByteView bytes) {
    const DecodeResult decoded = decode(bytes);
    const auto* packet = std::get_if<Packet>(&decoded);
    REQUIRE(packet != nullptr);
    auto names = [](const Delta& delta) {
      std::set<std::string> out;
      for (const auto& nd : delta.node_deltas) out.insert(nd.node_id.name);
      return out;
    };
    if (const auto* synack = std::get_if<SynAck>(&packet->message)) {
      synack_nodes.push_back(names(synack->delta));
    }
    if (const auto* ack = std::get_if<Ack>(&packet->message))
      ack_nodes.push_back(names(ack->delta));
  };
  joining.handle_timeout(c.now);
  while (auto tx = joining.poll_transmit()) c.exchange(10, *tx);
  REQUIRE(synack_nodes.size() == 1);
  REQUIRE(ack_nodes.size() == 1);
  CHECK(synack_nodes[0].size() == 10);
  CHECK(joining.stats().compact_digests_in == 1);
  // Only what the seed lacked: the joining node itself.
  CHECK(ack_nodes[0] == std::set<std::string>{"node10"});
  CHECK(joining.cluster_state().size() == 11);
}

TEST_CASE("the fingerprint follows members added, removed, scheduled for deletion and spared") {
  // Kept as a sum as members come and go; those scheduled for deletion are
  // found by a walk only once the node says it scheduled or spared one.
  ClusterState cs(make_config(0).node_id);
  compact::FingerprintCache cache;
  std::uint64_t deletions = 0;
  auto check = [&] {
    CHECK(compact::fingerprint(cs, deletions, cache) == compact::fingerprint(cs));
  };
  check();
  for (int i = 1; i < 50; ++i) {
    cs.find_or_create(make_config(i).node_id, 1'000);
    if (i % 7 == 0) check();
  }
  check();
  for (int i = 1; i < 50; i += 5) cs.remove(make_config(i).node_id);
  check();
  cs.find(make_config(2).node_id)->schedule_for_deletion();
  cs.find(make_config(3).node_id)->schedule_for_deletion();
  ++deletions;
  check();
  cs.find_or_create(make_config(60).node_id, 1'000);  // a member more, two still scheduled
  check();
  cs.remove(make_config(3).node_id);  // a scheduled member goes
  check();
  cs.find(make_config(2).node_id)->unschedule_deletion();
  ++deletions;
  check();
  cs.remove(make_config(4).node_id);
  check();
  // A copy keeps the sum; a cache of another state is walked afresh.
  const ClusterState copy(cs);
  compact::FingerprintCache fresh;
  CHECK(compact::fingerprint(copy, 0, fresh) == compact::fingerprint(cs));
  CHECK(compact::fingerprint(cs) != compact::fingerprint(ClusterState(make_config(0).node_id)));
}

TEST_CASE("a table of member hashes is sized to the members and follows their placement") {
  // The members a Syn names, created from the last: until they are placed,
  // their positions are not those of id order.
  ClusterState from(make_config(0).node_id);
  for (int i = 1; i < 300; ++i) from.find_or_create(make_config(i).node_id, 1'000);
  Rng rng(1);
  const Bytes syn = encode(Packet{"test-cluster", Syn{from.digest(65'507, rng)}});
  ClusterState cs(make_config(0).node_id);
  wire::PacketView packet;
  REQUIRE(wire::read_packet(syn, packet));
  REQUIRE(PacketPaths::resolve(cs, packet));
  for (auto e = packet.digest.rbegin(); e != packet.digest.rend(); ++e) {
    if (e->id.state == nullptr) PacketPaths::find_or_create(cs, packet, e->id, 1'000, nullptr);
  }
  REQUIRE(cs.size() == 300);
  constexpr std::uint64_t kSalt = 77;
  compact::MemberHashes table;
  auto check = [&] {
    const compact::MemberHashes& t = compact::hashed(cs, kSalt, table);
    CHECK(t.by_hash.size() == cs.size());
    CHECK(t.by_hash.capacity() <= cs.size() + cs.size() / 8);
    CHECK(std::is_sorted(t.by_hash.begin(), t.by_hash.end(),
                         [](const auto& a, const auto& b) { return a.hash < b.hash; }));
    for (const auto& [hash, position] : t.by_hash) {
      CHECK(hash == compact::member_hash(PacketPaths::encoded_id(cs.at(position)), kSalt));
    }
  };
  check();
  PacketPaths::place_new_nodes(cs);
  check();
  // Fewer members: the table shrinks with them.
  for (int i = 1; i < 200; ++i) cs.remove(make_config(i).node_id);
  REQUIRE(cs.size() == 101);
  check();
}
