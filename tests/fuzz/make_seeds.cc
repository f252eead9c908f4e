// Writes the checked-in seed corpus of every fuzz target: real Syn, SynAck,
// Ack and BadCluster packets of the fuzz scenario (scenario.h), wrapped in
// each target's input format. Deterministic, so rerunning it after a change
// of the scenario or the wire format rewrites the same files.
//
//   fuzz_make_seeds tests/fuzz/corpus
#include <aiocluster/aiocluster.h>
#include <zstd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "handle_packet_ops.h"
#include "scenario.h"

namespace {

using namespace aiocluster;
namespace fs = std::filesystem;

class Writer {
 public:
  explicit Writer(fs::path root) : root_(std::move(root)) {}

  void write(const std::string& target, const std::string& name, const Bytes& bytes) {
    const fs::path dir = root_ / target;
    fs::create_directories(dir);
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + (dir / name).string());
    ++files_;
  }
  std::size_t files() const { return files_; }

 private:
  fs::path root_;
  std::size_t files_ = 0;
};

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes random_bytes(Rng& rng, std::size_t n, std::uint8_t first) {
  Bytes out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng.next());
  if (!out.empty()) out[0] = first;
  return out;
}

// A SynAck using every field and edge of the schema: the wide varints, IPv6
// and non-ASCII strings, tls names, each key status, max_version present and
// absent, empty values, a reset from version 0.
Packet rich_synack() {
  SynAck m;
  for (std::uint64_t i = 0; i < 12; ++i) {
    NodeId id{"node-" + std::to_string(i), i * 0x0123456789abcdefULL,
              Address{i % 3 == 0 ? "::1" : "10.0.0." + std::to_string(i),
                      static_cast<std::uint16_t>(i * 5461)},
              i % 2 == 0 ? "" : "n" + std::to_string(i) + ".example"};
    m.digest.node_digests.push_back(NodeDigest{id, i << (i * 5), i * 3, i * 1000 + (i << 40)});
  }
  const NodeId owner{"ünïcode-owner", UINT64_MAX, Address{"fe80::1", 65535}, "owner.example"};
  NodeDelta reset{owner, 0, 40, {}, 90};
  reset.key_values.push_back({"ключ", "значение", 41, KeyStatus::kSet});
  reset.key_values.push_back({"empty", "", 42, KeyStatus::kSet});
  reset.key_values.push_back({"gone", "", 50, KeyStatus::kDeleted});
  reset.key_values.push_back({"ttl", "still readable", 89, KeyStatus::kDeleteAfterTtl});
  NodeDelta old_peer{
      m.digest.node_digests[3].node_id, 7, 0, {{"k", "v", 8, KeyStatus::kSet}}, std::nullopt};
  NodeDelta wide{m.digest.node_digests[5].node_id,
                 UINT64_MAX - 2,
                 0,
                 {{"last", std::string(300, 'x'), UINT64_MAX - 1, KeyStatus::kSet}},
                 UINT64_MAX};
  m.delta.node_deltas = {reset, old_peer, wide};
  return Packet{fuzz::kClusterId, std::move(m)};
}

// `plain` as a compressed packet (proto/README.md section 5): the marker and
// one zstd frame.
Bytes compressed(const Bytes& plain) {
  Bytes out(1 + ZSTD_compressBound(plain.size()));
  out[0] = 0xB7;
  const std::size_t n =
      ZSTD_compress(out.data() + 1, out.size() - 1, plain.data(), plain.size(), 1);
  if (ZSTD_isError(n)) throw std::runtime_error("zstd failed");
  out.resize(1 + n);
  return out;
}

