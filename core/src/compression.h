// Negotiated zstd compression of whole packets (proto/README.md section 5;
// an internal header of the core). A compressed packet is the marker byte
// followed by exactly one zstd frame holding the plain PacketPb bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "aiocluster/stats.h"
#include "aiocluster/types.h"

namespace aiocluster::compression {

// Feature bit 1 of ExtensionsPb.features.
inline constexpr std::uint64_t kFeature = 2;
// Field 22, wire type 7: no protobuf parser reads a packet starting with it.
inline constexpr std::uint8_t kMarker = 0xB7;
// Smaller packets gain too little to pay for the frame header.
inline constexpr std::size_t kMinSize = 128;
// A packet of digests alone (hashes, versions, identities) shrinks by a
// tenth to a quarter, for zstd's fixed cost of several microseconds a frame:
// worth it only where digests are large (hundreds of members).
inline constexpr std::size_t kMinDigestOnlySize = 4096;
// Whether a packet of `plain_size` bytes is worth trying to compress.
inline bool worth_trying(std::size_t plain_size, bool carries_key_values) {
  return plain_size >= (carries_key_values ? kMinSize : kMinDigestOnlySize);
}
// What a sender ever puts in one frame.
inline constexpr std::size_t kMaxPlain = 256 * 1024;

// Re-plans of one delta, at most, to fill the room compression leaves.
inline constexpr int kMaxReplans = 3;

// The delta budget to try next when a packet of `plain` bytes went out as
// `sent` (<= limit): the room left, scaled by the ratio achieved, less an
// eighth as headroom, and never past `plain_cap` bytes of packet; nullopt
// when the room left is too little to gain from another try: an eighth of
// the limit or less, so that a packet planned from the ratio (which aims
// at fifteen sixteenths) goes out compressed once.
std::optional<std::size_t> grown_budget(std::size_t budget, std::size_t plain, std::size_t sent,
                                        std::size_t limit, std::size_t plain_cap);

// The compression ratio of a sender's packets, plain bytes per byte sent,
// in sixteenths: what the last large packet achieved (0: none yet).
using Ratio16 = std::uint32_t;
Ratio16 ratio16(std::size_t plain, std::size_t sent);

// The delta budget to try first, for a packet whose plain form fits
// `limit` under `budget`: grown so that, at `ratio`, the compressed packet
// fills fifteen sixteenths of `limit`, and never past `plain_cap` bytes of
// packet; `budget` itself when the ratio promises no room. One compression
// then usually suffices where growing from `budget` took two to four.
std::size_t predicted_budget(std::size_t budget, std::size_t limit, std::size_t plain_cap,
                             Ratio16 ratio);

inline bool is_compressed(ByteView packet) { return !packet.empty() && packet[0] == kMarker; }

// zstd contexts, reused from one packet to the next. Every call starts a
// fresh frame, so what a packet compresses to does not depend on what they
// did before (nodes sharing a workspace share them). They are created on
// first use, and zstd sizes their tables to the packets they see, so a node
// that never compresses holds nothing.
class Codec {
 public:
  Codec();
  ~Codec();
  Codec(Codec&&) noexcept;
  Codec& operator=(Codec&&) noexcept;

  // `packet` compressed (marker and frame), when that is smaller; nullopt
  // for packets below kMinSize and packets that do not shrink.
  std::optional<Bytes> compress(ByteView packet);

  // The plain packet inside `packet` (which starts with kMarker), at most
  // `bound` bytes, or why it is refused: kDecompressOversized when its frame
  // declares more than `bound`, kDecompressMalformed when it is not exactly
  // one zstd frame declaring its size, or does not decode to that size.
  // Nothing beyond `bound` is ever allocated.
  struct Result {
    std::optional<DropReason> refused;
    Bytes plain;
  };
  Result decompress(ByteView packet, std::size_t bound);

 private:
  struct Contexts;
  std::unique_ptr<Contexts> contexts_;
};

}  // namespace aiocluster::compression
