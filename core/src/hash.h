// A fast seeded hash of short byte strings, for the core's open-addressing
// tables (an internal header of the core). Keys and node ids are a few dozen
// bytes and are hashed on every lookup: std::hash (murmur) spends more on
// them than the lookup itself. The structure is wyhash's (a 64x64->128-bit
// multiply folded into 64 bits); the seed is the node's own, so a peer
// cannot craft keys that all land in one probe sequence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace aiocluster {

namespace hash_detail {

// GCC and Clang's 128-bit integer (__extension__: not ISO C++).
__extension__ typedef unsigned __int128 uint128;

inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  const uint128 r = static_cast<uint128>(a) * b;
  return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}
inline std::uint64_t load64(const unsigned char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline std::uint64_t load32(const unsigned char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline constexpr std::uint64_t kP0 = 0xa0761d6478bd642fULL;
inline constexpr std::uint64_t kP1 = 0xe7037ed1a0b428dbULL;
inline constexpr std::uint64_t kP2 = 0x8ebc6af09c88c6e3ULL;

}  // namespace hash_detail

inline std::size_t hash_bytes(std::string_view bytes, std::uint64_t seed) {
  using namespace hash_detail;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t n = bytes.size();
  seed ^= kP0;
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  if (n <= 16) {
    if (n >= 4) {
      // Two overlapping pairs of 32-bit words cover 4 to 16 bytes.
      const std::size_t shift = (n >> 3) << 2;
      a = (load32(p) << 32) | load32(p + shift);
      b = (load32(p + n - 4) << 32) | load32(p + n - 4 - shift);
    } else if (n > 0) {
      a = (std::uint64_t{p[0]} << 16) | (std::uint64_t{p[n >> 1]} << 8) | p[n - 1];
    }
    // Short keys, the common case: one multiply mixes all of it.
    return mix(a ^ kP1 ^ n, b ^ seed);
  } else {
    const std::size_t length = n;
    while (n > 16) {
      seed = mix(load64(p) ^ kP1, load64(p + 8) ^ seed);
      p += 16;
      n -= 16;
    }
    // The last 16 bytes, overlapping what the loop read.
    a = load64(p + n - 16);
    b = load64(p + n - 8);
    n = length;
  }
  return mix(kP1 ^ n, mix(a ^ kP1, b ^ seed) ^ kP2);
}

// The core's open-addressing tables are kept between 55 % and 80 % full:
// linear probing stays short, and a table costs under twice its entries.
inline std::size_t table_capacity(std::size_t entries) { return entries * 20 / 11 + 2; }
inline bool table_full(std::size_t entries, std::size_t capacity) {
  return entries * 5 > capacity * 4;
}

// Maps the top 32 bits of a hash onto [0, n), n < 2^32, without a division
// (Lemire's multiply-shift): the home slot of the core's tables.
inline std::size_t reduce(std::size_t hash, std::size_t n) {
  return static_cast<std::size_t>(((static_cast<std::uint64_t>(hash) >> 32) * n) >> 32);
}

}  // namespace aiocluster
