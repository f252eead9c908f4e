#include "driver_common/frame_reader.h"

namespace aiocluster::driver::detail {

bool LargeFrameBudget::reserve(std::size_t bytes) {
  if (bytes > capacity_ - in_use_) return false;
  in_use_ += bytes;
  return true;
}

FrameReader::Status FrameReader::feed(ByteView bytes) {
  decoder_.feed(bytes);
  if (decoder_.error()) return Status::kBadLength;
  const std::optional<std::size_t> size = decoder_.announced_size();
  if (size && *size > large_above_ && reserved_ == 0) {
    if (!budget_.reserve(*size)) return Status::kOverBudget;
    reserved_ = *size;
  }
  return Status::kOk;
}

std::optional<Bytes> FrameReader::next_frame() {
  std::optional<Bytes> frame = decoder_.next_frame();
  if (frame) {
    budget_.release(reserved_);
    reserved_ = 0;
  }
  return frame;
}

}  // namespace aiocluster::driver::detail
