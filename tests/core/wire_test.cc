// The canonical reader (core/src/wire.h) at its edges: it must accept exactly
// what the generated serializer writes and hand everything else to the
// generated parser, so decode() always gives decode_reference()'s answer.
#include "wire.h"

#include <doctest/doctest.h>

#include <string>

#include "harness.h"

using namespace testing;

namespace {

Packet ack_with(std::vector<KeyValueUpdate> kvs, std::uint64_t generation = 1) {
  NodeDelta nd{NodeId{"n", generation, Address{"h", 1}, ""}, 0, 0, std::move(kvs), std::nullopt};
  return Packet{"c", Ack{Delta{{nd}}}};
}

// A length-delimited field (tag, one-byte length, body).
Bytes field(std::uint8_t tag, const Bytes& body) {
  REQUIRE(body.size() < 128);
  Bytes out = {tag, static_cast<std::uint8_t>(body.size())};
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// decode() agrees with the generated parser, and the reader takes the bytes
// exactly when they are canonical (what encode() writes).
void check_agrees(const Bytes& bytes, bool canonical) {
  CAPTURE(bytes.size());
  CHECK(decode(bytes) == decode_reference(bytes));
  wire::PacketView view;
  CHECK(wire::read_packet(bytes, view) == canonical);
}

}  // namespace

TEST_CASE("varints of every width read in place, and over-long forms go to the parser") {
  std::vector<std::uint64_t> values = {1, 127, 128, 16'383, 16'384, UINT64_MAX};
  for (int bits = 14; bits < 64; bits += 7) {
    values.push_back((std::uint64_t{1} << bits) - 1);
    values.push_back(std::uint64_t{1} << bits);
  }
  for (const std::uint64_t v : values) {
    CAPTURE(v);
    // In a generation id (read from ten bytes of context or fewer) and in a
    // key-value's version (at the end of its body).
    const Packet p = ack_with({KeyValueUpdate{"k", "v", v, KeyStatus::kSet}}, v);
    const Bytes bytes = encode(p);
    check_agrees(bytes, true);
    REQUIRE(std::holds_alternative<Packet>(decode(bytes)));
    CHECK(std::get<Packet>(decode(bytes)) == p);
  }
  // An Ack whose one key-value has version 7 written over-long, in two and
  // in ten bytes: protobuf reads both; the reader defers to it.
  const Bytes id = wire::encode_node_id(NodeId{"n", 1, Address{"h", 1}, ""});
  for (const Bytes& seven :
       {Bytes{0x87, 0x00}, Bytes{0x87, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}}) {
    const Bytes kv = concat({Bytes{0x0a, 0x01, 'k', 0x18}, seven});
    const Bytes node_delta = concat({field(0x0a, id), field(0x22, kv)});
    const Bytes packet = field(0x22, field(0x1a, field(0x0a, node_delta)));
    check_agrees(packet, false);
    REQUIRE(std::holds_alternative<Packet>(decode(packet)));
    const Packet read = std::get<Packet>(decode(packet));
    CHECK(std::get<Ack>(read.message).delta.node_deltas.at(0).key_values.at(0).version == 7);
  }
}

TEST_CASE("text of every short length, with a byte beyond ASCII anywhere, reads as protobuf's") {
  for (std::size_t length = 1; length <= 24; ++length) {
    for (std::size_t at = 0; at <= length; ++at) {
      std::string key(length, 'k');
      if (at < length) key[at] = static_cast<char>(0xc3);  // a lead byte with no continuation
      CAPTURE(length);
      CAPTURE(at);
      const Bytes bytes = encode(ack_with({KeyValueUpdate{key, "v", 1, KeyStatus::kSet}}));
      check_agrees(bytes, at == length);
      // Completed (é), the same text is valid UTF-8 and reads in place.
      if (at + 1 < length) {
        key[at + 1] = static_cast<char>(0xa9);
        check_agrees(encode(ack_with({KeyValueUpdate{key, "v", 1, KeyStatus::kSet}})), true);
      }
    }
  }
}

TEST_CASE("key-values at the edges of the reader's short path read as protobuf's") {
  // The short path takes a key and a value of 1 to 127 ASCII bytes and a
  // version of one or two bytes; anything else takes the general one.
  for (const std::size_t length : {1, 126, 127, 128, 200}) {
    const std::string text(length, 'x');
    for (const KeyStatus status :
         {KeyStatus::kSet, KeyStatus::kDeleted, KeyStatus::kDeleteAfterTtl}) {
      for (const std::uint64_t version : {1, 127, 128, 16'383, 16'384}) {
        CAPTURE(length);
        CAPTURE(version);
        for (const KeyValueUpdate& kv : {KeyValueUpdate{text, "v", version, status},
                                         KeyValueUpdate{"k", text, version, status},
                                         KeyValueUpdate{text, "", version, status}}) {
          const Packet p = ack_with({kv});
          const Bytes bytes = encode(p);
          check_agrees(bytes, true);
          REQUIRE(std::holds_alternative<Packet>(decode(bytes)));
          CHECK(std::get<Packet>(decode(bytes)) == p);
        }
      }
    }
  }
  // Beyond ASCII in the value: valid UTF-8 reads in place, a broken sequence
  // is the parser's.
  check_agrees(encode(ack_with({KeyValueUpdate{"k", "caf\xc3\xa9", 1, KeyStatus::kSet}})), true);
  check_agrees(encode(ack_with({KeyValueUpdate{"k", "caf\xc3", 1, KeyStatus::kSet}})), false);
  // After a key and a value: a zero version written out, an over-long one,
  // a status of 0 written out, bytes after the version. None is canonical.
  const Bytes id = wire::encode_node_id(NodeId{"n", 1, Address{"h", 1}, ""});
  for (const Bytes& tail :
       {Bytes{0x18, 0x00}, Bytes{0x18, 0x87, 0x00}, Bytes{0x18, 0x07, 0x20, 0x00},
        Bytes{0x18, 0x87, 0x01, 0x20, 0x00}, Bytes{0x18, 0x07, 0x28, 0x01}}) {
    CAPTURE(tail.size());
    const Bytes kv = concat({Bytes{0x0a, 0x01, 'k', 0x12, 0x01, 'v'}, tail});
    const Bytes node_delta = concat({field(0x0a, id), field(0x22, kv)});
    check_agrees(field(0x22, field(0x1a, field(0x0a, node_delta))), false);
  }
}

TEST_CASE("valid packets in another form are the generated parser's, and a Node still answers") {
  // A Syn whose digest entry writes heartbeat 0 explicitly (proto3 leaves it
  // out), and one with the entry's fields in reverse order: protobuf reads
  // both as the same packet.
  const NodeId stranger = make_config(5).node_id;
  const Packet syn{"test-cluster", Syn{Digest{{NodeDigest{stranger, 0, 0, 3}}}}};
  const Bytes id = field(0x0a, wire::encode_node_id(stranger));
  const Bytes cluster =
      field(0x0a, Bytes{'t', 'e', 's', 't', '-', 'c', 'l', 'u', 's', 't', 'e', 'r'});
  auto syn_with = [&](const Bytes& entry) {
    return concat({cluster, field(0x12, field(0x12, field(0x0a, entry)))});
  };
  const Bytes canonical = syn_with(concat({id, Bytes{0x20, 0x03}}));
  CHECK(canonical == encode(syn));
  check_agrees(canonical, true);
  for (const Bytes& other : {syn_with(concat({id, Bytes{0x10, 0x00, 0x20, 0x03}})),
                             syn_with(concat({Bytes{0x20, 0x03}, id}))}) {
    check_agrees(other, false);
    REQUIRE(std::holds_alternative<Packet>(decode(other)));
    CHECK(std::get<Packet>(decode(other)) == syn);
  }
  const Bytes explicit_zero = syn_with(concat({id, Bytes{0x10, 0x00, 0x20, 0x03}}));

  Node node(make_config(0), t0(), 1);
  const auto reply = node.handle_packet(explicit_zero, t0(), {Stage::kStreamOpen}).reply;
  REQUIRE(reply.has_value());
  CHECK(reply->awaits_ack);
  CHECK(node.cluster_state().find(stranger) != nullptr);
  CHECK(node.stats().dropped_malformed == 0);
}

TEST_CASE("a key-value body is stored as it arrived and sent on unchanged") {
  ClusterState sender(make_config(0).node_id);
  sender.self().set("key", "value", t0());
  sender.self().set_with_ttl("lease", "held", t0());
  sender.self().remove("key", t0());
  const Delta delta = sender.delta_for(
      Digest{}, [](std::size_t n) { return n + 16; }, 65'507, *std::make_unique<Rng>(1));
  ClusterState relay(make_config(1).node_id);
  relay.apply(delta, t0(), {}, [](const NodeId&, KeyChange) {});
  Rng rng(1);
  const Delta again = relay.delta_for(
      Digest{}, [](std::size_t n) { return n + 16; }, 65'507, rng);
  // The relay's delta (its own node has nothing to send) carries the
  // sender's key-values, byte for byte.
  REQUIRE(again.node_deltas.size() == 1);
  const NodeDelta& relayed = again.node_deltas[0];
  CHECK(relayed.node_id == sender.self_id());
  CHECK(relayed.key_values == delta.node_deltas[0].key_values);
  CHECK(encode(Packet{"c", Ack{Delta{{relayed}}}}) ==
        encode(Packet{"c", Ack{Delta{{delta.node_deltas[0]}}}}));
}

TEST_CASE("an unknown node delta's id is checked without reading it, exactly as reading it") {
  // ClusterState::resolve checks a node delta's unknown id with is_node_id
  // and a digest's with read_node_id: both must take the same ids. Every
  // canonical shape, then every byte of each replaced by the values at the
  // edges of tags, varints and text, then cut short and extended.
  const std::vector<NodeId> ids = {
      NodeId{"node-1", 1'700'000'000'000'000'000ULL, Address{"10.0.0.1", 7946}, ""},
      NodeId{"n", 1, Address{"h", 1}, "tls.example"},
      NodeId{"", 0, Address{"", 0}, ""},
      NodeId{"n\xc3\xa9", UINT64_MAX, Address{"h\xc3\xa9", 65535}, "t\xc3\xa9"},
      NodeId{std::string(200, 'x'), 128, Address{std::string(130, 'h'), 128}, ""},
  };
  std::vector<Bytes> cases;
  for (const NodeId& id : ids) {
    const Bytes bytes = wire::encode_node_id(id);
    wire::NodeIdView view;
    CHECK(wire::read_node_id(bytes, view));
    CHECK(wire::is_node_id(bytes));
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      for (const int b : {0x00, 0x01, 0x02, 0x0a, 0x10, 0x12, 0x1a, 0x22, 0x7f, 0x80, 0x81, 0xc3,
                          0xff, bytes[i] ^ 1, bytes[i] + 1, bytes[i] - 1}) {
        Bytes changed = bytes;
        changed[i] = static_cast<std::uint8_t>(b);
        cases.push_back(changed);
      }
      cases.emplace_back(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(i));
    }
    for (const Bytes& tail : {Bytes{0x22, 0x01, 'x'}, Bytes{0x00}, Bytes{0x10, 0x01}}) {
      cases.push_back(concat({bytes, tail}));
    }
  }
  // Generation ids of nine and ten bytes, over-long and with a tenth byte
  // beyond the 64th bit.
  const Bytes addr = field(0x1a, Bytes{0x0a, 0x01, 'h'});
  for (const Bytes& generation :
       {Bytes{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
        Bytes{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
        Bytes{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02},
        Bytes{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
        Bytes{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, Bytes{0x00},
        Bytes{0x80, 0x00}, Bytes{0x80}, Bytes{}}) {
    cases.push_back(concat({Bytes{0x0a, 0x01, 'n', 0x10}, generation, addr}));
    cases.push_back(concat({Bytes{0x10}, generation, addr}));
    cases.push_back(concat({Bytes{0x10}, generation}));
  }
  for (const Bytes& bytes : cases) {
    CAPTURE(bytes.size());
    wire::NodeIdView view;
    CHECK(wire::is_node_id(bytes) == wire::read_node_id(bytes, view));
  }
}
