#include "aiocluster/framing.h"

#include <algorithm>

namespace aiocluster {

Bytes encode_frame(ByteView packet) {
  Bytes out(kFrameHeaderSize + packet.size());
  const auto n = static_cast<std::uint32_t>(packet.size());
  out[0] = static_cast<std::uint8_t>(n >> 24);
  out[1] = static_cast<std::uint8_t>(n >> 16);
  out[2] = static_cast<std::uint8_t>(n >> 8);
  out[3] = static_cast<std::uint8_t>(n);
  std::copy(packet.begin(), packet.end(), out.begin() + kFrameHeaderSize);
  return out;
}

std::size_t FrameDecoder::wanted() const {
  if (!payload_size_) return kFrameHeaderSize - buffer_.size();
  return kFrameHeaderSize + *payload_size_ - buffer_.size();
}

std::size_t FrameDecoder::feed(ByteView bytes) {
  std::size_t used = 0;
  while (!error_ && used < bytes.size()) {
    if (payload_size_ && buffer_.size() == kFrameHeaderSize + *payload_size_)
      break;  // whole frame waits
    const std::size_t take = std::min(wanted(), bytes.size() - used);
    buffer_.insert(buffer_.end(), bytes.begin() + static_cast<std::ptrdiff_t>(used),
                   bytes.begin() + static_cast<std::ptrdiff_t>(used + take));
    used += take;
    if (!payload_size_ && buffer_.size() == kFrameHeaderSize) {
      const std::size_t n = (std::size_t{buffer_[0]} << 24) | (std::size_t{buffer_[1]} << 16) |
                            (std::size_t{buffer_[2]} << 8) | std::size_t{buffer_[3]};
      if (n == 0) {
        error_ = FrameError::kEmpty;
      } else if (n > max_payload_size_) {
        error_ = FrameError::kTooLarge;
      } else {
        // No reserve(n): a peer that announces a large frame and stalls holds
        // only what it really sent.
        payload_size_ = n;
      }
    }
  }
  return used;
}

std::optional<Bytes> FrameDecoder::next_frame() {
  if (error_ || !payload_size_ || buffer_.size() != kFrameHeaderSize + *payload_size_) {
    return std::nullopt;
  }
  Bytes payload(buffer_.begin() + kFrameHeaderSize, buffer_.end());
  buffer_.clear();
  payload_size_.reset();
  return payload;
}

}  // namespace aiocluster
