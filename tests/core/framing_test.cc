#include <doctest/doctest.h>

#include "harness.h"

using namespace testing;

TEST_CASE("frames carry a big-endian length prefix") {
  const Bytes payload = {1, 2, 3};
  CHECK(encode_frame(payload) == Bytes{0, 0, 0, 3, 1, 2, 3});
}

TEST_CASE("frames reassemble from any chunking") {
  Bytes stream;
  std::vector<Bytes> sent;
  for (int i = 1; i <= 5; ++i) {
    Bytes payload(static_cast<std::size_t>(i * 37), static_cast<std::uint8_t>(i));
    sent.push_back(payload);
    const Bytes frame = encode_frame(payload);
    stream.insert(stream.end(), frame.begin(), frame.end());
  }
  for (std::size_t chunk : {1u, 2u, 3u, 5u, 64u, 1000u}) {
    FrameDecoder decoder(1000);
    std::vector<Bytes> got;
    ByteView rest(stream);
    while (!rest.empty()) {
      ByteView piece = rest.subspan(0, std::min(chunk, rest.size()));
      rest = rest.subspan(piece.size());
      while (!piece.empty()) {
        const std::size_t used = decoder.feed(piece);
        piece = piece.subspan(used);
        while (auto frame = decoder.next_frame()) got.push_back(std::move(*frame));
      }
    }
    CHECK(got == sent);
    CHECK(decoder.idle());
    CHECK_FALSE(decoder.error());
  }
}

TEST_CASE("a zero length or one above the maximum is an error") {
  FrameDecoder zero(100);
  zero.feed(Bytes{0, 0, 0, 0, 9});
  CHECK(zero.error() == FrameError::kEmpty);
  CHECK_FALSE(zero.next_frame());

  FrameDecoder big(100);
  big.feed(Bytes{0, 0, 0, 101});
  CHECK(big.error() == FrameError::kTooLarge);

  FrameDecoder exact(100);
  Bytes frame = encode_frame(Bytes(100, 7));
  CHECK(exact.feed(frame) == frame.size());
  CHECK(exact.next_frame()->size() == 100);
}

TEST_CASE("a decoder buffers at most one frame") {
  FrameDecoder decoder(10);
  Bytes two = encode_frame(Bytes(3, 1));
  const Bytes second = encode_frame(Bytes(4, 2));
  two.insert(two.end(), second.begin(), second.end());
  CHECK(decoder.feed(two) == 7);  // stops after the first frame
  CHECK(decoder.wanted() == 0);
  CHECK(decoder.next_frame()->size() == 3);
  CHECK(decoder.wanted() == 4);
}
