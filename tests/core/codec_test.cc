#include <doctest/doctest.h>
#include <google/protobuf/stubs/logging.h>

#include "harness.h"

using namespace testing;

namespace {

NodeId node_id(std::string name, std::uint64_t gen, std::string tls = "") {
  return NodeId{std::move(name), gen, Address{"10.0.0.1", 7000}, std::move(tls)};
}

Packet sample_synack() {
  SynAck synack;
  synack.digest.node_digests.push_back({node_id("a", 1), 10, 0, 5});
  synack.digest.node_digests.push_back({node_id("b", 300, "b.example"), 0, 2, 0});
  NodeDelta nd{node_id("a", 1), 3, 1, {}, 7};
  nd.key_values.push_back({"k1", "v1", 4, KeyStatus::kSet});
  nd.key_values.push_back({"k2", "", 5, KeyStatus::kDeleted});
  nd.key_values.push_back({"k3", "ttl", 7, KeyStatus::kDeleteAfterTtl});
  synack.delta.node_deltas.push_back(nd);
  synack.delta.node_deltas.push_back(NodeDelta{node_id("c", 0), 0, 0, {}, std::nullopt});
  return Packet{"cluster", synack};
}

}  // namespace

TEST_CASE("every message round-trips through the wire format") {
  const std::vector<Packet> packets = {
      Packet{"c", Syn{}},
      Packet{"c", Syn{Digest{{NodeDigest{node_id("x", 1), 1, 2, 3}}}}},
      sample_synack(),
      Packet{"", Ack{std::get<SynAck>(sample_synack().message).delta}},
      Packet{"other", BadCluster{}},
  };
  for (const auto& p : packets) {
    const Bytes bytes = encode(p);
    CHECK(bytes.size() == wire_size::packet(p));
    const DecodeResult back = decode(bytes);
    REQUIRE(std::holds_alternative<Packet>(back));
    CHECK(std::get<Packet>(back) == p);
  }
}

TEST_CASE("max_version keeps its presence, zero included") {
  Packet p{"c", Ack{Delta{{NodeDelta{node_id("a", 1), 0, 0, {}, 0}}}}};
  auto back = std::get<Packet>(decode(encode(p)));
  REQUIRE(std::get<Ack>(back.message).delta.node_deltas[0].max_version.has_value());
  CHECK(*std::get<Ack>(back.message).delta.node_deltas[0].max_version == 0);
  CHECK(encode(p).size() == wire_size::packet(p));
}

TEST_CASE("decode refuses garbage with a typed error") {
  const Bytes garbage = {0xff, 0xff, 0xff, 0xff, 0x0f};
  CHECK(std::get<DecodeError>(decode(garbage)) == DecodeError::kMalformed);
  // A packet with only a cluster id carries no message.
  const Bytes only_id = {0x0a, 0x01, 'c'};
  CHECK(std::get<DecodeError>(decode(only_id)) == DecodeError::kNoMessage);
  // An unknown oneof member (field 9, empty) is skipped by protobuf: no message.
  const Bytes unknown = {0x0a, 0x01, 'c', 0x4a, 0x00};
  CHECK(std::get<DecodeError>(decode(unknown)) == DecodeError::kNoMessage);
}

TEST_CASE("known bytes: the encoding is protobuf's, field for field") {
  // PacketPb{cluster_id:"c", bad_cluster:{}} = 0a 01 63 2a 00
  CHECK(encode(Packet{"c", BadCluster{}}) == Bytes{0x0a, 0x01, 0x63, 0x2a, 0x00});
  // PacketPb{syn:{digest:{}}} with empty cluster id = 12 02 12 00
  CHECK(encode(Packet{"", Syn{}}) == Bytes{0x12, 0x02, 0x12, 0x00});
  // KeyValueUpdatePb{key:"k", version:1, status:DELETED} inside an Ack.
  Packet p{
      "",
      Ack{Delta{{NodeDelta{NodeId{}, 0, 0, {{"k", "", 1, KeyStatus::kDeleted}}, std::nullopt}}}}};
  // ack(4){delta(3){node_deltas(1){node_id(1){addr(3){}} key_values(4){1:"k" 3:1 4:1}}}}
  const Bytes expected = {0x22, 0x11, 0x1a, 0x0f, 0x0a, 0x0d, 0x0a, 0x02, 0x1a, 0x00,
                          0x22, 0x07, 0x0a, 0x01, 'k',  0x18, 0x01, 0x20, 0x01};
  CHECK(encode(p).size() == 19);
  CHECK(encode(p) == expected);
}

