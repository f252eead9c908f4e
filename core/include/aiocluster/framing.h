// Length-prefixed framing of the TCP transport (PROTOCOL.md section 2): a
// 4-byte big-endian length, then that many bytes of a PacketPb. Every stream
// driver feeds received bytes through a FrameDecoder so they all enforce the
// same limits.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "aiocluster/types.h"

namespace aiocluster {

inline constexpr std::size_t kFrameHeaderSize = 4;

// The length prefix of a packet of `size` bytes: a driver writes it, then
// the packet, without copying the packet into a frame.
std::array<std::uint8_t, kFrameHeaderSize> frame_header(std::size_t size);
// The prefix and the packet in one buffer.
Bytes encode_frame(ByteView packet);

enum class FrameError : std::uint8_t {
  kEmpty,     // a length of zero
  kTooLarge,  // a length above the maximum payload size
};

// Reassembles frames from a byte stream in arbitrary chunks. After an error
// the stream is unusable: the connection must be closed. Drivers size it
// with Config::max_inbound_payload_size: what a node accepts, not what it
// sends.
class FrameDecoder {
 public:
  explicit FrameDecoder(std::size_t max_payload_size) : max_payload_size_(max_payload_size) {}

  // Appends received bytes; returns how many were consumed (fewer than given
  // only once a whole frame is buffered, so a peer cannot make us buffer
  // more than one frame).
  std::size_t feed(ByteView bytes);
  // The next whole frame's payload, if one is complete: the buffer it was
  // received into, handed over (pass it on to Node::handle_packet(Bytes&&)).
  std::optional<Bytes> next_frame();
  std::optional<FrameError> error() const { return error_; }
  // Bytes still needed to complete the current frame (header included).
  std::size_t wanted() const;
  // The payload size the current frame's prefix announced, once read.
  std::optional<std::size_t> announced_size() const { return payload_size_; }
  bool idle() const { return header_size_ == 0 && payload_.empty(); }

 private:
  std::size_t max_payload_size_;
  std::array<std::uint8_t, kFrameHeaderSize> header_{};
  std::size_t header_size_ = 0;  // bytes of header_ received
  Bytes payload_;
  std::optional<std::size_t> payload_size_;
  std::optional<FrameError> error_;
};

}  // namespace aiocluster
