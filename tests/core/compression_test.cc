// Negotiated zstd compression (proto/README.md section 5) through the public
// Node API: compressed packets between nodes that announce it, none towards
// a node that does not, refused frames counted by reason, budgets on the
// bytes sent, and compression under sealing.
#include "compression.h"

#include <doctest/doctest.h>
#include <zstd.h>

#include <cstdint>
#include <string>

#include "harness.h"

using namespace testing;

namespace {

constexpr std::uint8_t kMarker = 0xB7;

bool compressed(ByteView packet) { return !packet.empty() && packet[0] == kMarker; }

// `plain` as a compressed packet: the marker and one zstd frame, written by
// zstd itself (so the core is checked against the library, not itself).
Bytes frame_of(ByteView plain, bool with_size = true) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  REQUIRE(cctx != nullptr);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, with_size ? 1 : 0);
  Bytes out(1 + ZSTD_compressBound(plain.size()));
  out[0] = kMarker;
  std::size_t n = 0;
  if (with_size) {
    n = ZSTD_compress2(cctx, out.data() + 1, out.size() - 1, plain.data(), plain.size());
  } else {
    // Streamed, so the frame cannot declare its size.
    ZSTD_outBuffer o{out.data() + 1, out.size() - 1, 0};
    ZSTD_inBuffer i{plain.data(), plain.size(), 0};
    n = ZSTD_compressStream2(cctx, &o, &i, ZSTD_e_continue);
    REQUIRE_FALSE(ZSTD_isError(n));
    n = ZSTD_compressStream2(cctx, &o, &i, ZSTD_e_end);
    REQUIRE(n == 0);
    n = o.pos;
  }
  ZSTD_freeCCtx(cctx);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(1 + n);
  return out;
}

// Keys whose values repeat themselves, as configuration and addresses do.
KeyValues many_keys(int node, int count) {
  KeyValues kvs;
  for (int k = 0; k < count; ++k) {
    kvs.emplace_back("service/endpoint-" + std::to_string(k),
                     "http://10.0.0." + std::to_string(node) + ":8080/api/v1/health");
  }
  return kvs;
}

MemCluster pair_with_keys(int keys, const std::function<void(Config&)>& tweak = {}) {
  MemCluster c;
  for (int i = 0; i < 2; ++i) {
    Config config = make_config(i, {1 - i});
    if (tweak) tweak(config);
    c.add(std::move(config), many_keys(i, keys));
  }
  return c;
}

Bytes first_syn(Node& node, Instant now) {
  node.handle_timeout(now);
  auto tx = node.poll_transmit();
  REQUIRE(tx.has_value());
  while (node.poll_transmit()) {
  }
  return tx->payload;
}

}  // namespace

TEST_CASE("nodes that announce compression exchange compressed packets and converge") {
  auto run = [](bool on, std::uint64_t& compressed_seen, std::uint64_t& decoded_ok) {
    MemCluster c = pair_with_keys(100, [&](Config& config) { config.extensions.compression = on; });
    c.on_packet = [&](ByteView packet) {
      if (!compressed(packet)) return;
      ++compressed_seen;
      // What is inside is a plain PacketPb, as the spec says.
      const std::optional<Bytes> plain = decompress(packet);
      if (plain && std::holds_alternative<Packet>(decode(*plain))) ++decoded_ok;
    };
    c.run(10s);
    CHECK(c.converged());
    CHECK(c.value_seen(0, 1, "service/endpoint-99") == "http://10.0.0.1:8080/api/v1/health");
    for (const auto& n : c.nodes) CHECK(n->stats().packets_dropped() == 0);
    return c.nodes[0]->stats().bytes_out + c.nodes[1]->stats().bytes_out;
  };
  std::uint64_t seen_on = 0, ok_on = 0, seen_off = 0, ok_off = 0;
  const std::uint64_t bytes_on = run(true, seen_on, ok_on);
  const std::uint64_t bytes_off = run(false, seen_off, ok_off);
  CHECK(seen_on > 0);
  CHECK(ok_on == seen_on);
  CHECK(seen_off == 0);
  // 200 repetitive key-values: well under half the bytes.
  CHECK(bytes_on * 2 < bytes_off);
}

TEST_CASE("a node without compression never receives a compressed packet") {
  // Node 1 runs without it, as a 1.1.0 peer does: node 0 learns nothing of
  // it and compresses nothing, though it speaks compression.
  MemCluster c = pair_with_keys(
      100, [](Config& config) { config.extensions.compression = config.node_id.name == "node0"; });
  std::size_t seen = 0;
  c.on_packet = [&](ByteView packet) { seen += compressed(packet) ? 1 : 0; };
  c.run(10s);
  CHECK(c.converged());
  CHECK(seen == 0);
  CHECK(c.nodes[0]->stats().packets_compressed == 0);
  CHECK(c.nodes[1]->stats().packets_dropped() == 0);
}

