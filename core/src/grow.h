// Growth of per-replica containers (an internal header of the core). A node
// holds one of these per known node, so at thousands of nodes the slack a
// vector leaves when it doubles is most of what they cost: they grow by an
// eighth instead, at least a few elements at a time so that small ones do
// not reallocate at every step.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace aiocluster {

// The capacity to move to from `capacity` for room for `needed` elements:
// an eighth more (at least kMinGrowth more), at most `limit`, at least
// `needed`.
inline constexpr std::size_t kMinGrowth = 4;
constexpr std::size_t grown_capacity(std::size_t capacity, std::size_t needed,
                                     std::size_t limit = SIZE_MAX) {
  const std::size_t step = std::max(capacity / 8, kMinGrowth);
  const std::size_t grown = capacity > limit - step ? limit : capacity + step;
  return std::max(needed, std::min(grown, limit));
}

// Makes room in `v` for `extra` more elements, growing by an eighth.
template <typename Vector>
void reserve_more(Vector& v, std::size_t extra = 1) {
  const std::size_t needed = v.size() + extra;
  if (needed > v.capacity()) v.reserve(grown_capacity(v.capacity(), needed));
}

}  // namespace aiocluster
