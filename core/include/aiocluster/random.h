// A small seeded pseudo-random generator (xoshiro256**) with portable
// distributions, so a run replays bit for bit on every standard library.
// The core and the simulator take all their randomness from it.
#pragma once

#include <cstdint>
#include <span>
#include <utility>

namespace aiocluster {

class Rng {
 public:
  explicit Rng(std::uint64_t seed);

  std::uint64_t next();
  // Uniform in [0, bound); bound must be > 0.
  std::uint64_t below(std::uint64_t bound);
  // Uniform in [0, 1).
  double uniform();
  bool chance(double probability) { return uniform() < probability; }

  template <typename T>
  void shuffle(std::span<T> items) {
    for (std::size_t i = items.size(); i > 1; --i) {
      std::swap(items[i - 1], items[below(i)]);
    }
  }

 private:
  std::uint64_t s_[4];
};

}  // namespace aiocluster
