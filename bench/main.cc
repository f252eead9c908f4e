// The benchmark binary's entry point: Google Benchmark's own flags
// (--benchmark_filter, --benchmark_format=json, --benchmark_out=...).
#include <benchmark/benchmark.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

int main(int argc, char** argv) {
#ifdef __GLIBC__
  // glibc raises its trim and mmap thresholds the first time a large
  // mmapped block is freed, so a benchmark that frees more than 128 KiB at
  // the top of the heap per iteration either returns it to the kernel and
  // faults it back in (run alone) or not (after a benchmark that freed a
  // large block): its figure would depend on what ran before it. Fixed
  // thresholds give every benchmark the same allocator in any order.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("heap_counter", "malloc_usable_size of live blocks");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
