#include "hash_index.h"

#include <utility>

namespace aiocluster {

void HashIndex::insert(std::uint32_t hash, std::uint32_t value) {
  if (table_full(size_ + 1, slots_.size())) grow();
  place(Slot{hash, value});
  ++size_;
}

void HashIndex::place(Slot s) {
  const std::size_t n = slots_.size();
  std::size_t p = home(s.hash, n);
  while (slots_[p].value != kNone) p = next(p, n);
  slots_[p] = s;
}

void HashIndex::grow() {
  std::vector<Slot> old(table_capacity(size_ + 1));
  old.swap(slots_);
  for (const Slot& s : old) {
    if (s.value != kNone) place(s);
  }
}

// Backward-shift deletion: no tombstones, so a lookup stops at the first
// free slot whatever was erased before.
void HashIndex::erase(std::uint32_t hash, std::uint32_t value) {
  const std::size_t n = slots_.size();
  std::size_t hole = home(hash, n);
  while (slots_[hole].value != value) hole = next(hole, n);
  slots_[hole] = Slot{};
  --size_;
  for (std::size_t q = next(hole, n); slots_[q].value != kNone; q = next(q, n)) {
    const std::size_t h = home(slots_[q].hash, n);
    const bool stays = hole <= q ? (h > hole && h <= q) : (h > hole || h <= q);
    if (stays) continue;
    slots_[hole] = std::exchange(slots_[q], Slot{});
    hole = q;
  }
}

}  // namespace aiocluster
