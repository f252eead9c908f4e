#include "storage.h"

#include <algorithm>
#include <cassert>
#include <cstring>
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
  Chunk* chunk = add(std::move(bytes), size);
  chunk->refs = 1;
  return chunk;
}

void ByteStore::drop_if_unused(Chunk* chunk) { release(chunk, 0); }

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

KeysTable::~KeysTable() = default;

std::uint32_t KeysTable::hash(ByteView id, const NodeState::Keys& keys) const {
  auto text = [](const std::uint8_t* at, std::size_t size) {
    return std::string_view(reinterpret_cast<const char*>(at), size);
  };
  std::uint64_t h = hash_bytes(text(id.data(), id.size()), seed_);
  for (const Entry& e : keys.log) {
    if (e.chunk != nullptr) h = hash_bytes(text(e.stored, stored::size(e.stored)), h ^ e.version);
  }
  return static_cast<std::uint32_t>((h & mask_) >> 32);
}

bool KeysTable::same(const Frozen& frozen, ByteView id, const NodeState::Keys& keys) {
  if (frozen.live != keys.live || frozen.id_size != id.size() ||
      std::memcmp(frozen.bytes.bytes.data(), id.data(), id.size()) != 0) {
    return false;
  }
  const Entry* f = frozen.log.begin();
  for (const Entry& e : keys.log) {
    if (e.chunk == nullptr) continue;
    const std::size_t size = stored::size(e.stored);
    if (f->version != e.version || stored::size(f->stored) != size ||
        std::memcmp(f->stored, e.stored, size) != 0) {
      return false;
    }
    ++f;
  }
  return true;
}

NodeState::Keys* KeysTable::hold(ByteView id, const NodeState::Keys& keys) {
  const std::uint32_t h = hash(id, keys);
  const std::uint32_t found =
      index_.find(h, [&](std::uint32_t number) { return same(*blocks_[number], id, keys); });
  if (found != HashIndex::kNone) {
    ++blocks_[found]->holders;
    return blocks_[found].get();
  }
  auto frozen = std::make_unique<Frozen>();
  std::size_t size = id.size();
  for (const Entry& e : keys.log) {
    if (e.chunk != nullptr) size += stored::size(e.stored);
  }
  Chunk& bytes = frozen->bytes;
  bytes.bytes = Bytes(size);
  bytes.used = bytes.live = size;
  bytes.refs = keys.live;
  std::uint8_t* at = bytes.bytes.data();
  std::memcpy(at, id.data(), id.size());
  at += id.size();
  frozen->log.reserve(pool_, keys.live);
  for (const Entry& e : keys.log) {
    if (e.chunk == nullptr) continue;
    const std::size_t n = stored::size(e.stored);
    std::memcpy(at, e.stored, n);
    frozen->log.push_back(Entry{e.version, at, &bytes});
    at += n;
  }
  frozen->live = keys.live;
  frozen->hash = h;
  frozen->holders = 1;
  frozen->id_size = static_cast<std::uint32_t>(id.size());
  if (free_.empty()) {
    frozen->number = static_cast<std::uint32_t>(blocks_.size());
    blocks_.emplace_back();
  } else {
    frozen->number = free_.back();
    free_.pop_back();
  }
  Frozen* made = frozen.get();
  index_.insert(h, made->number);
  blocks_[made->number] = std::move(frozen);
  return made;
}

void KeysTable::release(NodeState::Keys* keys) {
  auto* frozen = static_cast<Frozen*>(keys);
  if (--frozen->holders > 0) return;
  const std::uint32_t number = frozen->number;
  index_.erase(frozen->hash, number);
  frozen->log.free(pool_);
  blocks_[number].reset();
  free_.push_back(number);
}

std::size_t KeysTable::holders() const {
  std::size_t n = 0;
  for (const auto& frozen : blocks_) n += frozen != nullptr ? frozen->holders : 0;
  return n;
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
  slabs_.push_back(std::make_unique_for_overwrite<Line[]>(kSlab / sizeof(Line)));
  next_ = slabs_.back()[0].bytes;
  left_ = kSlab;
}

// Not carved from the current slab: that would leave the slab's rest in
// classes too large for anything else to take.
void* SlabPool::take_slab() {
  slabs_.push_back(std::make_unique_for_overwrite<Line[]>(kSlab / sizeof(Line)));
  return slabs_.back()[0].bytes;
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

std::uint32_t IdTable::hash(ByteView encoded) const {
  const std::string_view text(reinterpret_cast<const char*>(encoded.data()), encoded.size());
  return static_cast<std::uint32_t>(hash_bytes(text, seed_) >> 32);
}

IdTable::Ref IdTable::hold(ByteView encoded) {
  const std::uint32_t h = hash(encoded);
  const Ref found = refs_.find(h, [&](Ref ref) {
    const Id& id = ids_[ref];
    return id.size == encoded.size() &&
           (id.size == 0 || std::memcmp(id.bytes.get(), encoded.data(), id.size) == 0);
  });
  if (found != HashIndex::kNone) {
    ++ids_[found].holders;
    return found;
  }
  Ref ref;
  if (!free_.empty()) {
    ref = free_.back();
    free_.pop_back();
  } else {
    // Bounded by the ids replicas hold: ClusterState caps its nodes far
    // below this.
    assert(ids_.size() < kMaxRefs);
    ref = static_cast<Ref>(ids_.size());
    ids_.emplace_back();
  }
  // A zero-length id still gets a block of its own, so that its view is
  // the table's.
  Id& id = ids_[ref];
  id.bytes =
      std::make_unique_for_overwrite<std::uint8_t[]>(std::max<std::size_t>(encoded.size(), 1));
  std::copy(encoded.begin(), encoded.end(), id.bytes.get());
  id.size = static_cast<std::uint32_t>(encoded.size());
  id.holders = 1;
  refs_.insert(h, ref);
  return ref;
}

void IdTable::release(Ref ref) {
  Id& id = ids_[ref];
  if (--id.holders != 0) return;
  refs_.erase(hash(bytes(ref)), ref);
  id.bytes.reset();
  id.size = 0;
  free_.push_back(ref);
}

}  // namespace aiocluster
