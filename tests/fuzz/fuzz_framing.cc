// Fuzz target: TCP frame reassembly. A byte stream is fed to FrameDecoder in
// chunks the input chooses, and again all at once and byte by byte; all three
// must yield exactly the frames and the error that a plain reading of the
// whole stream gives, and the decoder never holds more than one frame.
//
// Input: 2 bytes choose max_payload_size, 1 byte the largest chunk, 1 byte
// seeds the chunk sizes; the rest is the stream.
#include <aiocluster/framing.h>
#include <aiocluster/random.h>

#include <optional>
#include <vector>

#include "fuzz_support.h"

namespace {

using namespace aiocluster;
using fuzz::require;

struct Outcome {
  std::vector<Bytes> frames;
  std::optional<FrameError> error;
  std::size_t wanted = 0;  // bytes still needed, without an error
  bool idle = true;
};

// The specification, read straight off the whole stream.
Outcome reference(ByteView stream, std::size_t max_payload_size) {
  Outcome out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t left = stream.size() - pos;
    if (left < kFrameHeaderSize) {
      out.wanted = kFrameHeaderSize - left;
      out.idle = left == 0;
      return out;
    }
    const std::size_t n = (std::size_t{stream[pos]} << 24) | (std::size_t{stream[pos + 1]} << 16) |
                          (std::size_t{stream[pos + 2]} << 8) | std::size_t{stream[pos + 3]};
    if (n == 0 || n > max_payload_size) {
      out.error = n == 0 ? FrameError::kEmpty : FrameError::kTooLarge;
      return out;
    }
    if (left - kFrameHeaderSize < n) {
      out.wanted = kFrameHeaderSize + n - left;
      out.idle = false;
      return out;
    }
    const auto begin = stream.begin() + static_cast<std::ptrdiff_t>(pos + kFrameHeaderSize);
    out.frames.emplace_back(begin, begin + static_cast<std::ptrdiff_t>(n));
    pos += kFrameHeaderSize + n;
  }
}

// Feeds `stream` in chunks of the sizes `next_chunk` picks, the way a driver
// does: feed, then take every whole frame, until the chunk is used up.
template <typename NextChunk>
Outcome run_decoder(ByteView stream, std::size_t max_payload_size, NextChunk next_chunk) {
  FrameDecoder decoder(max_payload_size);
  Outcome out;
  std::size_t pos = 0;
  while (pos < stream.size() && !decoder.error()) {
    ByteView chunk = stream.subspan(pos, std::min(next_chunk(), stream.size() - pos));
    pos += chunk.size();
    while (!chunk.empty() && !decoder.error()) {
      const std::size_t used = decoder.feed(chunk);
      require(used <= chunk.size(), "feed consumes at most what it is given");
      chunk = chunk.subspan(used);
      std::optional<Bytes> frame = decoder.next_frame();
      // Stopping short is only allowed with a whole frame waiting.
      require(decoder.error() || chunk.empty() || frame.has_value(),
              "feed stops short only when a whole frame is buffered");
      while (frame) {
        require(!frame->empty() && frame->size() <= max_payload_size, "frames respect the limits");
        out.frames.push_back(std::move(*frame));
        frame = decoder.next_frame();
      }
    }
  }
  out.error = decoder.error();
  if (!out.error) {
    out.wanted = decoder.wanted();
    out.idle = decoder.idle();
  }
  return out;
}

void check_same(const Outcome& got, const Outcome& want, ByteView stream) {
  require(got.frames == want.frames, "the decoder yields the reference's frames");
  require(got.error == want.error, "the decoder reports the reference's error");
  if (!want.error) {
    require(got.wanted == want.wanted, "wanted() counts the bytes still missing");
    require(got.idle == want.idle, "idle() means no partial frame is held");
  }
  // Re-framing the frames gives back the stream they were cut from.
  Bytes again;
  for (const auto& f : got.frames) {
    const Bytes framed = encode_frame(f);
    again.insert(again.end(), framed.begin(), framed.end());
  }
  require(again.size() <= stream.size() && std::equal(again.begin(), again.end(), stream.begin()),
          "encode_frame restores the stream");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in({data, size});
  // Mostly small limits, so lengths above the maximum are common.
  const std::uint16_t limit_choice = in.u16();
  const std::size_t max_payload_size =
      (limit_choice & 0x8000) != 0 ? 65'507 : std::size_t{1} + (limit_choice % 512);
  const std::size_t max_chunk = std::size_t{1} + in.byte();
  Rng rng(in.byte());
  const ByteView stream = in.take(in.remaining());

  const Outcome want = reference(stream, max_payload_size);
  check_same(
      run_decoder(stream, max_payload_size, [&] { return std::size_t(1 + rng.below(max_chunk)); }),
      want, stream);
  check_same(run_decoder(stream, max_payload_size, [&] { return stream.size(); }), want, stream);
  check_same(run_decoder(stream, max_payload_size, [] { return std::size_t{1}; }), want, stream);
  return 0;
}
