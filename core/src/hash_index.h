// An open-addressing index of 32-bit values by 32-bit hashes (an internal
// header of the core), for the tables every replica a node creates goes
// through. A node-based std::unordered_map costs a lookup three or four
// cache misses (bucket, the node before, the node, the key); here the slots
// are eight bytes, in one array, and the caller compares the key a matching
// slot names: one miss for the slot, one for the key. Its owner keeps the
// keys and says which one a value names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "hash.h"

namespace aiocluster {

class HashIndex {
 public:
  // The value `find` returns when no slot matches.
  static constexpr std::uint32_t kNone = ~std::uint32_t{0};

  // The value under `hash` for which `matches(value)` holds, or kNone.
  template <typename Matches>
  std::uint32_t find(std::uint32_t hash, Matches&& matches) const {
    if (slots_.empty()) return kNone;
    const std::size_t n = slots_.size();
    for (std::size_t p = home(hash, n);; p = next(p, n)) {
      const Slot s = slots_[p];
      if (s.value == kNone) return kNone;
      if (s.hash == hash && matches(s.value)) return s.value;
    }
  }

  // Adds `value` (not kNone) under `hash`.
  void insert(std::uint32_t hash, std::uint32_t value);
  // Removes `value`, which was inserted under `hash`.
  void erase(std::uint32_t hash, std::uint32_t value);
  std::size_t size() const { return size_; }

 private:
  struct Slot {
    std::uint32_t hash = 0;
    std::uint32_t value = kNone;
  };
  static std::size_t home(std::uint32_t hash, std::size_t n) {
    return reduce(std::size_t{hash} << 32, n);
  }
  static std::size_t next(std::size_t p, std::size_t n) { return p + 1 == n ? 0 : p + 1; }
  void place(Slot s);
  void grow();

  std::vector<Slot> slots_;  // between 55 % and 80 % full
  std::size_t size_ = 0;
};

}  // namespace aiocluster