// A Syn carrying `node`'s digest, as its next round would send it.
Bytes syn_of(const Node& node, const std::string& cluster_id) {
  Rng rng(3);
  return encode(Packet{cluster_id, Syn{node.cluster_state().digest(60'000, rng)}});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  Writer w{fs::path(argv[1])};
  const fuzz::MemCluster c = fuzz::build_scenario();

  // Both sides hold something new for the other, so every delta is non-empty.
  Node n0 = c.nodes[0]->fork(0);
  Node n1 = c.nodes[1]->fork(1);
  n0.set("seed-local", "from node 0");
  n1.set("seed-key", "from node 1");

  // Node 0 opens an exchange with node 1: what node 0 would receive as replies.
  const Bytes syn0 = syn_of(n0, fuzz::kClusterId);
  Node n1_copy = n1.fork(2);
  const Bytes synack1 = n1_copy.handle_packet(syn0, c.now, {Stage::kStreamOpen}).reply->payload;
  // Node 1 opens an exchange with node 0: the Syn and the Ack node 0 receives.
  const Bytes syn1 = syn_of(n1, fuzz::kClusterId);
  Node n0_copy = n0.fork(3);
  const Bytes synack0 = n0_copy.handle_packet(syn1, c.now, {Stage::kStreamOpen}).reply->payload;
  const Bytes ack1 = n1.handle_packet(synack0, c.now, {Stage::kStreamReply}).reply->payload;
  const Bytes bad_cluster = encode(Packet{fuzz::kClusterId, BadCluster{}});
  const Bytes foreign_syn = syn_of(n1, "other-cluster");

  // decode: bare packets.
  w.write("decode", "syn", syn1);
  w.write("decode", "synack", synack1);
  w.write("decode", "ack", ack1);
  w.write("decode", "bad_cluster", bad_cluster);
  w.write("decode", "syn_other_cluster", foreign_syn);
  const Packet rich = rich_synack();
  w.write("decode", "synack_rich", encode(rich));
  w.write("decode", "syn_empty", encode(Packet{fuzz::kClusterId, Syn{}}));
  w.write("decode", "ack_empty", encode(Packet{"", Ack{}}));
  // Found by fuzz_decode (issue 11): bad_cluster behind a tag written as a
  // six-byte varint, which protobuf refuses; kept so the family stays covered.
  w.write("decode", "overlong_tag_bad_cluster", Bytes{0xaa, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00});

  // handle_packet: operation records (handle_packet_ops.h) against node 0.
  using fuzz::raw_op;
  w.write("handle_packet", "syn_stream", raw_op(Stage::kStreamOpen, 1, syn1));
  w.write("handle_packet", "synack_stream", raw_op(Stage::kStreamReply, 1, synack1));
  w.write("handle_packet", "synack_rich", raw_op(Stage::kStreamReply, 2, encode(rich)));
  w.write("handle_packet", "ack_stream", raw_op(Stage::kStreamAck, 1, ack1));
  w.write("handle_packet", "bad_cluster_stream", raw_op(Stage::kStreamReply, 1, bad_cluster));
  // Compression: a SynAck as one zstd frame, and a bomb (64 MiB of zeros
  // declared in a frame of a few kilobytes) that must be refused unread.
  w.write("handle_packet", "synack_compressed",
          raw_op(Stage::kStreamReply, 1, compressed(synack1)));
  w.write("handle_packet", "decompression_bomb",
          raw_op(Stage::kStreamOpen, 1, compressed(Bytes(std::size_t{64} << 20, 0))));
  w.write("handle_packet", "syn_other_cluster", raw_op(Stage::kStreamOpen, 5, foreign_syn));
  w.write("handle_packet", "exchange_datagram",
          concat({raw_op(Stage::kDatagram, 1, syn1), raw_op(Stage::kDatagram, 1, ack1)}));
  w.write("handle_packet", "replies_datagram",
          concat({raw_op(Stage::kDatagram, 1, synack1), raw_op(Stage::kDatagram, 2, synack1),
                  raw_op(Stage::kDatagram, 3, bad_cluster)}));
  w.write("handle_packet", "out_of_place",
          concat({raw_op(Stage::kStreamReply, 1, syn1), raw_op(Stage::kStreamOpen, 1, ack1),
                  raw_op(Stage::kStreamAck, 1, synack1), raw_op(Stage::kDatagram, 6, ack1)}));
  {
    Bytes tls = raw_op(Stage::kStreamOpen, 1, syn1);
    tls[1] = fuzz::inbound_byte(Stage::kStreamOpen, 1, 1);
    w.write("handle_packet", "syn_tls_names", tls);
  }
  w.write("handle_packet", "step_and_write",
          Bytes{2, 0xe8, 0x03, 3, 1, 7, 2, 0xa0, 0x0f, 0, 0x11, 0, 0});
  Rng rng(11);
  for (int i = 0; i < 8; ++i) {
    Bytes typed;
    for (int op = 0; op < 4; ++op) {
      const Bytes part =
          random_bytes(rng, 24, static_cast<std::uint8_t>(fuzz::OpKind::kTypedPacket));
      typed.insert(typed.end(), part.begin(), part.end());
    }
    w.write("handle_packet", "typed_" + std::to_string(i), typed);
  }

  // framing: max_payload_size choice, largest chunk, chunking seed, stream.
  const Bytes big_limit{0x00, 0x80, 0x40, 0x01};
  w.write("framing", "whole_exchange",
          concat({big_limit, encode_frame(syn1), encode_frame(synack1), encode_frame(ack1)}));
  w.write("framing", "bad_cluster_then_partial",
          concat({big_limit, encode_frame(bad_cluster), Bytes{0x00, 0x00, 0x01}}));
  w.write("framing", "zero_length", concat({big_limit, Bytes{0, 0, 0, 0, 1, 2, 3}}));
  w.write("framing", "too_large",
          concat({Bytes{0x10, 0x00, 0x07, 0x02}, Bytes{0, 0, 0x01, 0x00, 1}}));
  w.write("framing", "cut_short", concat({big_limit, Bytes{0, 0, 0, 9, 1, 2}}));

  // deltas: mode byte, then operations; random programs in each mode.
  for (int mode = 0; mode < 4; ++mode) {
    for (int i = 0; i < 3; ++i) {
      w.write("deltas", "mode" + std::to_string(mode) + "_" + std::to_string(i),
              random_bytes(rng, 300 + rng.below(300), static_cast<std::uint8_t>(mode)));
    }
  }
  std::printf("wrote %zu seed files under %s\n", w.files(), argv[1]);
  return 0;
}
