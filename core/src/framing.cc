#include "aiocluster/framing.h"

#include <algorithm>

namespace aiocluster {

std::array<std::uint8_t, kFrameHeaderSize> frame_header(std::size_t size) {
  const auto n = static_cast<std::uint32_t>(size);
  return {static_cast<std::uint8_t>(n >> 24), static_cast<std::uint8_t>(n >> 16),
          static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)};
}

Bytes encode_frame(ByteView packet) {
  Bytes out(kFrameHeaderSize + packet.size());
  const auto header = frame_header(packet.size());
  std::copy(header.begin(), header.end(), out.begin());
  std::copy(packet.begin(), packet.end(), out.begin() + kFrameHeaderSize);
  return out;
}

std::size_t FrameDecoder::wanted() const {
  if (!payload_size_) return kFrameHeaderSize - header_size_;
  return *payload_size_ - payload_.size();
}

std::size_t FrameDecoder::feed(ByteView bytes) {
  std::size_t used = 0;
  while (!error_ && used < bytes.size()) {
    if (payload_size_ && payload_.size() == *payload_size_) break;  // whole frame waits
    const std::size_t take = std::min(wanted(), bytes.size() - used);
    const auto from = bytes.begin() + static_cast<std::ptrdiff_t>(used);
    used += take;
    if (payload_size_) {
      // No reserve(n): a peer that announces a large frame and stalls holds
      // only what it really sent.
      payload_.insert(payload_.end(), from, from + static_cast<std::ptrdiff_t>(take));
      continue;
    }
    std::copy(from, from + static_cast<std::ptrdiff_t>(take), header_.begin() + header_size_);
    header_size_ += take;
    if (header_size_ < kFrameHeaderSize) continue;
    const std::size_t n = (std::size_t{header_[0]} << 24) | (std::size_t{header_[1]} << 16) |
                          (std::size_t{header_[2]} << 8) | std::size_t{header_[3]};
    if (n == 0) {
      error_ = FrameError::kEmpty;
    } else if (n > max_payload_size_) {
      error_ = FrameError::kTooLarge;
    } else {
      payload_size_ = n;
    }
  }
  return used;
}

std::optional<Bytes> FrameDecoder::next_frame() {
  if (error_ || !payload_size_ || payload_.size() != *payload_size_) return std::nullopt;
  Bytes payload = std::move(payload_);
  payload_ = Bytes();
  payload_size_.reset();
  header_size_ = 0;
  return payload;
}

}  // namespace aiocluster
