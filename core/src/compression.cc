#include "compression.h"

#include <zstd.h>

#include <algorithm>

#include "aiocluster/codec.h"

namespace aiocluster::compression {

namespace {

constexpr int kLevel = 1;
// The output room compress() keeps from one packet to the next.
constexpr std::size_t kKeptOut = 64 * 1024;

struct FreeCCtx {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct FreeDCtx {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// A zstd frame, not a skippable one (which would decode to nothing).
bool zstd_magic(ByteView frame) {
  if (frame.size() < 4) return false;
  const std::uint32_t magic =
      static_cast<std::uint32_t>(frame[0]) | static_cast<std::uint32_t>(frame[1]) << 8 |
      static_cast<std::uint32_t>(frame[2]) << 16 | static_cast<std::uint32_t>(frame[3]) << 24;
  return magic == ZSTD_MAGICNUMBER;
}

}  // namespace

std::optional<std::size_t> grown_budget(std::size_t budget, std::size_t plain, std::size_t sent,
                                        std::size_t limit, std::size_t plain_cap) {
  if (sent == 0 || sent >= limit || limit - sent < limit / 8 || plain >= plain_cap) {
    return std::nullopt;
  }
  const std::uint64_t room = limit - sent;
  std::uint64_t grow = room * plain / sent * 7 / 8;
  grow = std::min<std::uint64_t>(grow, plain_cap - plain);
  if (grow < kMinSize) return std::nullopt;
  return budget + static_cast<std::size_t>(grow);
}

Ratio16 ratio16(std::size_t plain, std::size_t sent) {
  if (sent == 0) return 0;
  const std::uint64_t r = static_cast<std::uint64_t>(plain) * 16 / sent;
  return static_cast<Ratio16>(std::min<std::uint64_t>(r, 16 * 1024));
}

std::size_t predicted_budget(std::size_t budget, std::size_t limit, std::size_t plain_cap,
                             Ratio16 ratio) {
  // Length prefixes may each take a byte more in a larger packet.
  constexpr std::size_t kSlack = 64;
  if (plain_cap <= limit + kSlack) return budget;
  std::uint64_t target = static_cast<std::uint64_t>(limit) * ratio / 16 * 15 / 16;
  target = std::min<std::uint64_t>(target, plain_cap - kSlack);
  if (target < limit + kMinSize) return budget;
  return budget + static_cast<std::size_t>(target - limit);
}

struct Codec::Contexts {
  std::unique_ptr<ZSTD_CCtx, FreeCCtx> c;
  std::unique_ptr<ZSTD_DCtx, FreeDCtx> d;
  Bytes out;  // compress()'s output room, up to kKeptOut
};

Codec::Codec() : contexts_(std::make_unique<Contexts>()) {}
Codec::~Codec() = default;
Codec::Codec(Codec&&) noexcept = default;
Codec& Codec::operator=(Codec&&) noexcept = default;

std::optional<Bytes> Codec::compress(ByteView packet) {
  if (packet.size() < kMinSize) return std::nullopt;
  if (!contexts_->c) {
    contexts_->c.reset(ZSTD_createCCtx());
    if (!contexts_->c) return std::nullopt;
    ZSTD_CCtx_setParameter(contexts_->c.get(), ZSTD_c_compressionLevel, kLevel);
    // The size is in the header, so a receiver allocates exactly once;
    // the checksum is left out: sealing or the protobuf parse catches damage.
    ZSTD_CCtx_setParameter(contexts_->c.get(), ZSTD_c_contentSizeFlag, 1);
    ZSTD_CCtx_setParameter(contexts_->c.get(), ZSTD_c_checksumFlag, 0);
    // A 64 KiB window: blocks (and the context's tables) stay at 64 KiB
    // whatever the packet, about half the memory of level 1's default on
    // large packets, for a ratio within a few percent on gossip.
    ZSTD_CCtx_setParameter(contexts_->c.get(), ZSTD_c_windowLog, 16);
  }
  // Only a result smaller than the packet is kept, so the output needs no
  // more room than the packet itself.
  // Written into room the contexts keep (up to a datagram's worth), then
  // copied out at its size.
  Bytes larger;
  Bytes& out = packet.size() <= kKeptOut ? contexts_->out : larger;
  out.resize(packet.size());
  out[0] = kMarker;
  const std::size_t n = ZSTD_compress2(contexts_->c.get(), out.data() + 1, out.size() - 1,
                                       packet.data(), packet.size());
  if (ZSTD_isError(n) || n + 1 >= packet.size()) return std::nullopt;
  // Copied out at its size: a packet in flight or queued keeps no capacity
  // of the plain packet's size.
  return Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n + 1));
}

Codec::Result Codec::decompress(ByteView packet, std::size_t bound) {
  const ByteView frame = packet.subspan(1);
  if (!zstd_magic(frame) ||
      ZSTD_findFrameCompressedSize(frame.data(), frame.size()) != frame.size()) {
    return Result{DropReason::kDecompressMalformed, {}};
  }
  const unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR) {
    return Result{DropReason::kDecompressMalformed, {}};
  }
  if (size > bound) return Result{DropReason::kDecompressOversized, {}};
  if (!contexts_->d) {
    contexts_->d.reset(ZSTD_createDCtx());
    if (!contexts_->d) return Result{DropReason::kDecompressMalformed, {}};
  }
  Result result{std::nullopt, Bytes(static_cast<std::size_t>(size))};
  // Decoding into a buffer of the declared size: a frame that holds more
  // fails here rather than growing anything.
  const std::size_t n = ZSTD_decompressDCtx(contexts_->d.get(), result.plain.data(),
                                            result.plain.size(), frame.data(), frame.size());
  if (ZSTD_isError(n) || n != size) return Result{DropReason::kDecompressMalformed, {}};
  return result;
}

}  // namespace aiocluster::compression

namespace aiocluster {

std::optional<Bytes> decompress(ByteView bytes, std::size_t bound) {
  if (!compression::is_compressed(bytes)) return std::nullopt;
  compression::Codec codec;
  compression::Codec::Result result = codec.decompress(bytes, bound);
  if (result.refused) return std::nullopt;
  return std::move(result.plain);
}

}  // namespace aiocluster