TEST_CASE("refused frames are dropped and counted by reason") {
  Node a(make_config(0, {1}), t0(), 1, many_keys(0, 20));
  Node b(make_config(1, {0}), t0(), 2, many_keys(1, 20));
  const Bytes syn = first_syn(a, t0() + 1s);
  const Inbound in{Stage::kStreamOpen, PeerKey(), {}};
  const Instant now = t0() + 1s;

  SUBCASE("a valid frame is read like the packet it holds") {
    const Outcome out = b.handle_packet(frame_of(syn), now, in);
    CHECK(out.accepted());
    CHECK(b.stats().packets_decompressed == 1);
    REQUIRE(out.reply);
    // The Syn announced compression, so the SynAck comes back compressed.
    CHECK(compressed(out.reply->payload));
  }
  SUBCASE("a bomb: a few bytes declaring more than max_inbound_payload_size") {
    const Bytes zeros(b.config().max_inbound_payload_size + 1, 0);
    const Bytes bomb = frame_of(zeros);
    CHECK(bomb.size() < 200);
    CHECK(b.handle_packet(bomb, now, in).dropped == DropReason::kDecompressOversized);
    CHECK(b.stats().dropped_decompress_oversized == 1);
    // 256 MiB declared: refused as fast, nothing allocated for it.
    const Bytes big = frame_of(Bytes(256 << 20, 0));
    CHECK(b.handle_packet(big, now, in).dropped == DropReason::kDecompressOversized);
    CHECK(b.stats().dropped_decompress_oversized == 2);
  }
  SUBCASE("malformed frames") {
    Bytes valid = frame_of(syn);
    Bytes trailing = valid;
    trailing.push_back(0);  // bytes after the one frame
    Bytes truncated(valid.begin(), valid.end() - 3);
    Bytes corrupt = valid;
    corrupt[corrupt.size() / 2] ^= 0xff;
    Bytes two = valid;
    two.insert(two.end(), valid.begin() + 1, valid.end());  // two frames
    for (const Bytes& bad : {Bytes{kMarker}, Bytes{kMarker, 1, 2, 3, 4, 5}, frame_of(syn, false),
                             trailing, truncated, two}) {
      CHECK(b.handle_packet(bad, now, in).dropped == DropReason::kDecompressMalformed);
    }
    CHECK(b.stats().dropped_decompress_malformed == 6);
    CHECK(b.stats().packets_decompressed == 0);
    // A flipped byte inside the frame is refused, by zstd or by the parser
    // (frames carry no checksum: sealing, where wanted, authenticates).
    CHECK_FALSE(b.handle_packet(corrupt, now, in).accepted());
    CHECK(b.stats().node_deltas_applied == 0);
  }
  SUBCASE("a node without compression reads the marker as 1.1.0 does: malformed") {
    Config config = make_config(2, {0});
    config.extensions.compression = false;
    Node legacy(config, t0(), 3);
    CHECK(legacy.handle_packet(frame_of(syn), now, in).dropped == DropReason::kMalformed);
    CHECK(legacy.stats().dropped_decompress_malformed == 0);
  }
}

TEST_CASE("the packet budget counts the bytes sent: a compressed delta carries more") {
  // Packets of 1,024 bytes and 300 key-values each: a delta takes many rounds.
  auto run = [](bool on, std::size_t& largest_sent, std::size_t& largest_plain) {
    MemCluster c = pair_with_keys(300, [&](Config& config) {
      config.max_payload_size = 1024;
      config.extensions.compression = on;
    });
    c.on_packet = [&](ByteView packet) {
      largest_sent = std::max(largest_sent, packet.size());
      if (const auto plain = decompress(packet)) {
        largest_plain = std::max(largest_plain, plain->size());
      }
    };
    int rounds = 0;
    while (!c.converged() && rounds < 200) {
      c.step();
      ++rounds;
    }
    CHECK(c.converged());
    return rounds;
  };
  std::size_t sent_on = 0, plain_on = 0, sent_off = 0, plain_off = 0;
  const int rounds_on = run(true, sent_on, plain_on);
  const int rounds_off = run(false, sent_off, plain_off);
  CHECK(sent_on <= 1024);
  CHECK(sent_off <= 1024);
  // Deltas were planned past the limit, since what is sent still fits.
  CHECK(plain_on > 1024);
  CHECK(plain_off == 0);
  CHECK(rounds_on * 2 <= rounds_off);
}

