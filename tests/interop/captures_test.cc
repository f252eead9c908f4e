// Real packets of Python aiocluster 1.1.0 (fixtures/, described in
// fixtures/vectors.json), each decoded and fed to a Node at the stage of an
// exchange where it occurs, and what the node ends up with.
#include <aiocluster/aiocluster.h>
#include <doctest/doctest.h>
#include <openssl/evp.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "codec_internal.h"

namespace {

using namespace aiocluster;
using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kDir = AIOCLUSTER_INTEROP_FIXTURES;

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

const Json& vectors() {
  static const Json json = [] {
    const Bytes text = read_file(kDir + "/vectors.json");
    return Json::parse(std::string(text.begin(), text.end()));
  }();
  return json;
}

std::string sha256_hex(const Bytes& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  std::ostringstream out;
  for (unsigned i = 0; i < length; ++i) {
    out << "0123456789abcdef"[digest[i] >> 4] << "0123456789abcdef"[digest[i] & 15];
  }
  return out.str();
}

// A capture, checked against its description: size, hash, and that both
// decoders read it the same way.
Packet capture(const std::string& folder, const std::string& name) {
  const Bytes bytes = read_file(kDir + "/" + folder + "/" + name + ".bin");
  const Json& meta = vectors().at(folder).at("packets").at(name);
  CHECK(bytes.size() == meta.at("bytes").get<std::size_t>());
  CHECK(sha256_hex(bytes) == meta.at("sha256").get<std::string>());
  const DecodeResult decoded = decode(bytes);
  CHECK(decoded == decode_reference(bytes));
  REQUIRE(std::holds_alternative<Packet>(decoded));
  // What we would send is what Python sent: the same field order and rules.
  CHECK(encode(std::get<Packet>(decoded)) == bytes);
  return std::get<Packet>(decoded);
}

Bytes capture_bytes(const std::string& folder, const std::string& name) {
  return read_file(kDir + "/" + folder + "/" + name + ".bin");
}

// The node deltas of a capture match their description in vectors.json.
void check_deltas(const Delta& delta, const Json& meta) {
  const auto& described = meta.at("node_deltas");
  REQUIRE(delta.node_deltas.size() >= described.size());
  for (std::size_t i = 0; i < described.size(); ++i) {
    const NodeDelta& nd = delta.node_deltas[i];
    const Json& d = described[i];
    CAPTURE(d.at("node").get<std::string>());
    CHECK(nd.node_id.name == d.at("node").get<std::string>());
    CHECK(nd.node_id.generation_id == d.at("generation_id").get<std::uint64_t>());
    CHECK(nd.from_version_excluded == d.at("from_version_excluded").get<std::uint64_t>());
    CHECK(nd.last_gc_version == d.at("last_gc_version").get<std::uint64_t>());
    CHECK(nd.max_version == d.at("max_version").get<std::uint64_t>());
    CHECK(nd.key_values.size() == d.at("key_values").get<std::size_t>());
    CHECK(nd.key_values.back().version == d.at("last_key_version").get<std::uint64_t>());
  }
}

Instant t0() { return Instant{} + 1000h; }

// A node in the place of one end of a captured exchange.
Node node_as(const std::string& name, std::uint64_t generation, std::uint16_t port) {
  Config config;
  config.cluster_id = "vectors";
  config.node_id = NodeId{name, generation, Address{"127.0.0.1", port}, ""};
  return Node(config, t0(), 1);
}

const NodeState* state_named(const Node& node, const std::string& name) {
  for (const auto& [id, st] : node.cluster_state().nodes()) {
    if (id.name == name) return &st;
  }
  return nullptr;
}

// What `node` sends back for one captured packet read at `stage`.
std::optional<Reply> reply_to(Node& node, const Bytes& packet, Stage stage) {
  return node.handle_packet(packet, t0(), Inbound{stage}).reply;
}

}  // namespace

TEST_CASE("exchange-small: py-a's Syn, py-b's SynAck and py-a's Ack, each at its stage") {
  const Packet syn = capture("exchange-small", "syn");
  const Packet synack = capture("exchange-small", "synack");
  const Packet ack = capture("exchange-small", "ack");
  check_deltas(std::get<SynAck>(synack.message).delta,
               vectors().at("exchange-small").at("packets").at("synack"));
  check_deltas(std::get<Ack>(ack.message).delta,
               vectors().at("exchange-small").at("packets").at("ack"));

  // We stand in for py-b: py-a's Syn gets a SynAck, py-a's Ack is applied.
  Node b = node_as("cpp-b", 9, 7102);
  auto reply = reply_to(b, capture_bytes("exchange-small", "syn"), Stage::kStreamOpen);
  REQUIRE(reply);
  CHECK(reply->awaits_ack);
  reply_to(b, capture_bytes("exchange-small", "ack"), Stage::kStreamAck);
  const NodeState* py_a = state_named(b, "py-a");
  REQUIRE(py_a != nullptr);
  CHECK(py_a->value("role") == "web");
  CHECK(py_a->value("zone") == "a");
  CHECK(py_a->max_version() == 2);

  // We stand in for py-a: py-b's SynAck is applied and answered with an Ack.
  Node a = node_as("cpp-a", 8, 7101);
  a.handle_timeout(t0());
  auto ack_out = reply_to(a, capture_bytes("exchange-small", "synack"), Stage::kStreamReply);
  REQUIRE(ack_out);
  CHECK(std::holds_alternative<Ack>(std::get<Packet>(decode(ack_out->payload)).message));
  const NodeState* py_b = state_named(a, "py-b");
  REQUIRE(py_b != nullptr);
  CHECK(py_b->value("role") == "db");
  CHECK(a.stats().packets_dropped() == 0);
  CHECK(b.stats().packets_dropped() == 0);
}

