// Shared pieces of the fuzz targets: the libFuzzer entry point they all
// define, a reader that turns the fuzzer's bytes into choices, and an
// invariant check that aborts, so libFuzzer and the CTest corpus replay both
// see a violation as a crash.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace fuzz {

[[noreturn]] inline void fail(std::string_view what) {
  std::fprintf(stderr, "fuzz invariant violated: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

inline void require(bool ok, std::string_view what) {
  if (!ok) fail(what);
}

// Reads choices from the front of the input; once it runs dry every read
// returns zero, so any input is a complete program.
class Input {
 public:
  explicit Input(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

  bool empty() const { return pos_ >= bytes_.size(); }
  std::size_t remaining() const { return bytes_.size() - pos_; }

  std::uint8_t byte() { return empty() ? 0 : bytes_[pos_++]; }
  bool flag() { return (byte() & 1) != 0; }
  std::uint16_t u16() {
    const std::uint8_t lo = byte();
    const std::uint8_t hi = byte();
    return static_cast<std::uint16_t>(lo | (hi << 8));
  }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t{byte()} << (8 * i);
    return v;
  }
  // In [0, bound); bound > 0. One byte for small bounds, two otherwise.
  std::size_t below(std::size_t bound) {
    if (bound <= 256) return byte() % bound;
    return u16() % bound;
  }
  // Up to `n` bytes, fewer when the input runs out.
  std::span<const std::uint8_t> take(std::size_t n) {
    n = std::min(n, remaining());
    auto out = bytes_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  // A length byte (capped at `max_len`), then that many bytes.
  std::string string(std::size_t max_len) {
    const auto raw = take(std::min<std::size_t>(byte(), max_len));
    return std::string(raw.begin(), raw.end());
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
};

}  // namespace fuzz
