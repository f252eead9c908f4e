// Fuzz target: packet decoding. Whatever the bytes, decode() gives the same
// answer as decode_reference() (the generated protobuf parser). A decoded
// packet re-encodes to exactly wire_size::packet() bytes, the same bytes as
// encode_reference(), decodes back to itself and re-encodes to the same
// bytes; every string in it is UTF-8 by is_valid_utf8, and is_valid_utf8
// agrees with protobuf on whether the input, used as a key, survives a round
// trip.
#include <aiocluster/codec.h>
#include <google/protobuf/stubs/common.h>
#include <google/protobuf/stubs/logging.h>

#include <string_view>
#include <variant>

#include "codec_internal.h"
#include "fuzz_support.h"

namespace {

using namespace aiocluster;
using fuzz::require;

void check_strings(const Packet& packet) {
  auto text = [](std::string_view s) { require(is_valid_utf8(s), "decoded strings are UTF-8"); };
  auto id = [&](const NodeId& n) {
    text(n.name);
    text(n.gossip_advertise_addr.host);
    text(n.tls_name);
  };
  auto digest = [&](const Digest& d) {
    for (const auto& nd : d.node_digests) id(nd.node_id);
  };
  auto delta = [&](const Delta& d) {
    for (const auto& nd : d.node_deltas) {
      id(nd.node_id);
      for (const auto& kv : nd.key_values) {
        text(kv.key);
        text(kv.value);
      }
    }
  };
  text(packet.cluster_id);
  if (const auto* syn = std::get_if<Syn>(&packet.message)) digest(syn->digest);
  if (const auto* synack = std::get_if<SynAck>(&packet.message)) {
    digest(synack->digest);
    delta(synack->delta);
  }
  if (const auto* ack = std::get_if<Ack>(&packet.message)) delta(ack->delta);
}

void check_round_trip(const Packet& packet) {
  const Bytes bytes = encode(packet);
  require(bytes.size() == wire_size::packet(packet), "wire_size::packet() is the encoded size");
  require(bytes == encode_reference(packet), "encode writes what the generated serializer writes");
  const DecodeResult again = decode(bytes);
  const auto* decoded = std::get_if<Packet>(&again);
  require(decoded != nullptr, "an encoded packet decodes");
  require(*decoded == packet, "decode(encode(p)) == p");
  require(encode(*decoded) == bytes, "encoding is deterministic");
}

// The input's first bytes as a key: is_valid_utf8 must accept exactly what
// protobuf's UTF-8 check accepts (the one a `string` field gets, as in
// peers built on the schema of PROTOCOL.md), or Node::set would let through
// keys those peers refuse.
void check_utf8_agrees(ByteView bytes) {
  const std::string key(
      bytes.begin(),
      bytes.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(bytes.size(), 64)));
  NodeDelta nd{
      NodeId{"n", 1, Address{"h", 1}, ""}, 0, 0, {KeyValueUpdate{key, "v", 1, KeyStatus::kSet}}, 1};
  const Packet packet{"c", Ack{Delta{{nd}}}};
  const DecodeResult decoded = decode(encode(packet));
  require(decoded == decode_reference(encode_reference(packet)), "both codecs treat the key alike");
  const bool parsed = std::holds_alternative<Packet>(decoded);
  require(is_valid_utf8(key) == google::protobuf::internal::IsStructurallyValidUTF8(
                                    key.data(), static_cast<int>(key.size())),
          "is_valid_utf8 agrees with protobuf");
  require(parsed == is_valid_utf8(key), "a key is decoded exactly when it is UTF-8");
  if (parsed) require(std::get<Packet>(decoded) == packet, "a UTF-8 key survives a round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The schema's text fields are `bytes`, so libprotobuf has nothing to log
  // about what peers send: a log line is a finding (a peer could flood our
  // logs).
  static const bool watched = [] {
    google::protobuf::SetLogHandler(
        [](google::protobuf::LogLevel, const char*, int, const std::string& message) {
          fuzz::fail("libprotobuf logged: " + message);
        });
    return true;
  }();
  (void)watched;

  const ByteView bytes(data, size);
  const DecodeResult result = decode(bytes);
  const DecodeResult reference = decode_reference(bytes);
  require(result.index() == reference.index(), "decode and decode_reference agree on success");
  require(result == reference, "decode and decode_reference agree on the packet or the error");
  if (const auto* packet = std::get_if<Packet>(&result)) {
    check_strings(*packet);
    check_round_trip(*packet);
  }
  check_utf8_agrees(bytes);
  return 0;
}
