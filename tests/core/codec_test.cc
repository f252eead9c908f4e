#include <doctest/doctest.h>
#include <google/protobuf/stubs/logging.h>

#include "codec_internal.h"
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

namespace {

// The schema's message fields: (message, field number) -> the sub-message,
// so a packet can be read generically and written back with one varint
// (a tag, a length or a value) over-long.
enum class Msg {
  kPacket,
  kSyn,
  kSynAck,
  kAck,
  kBadCluster,
  kDigest,
  kNodeDigest,
  kNodeId,
  kAddress,
  kDelta,
  kNodeDelta,
  kKeyValue,
  kNone
};

Msg sub_message(Msg parent, std::uint64_t field) {
  switch (parent) {
    case Msg::kPacket:
      return field == 2   ? Msg::kSyn
             : field == 3 ? Msg::kSynAck
             : field == 4 ? Msg::kAck
             : field == 5 ? Msg::kBadCluster
                          : Msg::kNone;
    case Msg::kSyn:
      return field == 2 ? Msg::kDigest : Msg::kNone;
    case Msg::kSynAck:
      return field == 2 ? Msg::kDigest : field == 3 ? Msg::kDelta : Msg::kNone;
    case Msg::kAck:
      return field == 3 ? Msg::kDelta : Msg::kNone;
    case Msg::kDigest:
      return field == 1 ? Msg::kNodeDigest : Msg::kNone;
    case Msg::kNodeDigest:
      return field == 1 ? Msg::kNodeId : Msg::kNone;
    case Msg::kNodeId:
      return field == 3 ? Msg::kAddress : Msg::kNone;
    case Msg::kDelta:
      return field == 1 ? Msg::kNodeDelta : Msg::kNone;
    case Msg::kNodeDelta:
      return field == 1 ? Msg::kNodeId : field == 4 ? Msg::kKeyValue : Msg::kNone;
    default:
      return Msg::kNone;
  }
}

struct Field {
  std::uint64_t number = 0;
  unsigned wire_type = 0;
  std::uint64_t value = 0;  // wire type 0
  Bytes bytes;              // wire type 2 holding text
  std::vector<Field> sub;   // wire type 2 holding a sub-message
  bool message = false;
};

std::uint64_t read_varint(ByteView b, std::size_t& i) {
  std::uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    const std::uint8_t byte = b[i++];
    v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if (byte < 0x80) return v;
  }
}

// Parses what encode() wrote (canonical, so nothing to check).
std::vector<Field> parse(ByteView b, Msg kind) {
  std::vector<Field> fields;
  std::size_t i = 0;
  while (i < b.size()) {
    Field f;
    const std::uint64_t tag = read_varint(b, i);
    f.number = tag >> 3;
    f.wire_type = static_cast<unsigned>(tag & 7);
    if (f.wire_type == 0) {
      f.value = read_varint(b, i);
    } else {
      const std::size_t n = read_varint(b, i);
      const ByteView body = b.subspan(i, n);
      i += n;
      const Msg sub = sub_message(kind, f.number);
      f.message = sub != Msg::kNone;
      if (f.message) {
        f.sub = parse(body, sub);
      } else {
        f.bytes.assign(body.begin(), body.end());
      }
    }
    fields.push_back(std::move(f));
  }
  return fields;
}

// Writes `fields` back; the varint numbered `target` (in writing order:
// each tag, then its length or value) takes `width` bytes.
class OverlongWriter {
 public:
  OverlongWriter(std::size_t target, std::size_t width) : target_(target), width_(width) {}
  std::size_t varints() const { return count_; }

  Bytes write(const std::vector<Field>& fields) {
    Bytes out;
    for (const Field& f : fields) {
      varint(out, f.number << 3 | f.wire_type);
      if (f.wire_type == 0) {
        varint(out, f.value);
        continue;
      }
      // The length is written before the body, so it is numbered first.
      const std::size_t length_index = count_++;
      const Bytes body = f.message ? write(f.sub) : f.bytes;
      put(out, body.size(), length_index == target_ ? width_ : 0);
      out.insert(out.end(), body.begin(), body.end());
    }
    return out;
  }

 private:
  void varint(Bytes& out, std::uint64_t v) { put(out, v, count_++ == target_ ? width_ : 0); }

  // `width` 0: the minimal form.
  static void put(Bytes& out, std::uint64_t v, std::size_t width) {
    const std::size_t minimal = wire_size::varint(v);
    const std::size_t n = std::max(width, minimal);
    for (std::size_t k = 0; k < n; ++k) {
      const auto low = static_cast<std::uint8_t>(k < 10 ? (v >> (7 * k)) & 0x7f : 0);
      out.push_back(k + 1 < n ? (low | 0x80) : low);
    }
  }

  std::size_t target_;
  std::size_t width_;
  std::size_t count_ = 0;
};

}  // namespace

TEST_CASE("an over-long tag varint gets protobuf's answer (the fuzz_decode finding)") {
  // Field 5 (bad_cluster), length 0, behind a tag written in six bytes.
  const Bytes input = {0xaa, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00};
  CHECK(decode(input) == decode_reference(input));
  CHECK(std::holds_alternative<DecodeError>(decode(input)));
}

TEST_CASE("over-long varints in every position get protobuf's answer") {
  const std::vector<Packet> packets = {
      sample_synack(),
      Packet{"c", Syn{Digest{{NodeDigest{node_id("x", 300, "x.example"), 1, 2, 200}}}}},
      Packet{"", Ack{std::get<SynAck>(sample_synack().message).delta}},
      Packet{"other", BadCluster{}},
  };
  std::size_t variants = 0;
  std::size_t accepted = 0;
  for (const auto& p : packets) {
    const std::vector<Field> fields = parse(encode(p), Msg::kPacket);
    OverlongWriter probe(SIZE_MAX, 0);
    CHECK(probe.write(fields) == encode(p));  // the writer itself is faithful
    for (std::size_t target = 0; target < probe.varints(); ++target) {
      // From one byte too many up to beyond the ten a varint may take.
      for (std::size_t width = 2; width <= 11; ++width) {
        const Bytes bytes = OverlongWriter(target, width).write(fields);
        if (bytes.size() == encode(p).size()) continue;  // already that wide
        CAPTURE(target);
        CAPTURE(width);
        const DecodeResult ours = decode(bytes);
        const DecodeResult reference = decode_reference(bytes);
        CHECK(ours == reference);
        // Whatever protobuf accepts means the same packet.
        if (std::holds_alternative<Packet>(reference)) {
          CHECK(std::get<Packet>(reference) == p);
          ++accepted;
        }
        ++variants;
      }
    }
  }
  // Both outcomes occur: protobuf reads some over-long forms and refuses others.
  CHECK(variants > 500);
  CHECK(accepted > 0);
  CHECK(accepted < variants);
}
