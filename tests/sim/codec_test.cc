// The direct codec against the generated protobuf code, which is the
// reference: encode writes the very bytes the generated serializer writes,
// and decode gives the generated parser's answer for every input, canonical
// or not (random packets, random corruptions, hand-made oddities).
#include <aiocluster/codec.h>
#include <aiocluster/random.h>
#include <doctest/doctest.h>

#include "codec_internal.h"
#include "support.h"

namespace simtest {
namespace {

using namespace aiocluster;

// Test names without commas or quotes: the replay line passes them to
// --test-case, where a comma separates filters.
constexpr const char* kEncode =
    "encode writes the bytes of the generated serializer and decode reads them";
constexpr const char* kDecode = "decode gives the answer of the generated parser for any input";

std::string random_string(Rng& rng) {
  static const char* const kPieces[] = {"a", "node", "10.0.0.1", "-", "é", "日本", "\x7f", "\0"};
  std::string s;
  for (std::uint64_t n = rng.below(4); n > 0; --n) {
    const char* piece = kPieces[rng.below(std::size(kPieces))];
    s += (piece[0] == '\0') ? std::string(1, '\0') : std::string(piece);
  }
  if (rng.chance(0.05)) s.assign(rng.below(300), 'x');  // a length needing two varint bytes
  return s;
}

std::uint64_t random_number(Rng& rng) {
  switch (rng.below(5)) {
    case 0:
      return 0;
    case 1:
      return rng.below(128);
    case 2:
      return rng.below(1u << 20);
    case 3:
      return rng.next();
    default:
      return UINT64_MAX - rng.below(3);
  }
}

NodeId random_id(Rng& rng) {
  return NodeId{random_string(rng), random_number(rng),
                Address{random_string(rng),
                        static_cast<std::uint16_t>(rng.below(3) == 0 ? 0 : rng.below(65536))},
                rng.chance(0.2) ? random_string(rng) : ""};
}

Digest random_digest(Rng& rng) {
  Digest d;
  for (std::uint64_t n = rng.below(6); n > 0; --n) {
    d.node_digests.push_back(
        {random_id(rng), random_number(rng), random_number(rng), random_number(rng)});
  }
  return d;
}

Delta random_delta(Rng& rng) {
  Delta d;
  for (std::uint64_t n = rng.below(4); n > 0; --n) {
    NodeDelta nd;
    nd.node_id = random_id(rng);
    nd.from_version_excluded = random_number(rng);
    nd.last_gc_version = random_number(rng);
    for (std::uint64_t k = rng.below(4); k > 0; --k) {
      nd.key_values.push_back({random_string(rng), random_string(rng), random_number(rng),
                               static_cast<KeyStatus>(rng.below(3))});
    }
    if (rng.chance(0.7)) nd.max_version = random_number(rng);
    d.node_deltas.push_back(std::move(nd));
  }
  return d;
}

Packet random_packet(Rng& rng) {
  Packet p;
  p.cluster_id = rng.chance(0.2) ? "" : random_string(rng);
  switch (rng.below(4)) {
    case 0:
      p.message = Syn{random_digest(rng)};
      break;
    case 1:
      p.message = SynAck{random_digest(rng), random_delta(rng)};
      break;
    case 2:
      p.message = Ack{random_delta(rng)};
      break;
    default:
      p.message = BadCluster{};
      break;
  }
  return p;
}

Bytes corrupt(Bytes bytes, Rng& rng) {
  switch (rng.below(5)) {
    case 0:  // flip a byte
      if (!bytes.empty())
        bytes[rng.below(bytes.size())] ^= static_cast<std::uint8_t>(1 + rng.below(255));
      break;
    case 1:  // truncate
      bytes.resize(bytes.empty() ? 0 : rng.below(bytes.size()));
      break;
    case 2: {  // append a field, known or not, of any wire type
      const std::uint8_t tag = static_cast<std::uint8_t>(rng.below(128));
      bytes.push_back(tag);
      for (std::uint64_t n = rng.below(4); n > 0; --n)
        bytes.push_back(static_cast<std::uint8_t>(rng.below(256)));
      break;
    }
    case 3: {  // repeat the whole packet: every field twice
      const Bytes copy = bytes;
      bytes.insert(bytes.end(), copy.begin(), copy.end());
      break;
    }
    default:  // insert a random byte
      bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(rng.below(bytes.size() + 1)),
                   static_cast<std::uint8_t>(rng.below(256)));
      break;
  }
  return bytes;
}

std::string hex(const Bytes& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

TEST_SUITE("codec") {
  TEST_CASE(kEncode) {
    for (std::uint64_t seed : seeds()) {
      Rng rng(seed);
      for (int i = 0; i < 50; ++i) {
        const Packet packet = random_packet(rng);
        const Bytes bytes = encode(packet);
        const Bytes reference = encode_reference(packet);
        REQUIRE_MESSAGE(bytes == reference, replay(seed, kEncode));
        CHECK(bytes.size() == wire_size::packet(packet));
        const DecodeResult decoded = decode(bytes);
        REQUIRE(std::holds_alternative<Packet>(decoded));
        CHECK(std::get<Packet>(decoded) == packet);
      }
    }
  }

  TEST_CASE(kDecode) {
    for (std::uint64_t seed : seeds()) {
      Rng rng(seed);
      for (int i = 0; i < 50; ++i) {
        Bytes bytes = encode(random_packet(rng));
        for (std::uint64_t k = 1 + rng.below(3); k > 0; --k) bytes = corrupt(std::move(bytes), rng);
        INFO(replay(seed, kDecode) << " bytes " << hex(bytes));
        REQUIRE(decode(bytes) == decode_reference(bytes));
      }
    }
  }

  TEST_CASE("non-canonical encodings take the reference path and agree") {
    const std::vector<Bytes> inputs = {
        {},                                                // nothing: no message
        {0x0a, 0x01, 0x63},                                // a cluster id only
        {0x2a, 0x00, 0x2a, 0x00},                          // bad_cluster twice
        {0x12, 0x00, 0x2a, 0x00},                          // syn then bad_cluster: the last wins
        {0x2a, 0x02, 0x08, 0x01},                          // bad_cluster with an unknown field
        {0x0a, 0x01, 0x63, 0x0a, 0x01, 0x64, 0x2a, 0x00},  // cluster id twice: the last wins
        {0x8a, 0x00, 0x01, 0x63, 0x2a, 0x00},              // a tag as a two-byte varint
        {0x0a, 0x81, 0x00, 0x63, 0x2a, 0x00},              // a length as a two-byte varint
        {0x0a, 0x02, 0xc3, 0x28, 0x2a, 0x00},              // a cluster id that is not UTF-8
        {0x0a, 0x02, 0xc3, 0xa9, 0x2a, 0x00},              // a cluster id in UTF-8, not ASCII
        // syn{digest{node_digests{node_id{gossip_advertise_addr{port: 70000}}}}}
        {0x12, 0x0c, 0x12, 0x0a, 0x0a, 0x08, 0x0a, 0x06, 0x1a, 0x04, 0x10, 0xf0, 0xa2, 0x04},
        // the same with port 2^32 + 80, which protobuf truncates to 80
        {0x12, 0x0e, 0x12, 0x0c, 0x0a, 0x0a, 0x0a, 0x08, 0x1a, 0x06, 0x10, 0xd0, 0x80, 0x80, 0x80,
         0x10},
        // ack{delta{node_deltas{key_values{status: 3}}}}
        {0x22, 0x08, 0x1a, 0x06, 0x0a, 0x04, 0x22, 0x02, 0x20, 0x03},
        // ack{delta{node_deltas{key_values{status: -1}}}} (ten-byte varint)
        {0x22, 0x11, 0x1a, 0x0f, 0x0a, 0x0d, 0x22, 0x0b, 0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0x01},
        // a heartbeat varint of eleven bytes
        {0x12, 0x10, 0x12, 0x0e, 0x0a, 0x0c, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0x01},
        // node_digests with heartbeat as a fixed64 (a wrong wire type is an unknown field)
        {0x12, 0x0d, 0x12, 0x0b, 0x0a, 0x09, 0x11, 1, 2, 3, 4, 5, 6, 7, 8},
        {0x12, 0x02, 0x12},  // a length past the end
        {0x00},              // field 0
        {0x2b, 0x2c},        // a start and an end group
    };
    for (const Bytes& bytes : inputs) {
      CAPTURE(hex(bytes));
      CHECK(decode(bytes) == decode_reference(bytes));
    }
    // The port that protobuf truncates to 80 is valid there, and here too.
    const DecodeResult truncated = decode(inputs[11]);
    REQUIRE(std::holds_alternative<Packet>(truncated));
    CHECK(std::get<Syn>(std::get<Packet>(truncated).message)
              .digest.node_digests.at(0)
              .node_id.gossip_advertise_addr.port == 80);
    CHECK(decode(inputs[10]) == DecodeResult(DecodeError::kInvalidField));
  }
}

}  // namespace
}  // namespace simtest
