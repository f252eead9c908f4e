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

#include <chrono>

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

}  // namespace
}  // namespace bench
