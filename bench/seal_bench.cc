// Sealed gossip (proto/README.md section 4): what AES-256-GCM costs per
// packet, on a typical small packet (1 KiB) and on the largest a node sends
// with a keyring (65,507 bytes on the wire: 65,465 inside the envelope).
//   BM_Seal/N  Sealer::seal, as a node seals every packet it sends (header,
//              nonce, encryption and tag)
//   BM_Open/N  envelope::Cipher::open of one sealed packet, the receiver's
//              crypto with the key set up once as a node holds it (the tag
//              checked, the packet decrypted); the replay check a node adds
//              after it is a few comparisons
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "compression.h"
#include "envelope.h"
#include "fixtures.h"
#include "sealer.h"

namespace bench {
namespace {

constexpr std::string_view kClusterId = "bench-cluster";

SealKey bench_key() {
  SealKey key;
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i * 7 + 1);
  return key;
}

Bytes plaintext(std::size_t size) {
  Bytes bytes(size);
  Rng rng(size);
  for (auto& b : bytes) b = static_cast<std::uint8_t>(rng.next());
  return bytes;
}

SealingConfig bench_sealing() {
  SealingConfig config;
  config.keyring = Keyring({bench_key()});
  return config;
}

void BM_Seal(benchmark::State& state) {
  const Bytes packet = plaintext(static_cast<std::size_t>(state.range(0)));
  const Instant now{std::chrono::seconds(1'800'000'000)};
  Sealer sealer(bench_sealing(), now, 42);
  std::size_t sealed_size = 0;
  for (auto _ : state) {
    Bytes sealed = sealer.seal(packet, kClusterId, now);
    sealed_size = sealed.size();
    benchmark::DoNotOptimize(sealed.data());
  }
  state.counters["wire_bytes"] = static_cast<double>(sealed_size);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * packet.size()));
}
BENCHMARK(BM_Seal)->Arg(1024)->Arg(static_cast<std::int64_t>(kMaxPayload - envelope::kOverhead));

void BM_Open(benchmark::State& state) {
  const Bytes packet = plaintext(static_cast<std::size_t>(state.range(0)));
  const Instant now{std::chrono::seconds(1'800'000'000)};
  Sealer sealer(bench_sealing(), now, 42);
  const Bytes sealed = sealer.seal(packet, kClusterId, now);
  envelope::Cipher cipher(bench_key());
  bool opened = true;
  for (auto _ : state) {
    std::optional<Bytes> plain = cipher.open(sealed, kClusterId);
    opened = opened && plain.has_value();
    benchmark::DoNotOptimize(plain);
  }
  if (!opened) state.SkipWithError("the sealed packet does not open");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * packet.size()));
}
BENCHMARK(BM_Open)->Arg(1024)->Arg(static_cast<std::int64_t>(kMaxPayload - envelope::kOverhead));

// Compression (proto/README.md section 5), beside sealing since a node does
// both to every packet it sends to a peer that speaks it:
//   BM_Compress/N    compression::Codec::compress (zstd level 1, contexts
//                    reused as a Node reuses them) of a real Ack: the first N
//                    bytes of one filled with a 100 x 100 cluster's key-values
//   BM_Decompress/N  the receiver's side, bounds checked
Bytes ack_prefix(std::size_t size) {
  Bytes ack = bench::full_ack(100, 100);
  ack.resize(std::min(size, ack.size()));
  return ack;
}

void BM_Compress(benchmark::State& state) {
  const Bytes packet = ack_prefix(static_cast<std::size_t>(state.range(0)));
  compression::Codec codec;
  std::size_t wire = 0;
  for (auto _ : state) {
    std::optional<Bytes> out = codec.compress(packet);
    wire = out ? out->size() : packet.size();
    benchmark::DoNotOptimize(out);
  }
  state.counters["wire_bytes"] = static_cast<double>(wire);
  state.counters["ratio"] = static_cast<double>(packet.size()) / static_cast<double>(wire);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * packet.size()));
}
BENCHMARK(BM_Compress)->Arg(1024)->Arg(64 * 1024);

void BM_Decompress(benchmark::State& state) {
  const Bytes packet = ack_prefix(static_cast<std::size_t>(state.range(0)));
  compression::Codec codec;
  const std::optional<Bytes> wire = codec.compress(packet);
  if (!wire) {
    state.SkipWithError("the packet does not compress");
    return;
  }
  bool ok = true;
  for (auto _ : state) {
    compression::Codec::Result r = codec.decompress(*wire, 1024 * 1024);
    ok = ok && !r.refused && r.plain.size() == packet.size();
    benchmark::DoNotOptimize(r.plain.data());
  }
  if (!ok) state.SkipWithError("the frame does not decompress");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * packet.size()));
}
BENCHMARK(BM_Decompress)->Arg(1024)->Arg(64 * 1024);

}  // namespace
}  // namespace bench
