#include "aiocluster/sim/trace_hash.h"

#include <bit>
#include <cstring>

namespace aiocluster::sim {

namespace {

constexpr std::uint64_t kMul1 = 0x9e3779b97f4a7c15ULL;
constexpr std::uint64_t kMul2 = 0xc2b2ae3d27d4eb4fULL;

std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// One 64-bit word into the state: multiply-rotate mixing in the style of
// xxHash's round, which spreads every input bit over the state.
std::uint64_t round(std::uint64_t state, std::uint64_t word) {
  state ^= rotl(word * kMul2, 31) * kMul1;
  return rotl(state, 27) * kMul1 + 0x52dce729ULL;
}

std::uint64_t load64(const std::uint8_t* p) {
  // Read as little-endian, so the value does not depend on the host.
  std::uint64_t v = 0;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) {
    std::uint64_t swapped = 0;
    for (int i = 0; i < 8; ++i) swapped = (swapped << 8) | ((v >> (8 * i)) & 0xff);
    v = swapped;
  }
  return v;
}

}  // namespace

void TraceHash::add(std::uint64_t value) { state_ = round(state_, value); }

void TraceHash::add(std::string_view text) { add(of(text)); }

std::uint64_t TraceHash::of(std::string_view text) {
  return of(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

std::uint64_t TraceHash::of(std::span<const std::uint8_t> bytes) {
  // Four independent lanes keep the multiplies pipelined on long packets.
  constexpr std::uint64_t kSeed = 0x13198a2e03707344ULL;
  std::uint64_t lanes[4] = {kSeed, kSeed ^ kMul1, kSeed ^ kMul2, ~kSeed};
  const std::uint8_t* p = bytes.data();
  std::size_t n = bytes.size();
  while (n >= 32) {
    for (int i = 0; i < 4; ++i) lanes[i] = round(lanes[i], load64(p + 8 * i));
    p += 32;
    n -= 32;
  }
  std::uint64_t state = lanes[0] ^ rotl(lanes[1], 7) ^ rotl(lanes[2], 12) ^ rotl(lanes[3], 18);
  while (n >= 8) {
    state = round(state, load64(p));
    p += 8;
    n -= 8;
  }
  std::uint64_t tail = 0;
  for (std::size_t i = 0; i < n; ++i) tail |= std::uint64_t{p[i]} << (8 * i);
  state = round(state, tail ^ (std::uint64_t{n} << 56));
  return round(state, bytes.size());
}

std::uint64_t TraceHash::value() const {
  // Final avalanche so nearby states give unrelated values.
  std::uint64_t h = state_;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

}  // namespace aiocluster::sim