TEST_CASE("compressed, then sealed: a keyring and compression together") {
  SealKey key{};
  key.fill(7);
  MemCluster c = pair_with_keys(100, [&](Config& config) {
    config.sealing.keyring = Keyring({key});
    config.sealing.mode = SealMode::kRequired;
  });
  std::size_t packets = 0, sealed_packets = 0;
  c.on_packet = [&](ByteView packet) {
    ++packets;
    sealed_packets += !packet.empty() && packet[0] == 0xA7 ? 1 : 0;
  };
  c.run(10s);
  CHECK(c.converged());
  CHECK(packets == sealed_packets);
  for (const auto& n : c.nodes) {
    CHECK(n->stats().packets_dropped() == 0);
    CHECK(n->stats().packets_compressed > 0);
    CHECK(n->stats().packets_decompressed > 0);
    CHECK(n->stats().packets_opened > 0);
  }
}

TEST_CASE("the first budget tried is the one the last ratio predicts") {
  using compression::predicted_budget;
  using compression::ratio16;
  constexpr std::size_t kLimit = 64 * 1024;
  constexpr std::size_t kCap = 256 * 1024;
  constexpr std::size_t kBudget = 60 * 1024;  // the delta's share of the limit
  CHECK(ratio16(4000, 1000) == 64);
  CHECK(ratio16(1500, 1000) == 24);
  CHECK(ratio16(1000, 0) == 0);
  // No ratio yet, or one too small to promise room: the budget as given.
  CHECK(predicted_budget(kBudget, kLimit, kCap, 0) == kBudget);
  CHECK(predicted_budget(kBudget, kLimit, kCap, 16) == kBudget);
  CHECK(predicted_budget(kBudget, kLimit, kCap, 17) == kBudget);
  // 2:1 expected: a plain packet of 2 x 15/16 of the limit, the rest of the
  // packet (limit - budget) unchanged.
  CHECK(predicted_budget(kBudget, kLimit, kCap, 32) == kBudget + kLimit * 15 / 8 - kLimit);
  // 3:1: 2.8125 limits of plain packet, still under the cap.
  CHECK(predicted_budget(kBudget, kLimit, kCap, 48) == kBudget + kLimit * 45 / 16 - kLimit);
  // 5:1 would be 4.6875 limits: the plain packet stops short of the cap, by
  // room for length prefixes that grow with it.
  const std::size_t at_cap = predicted_budget(kBudget, kLimit, kCap, 80);
  CHECK(at_cap < kBudget + kCap - kLimit);
  CHECK(at_cap + 128 > kBudget + kCap - kLimit);
  CHECK(predicted_budget(kBudget, kLimit, kCap, 800) == at_cap);
  // No room between the limit and the cap: nothing to predict.
  CHECK(predicted_budget(kBudget, kLimit, kLimit, 80) == kBudget);
}

TEST_CASE("once a node knows its ratio, its compressed deltas still fill the limit") {
  // Packets of 4 KiB, 2,000 key-values a node whose values (hex of a
  // pseudo-random number) compress about twofold: a replica takes many
  // exchanges, each answer cut short, the first of a node grown from the
  // plain budget, the later ones planned from the ratio. None goes past the
  // limit, and most come close to it.
  MemCluster c;
  std::uint64_t x = 1;
  for (int i = 0; i < 2; ++i) {
    Config config = make_config(i, {1 - i});
    config.max_payload_size = 4096;
    KeyValues kvs;
    for (int k = 0; k < 2000; ++k) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      char hex[17];
      for (int d = 0; d < 16; ++d) hex[d] = "0123456789abcdef"[(x >> (4 * d)) & 15];
      hex[16] = 0;
      kvs.emplace_back("k/" + std::to_string(k), hex);
    }
    c.add(std::move(config), std::move(kvs));
  }
  std::size_t packets = 0, full = 0, largest = 0;
  c.on_packet = [&](ByteView packet) {
    if (!compressed(packet)) return;
    ++packets;
    largest = std::max(largest, packet.size());
    full += packet.size() >= 4096 * 3 / 4 ? 1 : 0;
  };
  int rounds = 0;
  while (!c.converged() && rounds < 100) {
    c.step();
    ++rounds;
  }
  MESSAGE(packets, " compressed packets, ", full, " full, in ", rounds, " rounds");
  CHECK(c.converged());
  CHECK(largest <= 4096);
  CHECK(packets >= 8);
  CHECK(full * 4 >= packets * 3);
  for (const auto& n : c.nodes) CHECK(n->stats().packets_dropped() == 0);
}