TEST_CASE("truncated-delta: 1,214 of 3,000 key-values claiming max_version 3000") {
  const Packet synack = capture("truncated-delta", "synack");
  check_deltas(std::get<SynAck>(synack.message).delta,
               vectors().at("truncated-delta").at("packets").at("synack"));
  const Bytes bytes = capture_bytes("truncated-delta", "synack");
  CHECK(bytes.size() > Config{}.max_payload_size);

  // We are cpp-like (generation 4, port 7104), which sent the captured Syn.
  Node node = node_as("cpp-like", 4, 7104);
  const Packet syn = capture("truncated-delta", "syn");
  CHECK(std::get<Syn>(syn.message).digest.node_digests[0].node_id == node.self_id());
  auto ack = reply_to(node, bytes, Stage::kStreamReply);
  REQUIRE(ack);
  const NodeState* py_big = state_named(node, "py-big");
  REQUIRE(py_big != nullptr);
  CHECK(py_big->size() == 1214);
  // Complete only up to the last key-value received...
  CHECK(py_big->max_version() == 1214);
  CHECK(py_big->value("k01213") == "py-value-01213-xxxxxxxxxxxxxxxxxxxxxxxx");
  CHECK(node.stats().completeness_capped == 1);
  CHECK(node.stats().packets_in_above_max_payload == 1);
  // ... so the next Syn asks py-big for everything after 1214.
  node.handle_timeout(t0() + 1s);
  bool asked = false;
  while (auto tx = node.poll_transmit()) {
    const DecodeResult syn_out = decode(tx->payload);
    for (const auto& nd : std::get<Syn>(std::get<Packet>(syn_out).message).digest.node_digests) {
      if (nd.node_id.name == "py-big") asked = nd.max_version == 1214;
    }
  }
  CHECK(asked);
}

TEST_CASE("oversized-synack: 126,406 bytes, read and applied") {
  const Packet synack = capture("oversized-synack", "synack");
  const Json& meta = vectors().at("oversized-synack").at("packets").at("synack");
  check_deltas(std::get<SynAck>(synack.message).delta, meta);
  const auto& body = std::get<SynAck>(synack.message);
  CHECK(body.digest.node_digests.size() == meta.at("digest_nodes").get<std::size_t>());
  CHECK(body.delta.node_deltas.size() == meta.at("node_deltas_total").get<std::size_t>());

  // We are the newcomer (generation 6, port 7106).
  Node node = node_as("newcomer", 6, 7106);
  auto ack = reply_to(node, capture_bytes("oversized-synack", "synack"), Stage::kStreamReply);
  REQUIRE(ack);
  CHECK(ack->payload.size() <= node.config().max_payload_size);
  CHECK(node.stats().packets_in_above_max_payload == 1);
  CHECK(node.stats().dropped_oversized == 0);
  CHECK(node.stats().node_deltas_applied == 904);
  std::size_t key_values = 0;
  for (const auto& nd : body.delta.node_deltas) key_values += nd.key_values.size();
  CHECK(key_values == meta.at("key_values_total").get<std::size_t>());
  CHECK(node.stats().key_values_applied == key_values);
  CHECK(node.cluster_state().size() == 1502);
  CHECK(state_named(node, "member-0901")->value("load") == "0.01");
  // member-0902 was cut after its first key-value yet claims 2.
  CHECK(state_named(node, "member-0902")->max_version() == 1);
  CHECK(node.stats().completeness_capped == 1);
}

TEST_CASE("bad-cluster: a Syn of another cluster gets the very reply Python sends") {
  const Packet syn = capture("bad-cluster", "syn");
  CHECK(syn.cluster_id == "another-cluster");
  const Packet reply = capture("bad-cluster", "reply");
  CHECK(std::holds_alternative<BadCluster>(reply.message));

  Node node = node_as("cpp", 9, 7108);
  auto ours = reply_to(node, capture_bytes("bad-cluster", "syn"), Stage::kStreamOpen);
  REQUIRE(ours);
  CHECK(ours->payload == capture_bytes("bad-cluster", "reply"));
  CHECK_FALSE(ours->awaits_ack);
  CHECK(node.stats().dropped_wrong_cluster == 1);

  // Python's reply to our Syn is counted and changes nothing.
  Node other = node_as("cpp-other", 10, 7109);
  other.handle_timeout(t0());
  CHECK_FALSE(reply_to(other, capture_bytes("bad-cluster", "reply"), Stage::kStreamReply));
  CHECK(other.stats().packets_in.bad_cluster == 1);
  CHECK(other.cluster_state().size() == 1);
}
