// The benchmark binary's entry point: Google Benchmark's own flags
// (--benchmark_filter, --benchmark_format=json, --benchmark_out=...).
#include <benchmark/benchmark.h>

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("heap_counter", "malloc_usable_size of live blocks");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
