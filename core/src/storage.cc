#include "storage.h"

#include <algorithm>
#include <new>

namespace aiocluster {

Chunk* ByteStore::add(Bytes bytes, std::size_t used) {
  held_ += bytes.size();
  auto chunk = std::make_unique<Chunk>(
      Chunk{std::move(bytes), used, 0, 0, static_cast<std::uint32_t>(chunks_.size())});
  chunks_.push_back(std::move(chunk));
  return chunks_.back().get();
}

Chunk* ByteStore::adopt(Bytes bytes) {
  const std::size_t size = bytes.size();
  return add(std::move(bytes), size);
}

void ByteStore::drop_if_unused(Chunk* chunk) {
  if (chunk->refs == 0) free(chunk);
}

std::pair<Chunk*, std::uint8_t*> ByteStore::allocate(std::size_t size) {
  if (arena_ == nullptr || arena_->bytes.size() - arena_->used < size) {
    // A block in proportion to what is held, so a small state stays small
    // and a large one takes few blocks; a value larger than that gets its own.
    const std::size_t block = std::clamp(held_ / 8, kMinBlock, kMaxBlock);
    Chunk* previous = arena_;
    arena_ = add(Bytes(std::max(block, size)), 0);
    if (previous != nullptr && previous->refs == 0) free(previous);
  }
  std::uint8_t* at = arena_->bytes.data() + arena_->used;
  arena_->used += size;
  return {arena_, at};
}

void ByteStore::release(Chunk* chunk, std::size_t size) {
  chunk->live -= size;
  live_ -= size;
  if (--chunk->refs == 0 && chunk != arena_) free(chunk);
}

void ByteStore::free(Chunk* chunk) {
  held_ -= chunk->bytes.size();
  if (chunk == arena_) arena_ = nullptr;
  const std::uint32_t index = chunk->index;
  chunks_.back()->index = index;
  std::swap(chunks_[index], chunks_.back());
  chunks_.pop_back();
}

void* SlabPool::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (bytes > kLargest || alignment > 8) [[unlikely]] {
    return ::operator new(bytes, std::align_val_t(alignment));
  }
  const std::size_t c = class_of(bytes);
  if (FreeBlock* block = free_[c]) {
    free_[c] = block->next;
    return block;
  }
  const std::size_t size = size_of(c);
  if (left_ < size) [[unlikely]] {
    new_slab();
  }
  void* block = next_;
  next_ += size;
  left_ -= size;
  return block;
}

// Out of line: the common allocation stays a few instructions.
[[gnu::noinline]] void SlabPool::new_slab() {
  // What is left of the previous slab goes to the free lists.
  while (left_ >= 8) {
    std::size_t fit = class_of(left_);
    if (size_of(fit) > left_) --fit;
    auto* block = reinterpret_cast<FreeBlock*>(next_);
    block->next = free_[fit];
    free_[fit] = block;
    next_ += size_of(fit);
    left_ -= size_of(fit);
  }
  slabs_.push_back(std::make_unique_for_overwrite<std::byte[]>(kSlab));
  next_ = slabs_.back().get();
  left_ = kSlab;
}

// Not carved from the current slab: that would leave the slab's rest in
// classes too large for anything else to take.
void* SlabPool::take_slab() {
  slabs_.push_back(std::make_unique_for_overwrite<std::byte[]>(kSlab));
  return slabs_.back().get();
}

void SlabPool::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  if (bytes > kLargest || alignment > 8) {
    ::operator delete(p, bytes, std::align_val_t(alignment));
    return;
  }
  auto* block = static_cast<FreeBlock*>(p);
  const std::size_t c = class_of(bytes);
  block->next = free_[c];
  free_[c] = block;
}

}  // namespace aiocluster
