// The driver of a fuzz target in an ordinary build: replays every file of
// the given corpus directories through LLVMFuzzerTestOneInput, then a fixed
// number of seeded mutations of each (bit flips, cuts, splices), so CI
// exercises every target without libFuzzer. A violated invariant aborts.
//
//   fuzz_corpus_<target> [--mutations N] <dir or file>...
#include <aiocluster/random.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_support.h"

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The input being run, saved by the abort handler so a failure replays.
const Bytes* current = nullptr;

extern "C" void save_current_input(int) {
  if (current != nullptr) {
    const int fd = ::open("fuzz-failure.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      [[maybe_unused]] const auto written = ::write(fd, current->data(), current->size());
      ::close(fd);
      static constexpr char kNote[] = "failing input saved to fuzz-failure.bin\n";
      [[maybe_unused]] const auto noted = ::write(STDERR_FILENO, kNote, sizeof(kNote) - 1);
    }
  }
  std::signal(SIGABRT, SIG_DFL);
}

void run(const Bytes& input) {
  current = &input;
  LLVMFuzzerTestOneInput(input.data(), input.size());
  current = nullptr;
}

Bytes mutate(const Bytes& seed, const std::vector<Bytes>& corpus, aiocluster::Rng& rng) {
  Bytes out = seed;
  const std::uint64_t edits = 1 + rng.below(4);
  for (std::uint64_t e = 0; e < edits; ++e) {
    switch (rng.below(5)) {
      case 0:  // flip a bit
        if (!out.empty())
          out[rng.below(out.size())] ^= static_cast<std::uint8_t>(1u << rng.below(8));
        break;
      case 1:  // overwrite a byte with a boundary value
        if (!out.empty()) {
          static constexpr std::uint8_t kInteresting[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
          out[rng.below(out.size())] = kInteresting[rng.below(std::size(kInteresting))];
        }
        break;
      case 2:  // cut the tail
        out.resize(rng.below(out.size() + 1));
        break;
      case 3: {  // drop a range
        if (out.empty()) break;
        const std::size_t at = rng.below(out.size());
        const std::size_t n = 1 + rng.below(std::min<std::size_t>(16, out.size() - at));
        out.erase(out.begin() + static_cast<std::ptrdiff_t>(at),
                  out.begin() + static_cast<std::ptrdiff_t>(at + n));
        break;
      }
      default: {  // splice in a piece of another corpus file
        const Bytes& other = corpus[rng.below(corpus.size())];
        if (other.empty()) break;
        const std::size_t from = rng.below(other.size());
        const std::size_t n = 1 + rng.below(std::min<std::size_t>(64, other.size() - from));
        const std::size_t at = rng.below(out.size() + 1);
        out.insert(out.begin() + static_cast<std::ptrdiff_t>(at),
                   other.begin() + static_cast<std::ptrdiff_t>(from),
                   other.begin() + static_cast<std::ptrdiff_t>(from + n));
        break;
      }
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t mutations = 0;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) {
      mutations = std::strtoul(argv[++i], nullptr, 10);
    } else if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
    } else if (std::filesystem::is_regular_file(arg)) {
      files.emplace_back(arg);
    } else {
      std::fprintf(stderr, "no such corpus: %s\n", arg.c_str());
      return 2;
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s [--mutations N] <corpus dir or file>...\n", argv[0]);
    return 2;
  }
  std::signal(SIGABRT, save_current_input);
  std::sort(files.begin(), files.end());  // a stable order, so a failure replays
  std::vector<Bytes> corpus;
  for (const auto& f : files) corpus.push_back(read_file(f));

  for (std::size_t i = 0; i < corpus.size(); ++i) run(corpus[i]);
  aiocluster::Rng rng(2024);
  for (std::size_t m = 0; m < mutations; ++m) run(mutate(corpus[m % corpus.size()], corpus, rng));
  std::printf("replayed %zu corpus files and %zu mutations\n", corpus.size(), mutations);
  return 0;
}