TEST_CASE("wire_size::varint") {
  CHECK(wire_size::varint(0) == 1);
  CHECK(wire_size::varint(127) == 1);
  CHECK(wire_size::varint(128) == 2);
  CHECK(wire_size::varint(16383) == 2);
  CHECK(wire_size::varint(16384) == 3);
  CHECK(wire_size::varint(UINT64_MAX) == 10);
}

TEST_CASE("a port above 65535 is an invalid field") {
  // PacketPb{syn{digest{node_digests{node_id{gossip_advertise_addr{port: 70000}}}}}}
  // AddressPb body: 10 f0 a2 04 (4 bytes); NodeIdPb body: 1a 04 <addr> (6 bytes);
  // NodeDigestPb body: 0a 06 <id> (8); DigestPb body: 0a 08 <nd> (10);
  // SynPb body: 12 0a <digest> (12); PacketPb: 12 0c <syn>.
  const Bytes bytes = {0x12, 0x0c, 0x12, 0x0a, 0x0a, 0x08, 0x0a,
                       0x06, 0x1a, 0x04, 0x10, 0xf0, 0xa2, 0x04};
  CHECK(std::get<DecodeError>(decode(bytes)) == DecodeError::kInvalidField);
}

TEST_CASE("Address parses and prints host:port") {
  CHECK(Address::parse("127.0.0.1:7000") == Address{"127.0.0.1", 7000});
  CHECK(Address::parse("[::1]:7000") == Address{"::1", 7000});
  CHECK(Address{"::1", 7000}.to_string() == "[::1]:7000");
  CHECK(Address::parse("localhost:65535").has_value());
  CHECK_FALSE(Address::parse("localhost:65536"));
  CHECK_FALSE(Address::parse("localhost"));
  CHECK_FALSE(Address::parse(":7000"));
  CHECK_FALSE(Address::parse("::1:7000"));
  CHECK_FALSE(Address::parse("host:7x"));
}

TEST_CASE("NodeId identity uses all five fields") {
  const NodeId a{"n", 1, Address{"h", 1}, ""};
  for (auto change : std::vector<std::function<void(NodeId&)>>{
           [](NodeId& id) { id.name = "m"; }, [](NodeId& id) { id.generation_id = 2; },
           [](NodeId& id) { id.gossip_advertise_addr.host = "g"; },
           [](NodeId& id) { id.gossip_advertise_addr.port = 2; },
           [](NodeId& id) { id.tls_name = "t"; }}) {
    NodeId b = a;
    change(b);
    CHECK(a != b);
    CHECK(((a < b) || (b < a)));
  }
  CHECK(std::hash<NodeId>{}(a) == std::hash<NodeId>{}(NodeId(a)));
}

TEST_CASE("text that is not UTF-8 is refused in every field, and libprotobuf logs nothing") {
  // Any log line from libprotobuf while decoding is a failure: a peer must
  // not be able to write to our logs.
  static int logged = 0;
  google::protobuf::LogHandler* previous = google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) { ++logged; });
  const std::string bad("\xc3\x28", 2);
  const std::vector<Packet> packets = {
      Packet{bad, BadCluster{}},
      Packet{"c", Syn{Digest{{NodeDigest{NodeId{bad, 1, Address{"h", 1}, ""}, 1, 0, 0}}}}},
      Packet{"c", Syn{Digest{{NodeDigest{NodeId{"n", 1, Address{bad, 1}, ""}, 1, 0, 0}}}}},
      Packet{"c", Syn{Digest{{NodeDigest{NodeId{"n", 1, Address{"h", 1}, bad}, 1, 0, 0}}}}},
      Packet{"c",
             Ack{Delta{{NodeDelta{node_id("a", 1), 0, 0, {{bad, "v", 1, KeyStatus::kSet}}, 1}}}}},
      Packet{"c",
             Ack{Delta{{NodeDelta{node_id("a", 1), 0, 0, {{"k", bad, 1, KeyStatus::kSet}}, 1}}}}},
  };
  for (const auto& p : packets) {
    const Bytes bytes = encode(p);
    REQUIRE(std::holds_alternative<DecodeError>(decode(bytes)));
    CHECK(std::get<DecodeError>(decode(bytes)) == DecodeError::kInvalidField);
    CHECK(decode(bytes) == decode_reference(bytes));
  }
  // UTF-8 beyond ASCII is fine.
  const Packet accented{"caf\xc3\xa9", Syn{Digest{{NodeDigest{node_id("n\xc3\xa9", 1), 1, 0, 0}}}}};
  CHECK(decode(encode(accented)) == DecodeResult{accented});
  google::protobuf::SetLogHandler(previous);
  CHECK(logged == 0);
}
