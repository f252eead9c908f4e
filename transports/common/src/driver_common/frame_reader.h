// Reading frames on a driver's TCP connections within bounded memory. A
// frame may be as large as Config::max_inbound_payload_size (peers such as
// Python aiocluster 1.1.0 send SynAcks above max_payload_size), but frames
// above max_payload_size are paid for from one budget shared by all the
// driver's connections (Options::max_large_frame_bytes), reserved when the
// length prefix arrives. Frames within max_payload_size stay bounded by the
// connection caps, as before: no new way to refuse ordinary traffic.
#pragma once

#include <cstddef>
#include <optional>

#include "aiocluster/config.h"
#include "aiocluster/framing.h"
#include "aiocluster/types.h"

namespace aiocluster::driver::detail {

// Bytes reserved by large frames across a driver's connections.
class LargeFrameBudget {
 public:
  explicit LargeFrameBudget(std::size_t capacity) : capacity_(capacity) {}
  bool reserve(std::size_t bytes);
  void release(std::size_t bytes) { in_use_ -= bytes; }
  std::size_t in_use() const { return in_use_; }

 private:
  std::size_t capacity_;
  std::size_t in_use_ = 0;
};

// One connection's frames: the core's FrameDecoder at the node's inbound
// limit, with large frames paid from the shared budget. The budget must
// outlive the reader.
class FrameReader {
 public:
  enum class Status : std::uint8_t {
    kOk,
    kBadLength,   // zero, or above max_inbound_payload_size: close the connection
    kOverBudget,  // a large frame the shared budget cannot hold now: close the connection
  };

  FrameReader(const Config& config, LargeFrameBudget& budget)
      : decoder_(config.max_inbound_payload_size),
        large_above_(config.max_payload_size),
        budget_(budget) {}
  ~FrameReader() { budget_.release(reserved_); }
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  // Feeds bytes received, at most wanted() of them.
  Status feed(ByteView bytes);
  // The next whole frame's payload, if one is complete; its reservation ends.
  std::optional<Bytes> next_frame();
  // Bytes still needed to complete the current frame (header included).
  std::size_t wanted() const { return decoder_.wanted(); }

 private:
  FrameDecoder decoder_;
  std::size_t large_above_;
  LargeFrameBudget& budget_;
  std::size_t reserved_ = 0;
};

}  // namespace aiocluster::driver::detail
