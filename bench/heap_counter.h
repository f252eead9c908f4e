// Counts the heap this process uses: the bench binary replaces the global
// operator new/delete (heap_counter.cc) so benchmarks can report bytes per
// key or per node and allocations per operation as counters.
#pragma once

#include <cstdint>

namespace bench {

struct HeapStats {
  // Bytes of the blocks currently allocated, as malloc_usable_size reports
  // them: the allocator's rounding is included, its chunk headers are not.
  std::int64_t live_bytes = 0;
  // Every allocation since the start of the process.
  std::uint64_t allocations = 0;
};

HeapStats heap_stats();

}  // namespace bench
