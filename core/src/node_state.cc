#include "aiocluster/node_state.h"

#include <functional>
#include <stdexcept>

namespace aiocluster {

namespace {

constexpr std::size_t kNone = SIZE_MAX;

// Grows by an eighth rather than doubling: a node holds a copy of every
// key of the cluster, and the unused tail of these arrays is most of what
// doubling would waste.
template <typename Vector>
void reserve_one_more(Vector& v, std::size_t extra = 1) {
  if (v.size() + extra <= v.capacity()) return;
  v.reserve(std::max(v.size() + extra, v.capacity() + v.capacity() / 8 + 1));
}

// The index is kept between 55% and 80% full: linear probing stays short
// and the index costs 5 to 7 bytes per key.
std::size_t index_capacity(std::size_t keys) { return keys == 0 ? 0 : keys * 20 / 11 + 2; }
bool index_full(std::size_t keys, std::size_t capacity) { return keys * 5 > capacity * 4; }

// Maps the top 32 bits of a hash onto [0, n), n < 2^32, without a division
// (Lemire's multiply-shift).
std::size_t reduce(std::size_t hash, std::size_t n) {
  return static_cast<std::size_t>(((static_cast<std::uint64_t>(hash) >> 32) * n) >> 32);
}

std::size_t varint_size(std::size_t n) {
  std::size_t size = 1;
  for (; n >= 0x80; n >>= 7) ++size;
  return size;
}

auto version_less = [](const VersionedValue& e, std::uint64_t v) { return e.version < v; };

}  // namespace

std::size_t NodeState::hash(std::string_view key) { return std::hash<std::string_view>{}(key); }

std::size_t NodeState::probe(std::string_view key, std::size_t h) const {
  const std::size_t n = index_.size();
  std::size_t p = reduce(h, n);
  while (index_[p] != kFree && key_of(index_[p]) != key) {
    if (++p == n) p = 0;
  }
  return p;
}

std::size_t NodeState::slot_of(std::string_view key) const {
  if (index_.empty()) return kNone;
  const std::uint32_t slot = index_[probe(key, hash(key))];
  return slot == kFree ? kNone : slot;
}

const VersionedValue* NodeState::find(std::string_view key) const {
  const std::size_t slot = slot_of(key);
  return slot == kNone ? nullptr : &log_[slot];
}

std::optional<std::string> NodeState::value(std::string_view key) const {
  const VersionedValue* vv = find(key);
  if (vv == nullptr || !vv->visible()) return std::nullopt;
  return vv->value;
}

std::uint32_t NodeState::store_key(std::string_view key) {
  const std::size_t needed = varint_size(key.size()) + key.size();
  if (keys_.size() + needed > UINT32_MAX && dead_key_bytes_ > 0) compact();
  if (keys_.size() + needed > UINT32_MAX) {
    throw std::length_error("NodeState: more than 4 GiB of keys in one node state");
  }
  reserve_one_more(keys_, needed);
  const auto offset = static_cast<std::uint32_t>(keys_.size());
  for (std::size_t n = key.size();; n >>= 7) {
    if (n < 0x80) {
      keys_.push_back(static_cast<char>(n));
      break;
    }
    keys_.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  keys_.insert(keys_.end(), key.begin(), key.end());
  return offset;
}

// Backward-shift deletion keeps every probe sequence unbroken without
// tombstone markers in the index.
void NodeState::unindex(std::size_t position) {
  const std::size_t n = index_.size();
  std::size_t hole = position;
  index_[hole] = kFree;
  for (std::size_t q = hole + 1 == n ? 0 : hole + 1; index_[q] != kFree;
       q = q + 1 == n ? 0 : q + 1) {
    const std::size_t home = reduce(hash(key_of(index_[q])), n);
    // The entry at q may move back to the hole unless its home lies
    // cyclically in (hole, q].
    const bool stays = hole <= q ? (home > hole && home <= q) : (home > hole || home <= q);
    if (stays) continue;
    index_[hole] = index_[q];
    index_[q] = kFree;
    hole = q;
  }
}

// Forgets the key of a live slot: out of the index, its bytes dead.
void NodeState::make_hole(std::size_t slot) {
  const std::string_view key = key_of(slot);
  dead_key_bytes_ += varint_size(key.size()) + key.size();
  unindex(probe(key, hash(key)));
  key_at_[slot] = kHole;
  std::string().swap(log_[slot].value);
  --live_;
}

void NodeState::add_tombstone(std::uint64_t version, Instant now) {
  if (tombstones_.empty() || tombstones_.back().first < version) {
    reserve_one_more(tombstones_);
    tombstones_.emplace_back(version, now);
    return;
  }
  const auto it = std::lower_bound(tombstones_.begin(), tombstones_.end(), version,
                                   [](const auto& t, std::uint64_t v) { return t.first < v; });
  tombstones_.insert(it, {version, now});
}

void NodeState::drop_tombstone(std::uint64_t version) {
  const auto it = std::lower_bound(tombstones_.begin(), tombstones_.end(), version,
                                   [](const auto& t, std::uint64_t v) { return t.first < v; });
  if (it != tombstones_.end() && it->first == version) tombstones_.erase(it);
}

void NodeState::reindex(std::size_t capacity) {
  std::vector<std::uint32_t>(capacity, kFree).swap(index_);
  if (capacity == 0) return;
  for (std::size_t slot = 0; slot < key_at_.size(); ++slot) {
    if (key_at_[slot] == kHole) continue;
    const std::string_view key = key_of(slot);
    index_[probe(key, hash(key))] = static_cast<std::uint32_t>(slot);
  }
}

void NodeState::compact() {
  std::vector<VersionedValue> log;
  std::vector<std::uint32_t> key_at;
  std::vector<char> keys;
  log.reserve(live_);
  key_at.reserve(live_);
  keys.reserve(keys_.size() - dead_key_bytes_);
  for (std::size_t slot = 0; slot < log_.size(); ++slot) {
    if (key_at_[slot] == kHole) continue;
    const std::string_view key = key_of(slot);
    const char* begin = keys_.data() + key_at_[slot];
    const char* end = key.data() + key.size();
    key_at.push_back(static_cast<std::uint32_t>(keys.size()));
    keys.insert(keys.end(), begin, end);
    log.push_back(std::move(log_[slot]));
  }
  log_.swap(log);
  key_at_.swap(key_at);
  keys_.swap(keys);
  dead_key_bytes_ = 0;
  reindex(index_capacity(live_));
}

void NodeState::compact_if_sparse() {
  const std::size_t holes = log_.size() - live_;
  if ((holes > 16 && holes > live_) || (holes > 0 && live_ == 0) ||
      (dead_key_bytes_ > 256 && dead_key_bytes_ > keys_.size() / 2)) {
    compact();
  }
}

KeyChange NodeState::put(std::string_view key, VersionedValue value, Instant now) {
  KeyChange change;
  change.key = std::string(key);
  if (index_full(live_ + 1, index_.size())) reindex(index_capacity(live_ + 1));
  const std::size_t h = hash(key);
  std::size_t position = probe(key, h);
  std::size_t old = index_[position] == kFree ? kNone : index_[position];
  const std::uint64_t version = value.version;
  const bool tombstone = value.is_tombstone();

  // Takes the key's previous entry out (leaving a hole) and returns where its
  // bytes are, or stores the key when it is new.
  auto release_old = [&]() -> std::uint32_t {
    if (old == kNone) return store_key(key);
    if (log_[old].is_tombstone()) drop_tombstone(log_[old].version);
    change.old_value = std::move(log_[old]);
    std::string().swap(log_[old].value);
    const std::uint32_t offset = key_at_[old];
    key_at_[old] = kHole;
    --live_;
    return offset;
  };

  if (log_.empty() || version > log_.back().version) {
    // The usual case: owners write, and deltas arrive, in version order.
    const std::uint32_t offset = release_old();
    reserve_one_more(log_);
    reserve_one_more(key_at_);
    index_[position] = static_cast<std::uint32_t>(log_.size());
    log_.push_back(value);
    key_at_.push_back(offset);
  } else {
    const auto at = std::lower_bound(log_.begin(), log_.end(), version, version_less);
    const auto slot = static_cast<std::size_t>(at - log_.begin());
    if (at != log_.end() && at->version == version) {
      if (slot == old) {
        // Same key, same version: replaced in place.
        if (at->is_tombstone()) drop_tombstone(version);
        change.old_value = std::move(*at);
        *at = value;
        if (tombstone) add_tombstone(version, now);
        compact_if_sparse();
        change.new_value = std::move(value);
        return change;
      }
      if (key_at_[slot] != kHole) {
        // Another key held this version: only a corrupt peer sends that.
        // The newest write wins so each version names one entry.
        if (at->is_tombstone()) drop_tombstone(version);
        make_hole(slot);
        position = probe(key, h);  // the index moved under us
      }
      const std::uint32_t offset = release_old();
      log_[slot] = value;
      key_at_[slot] = offset;
      index_[position] = static_cast<std::uint32_t>(slot);
    } else {
      // An older version than every entry: kept in order at the cost of
      // renumbering the slots after it.
      const std::uint32_t offset = release_old();
      log_.insert(at, value);
      key_at_.insert(key_at_.begin() + static_cast<std::ptrdiff_t>(slot), offset);
      for (auto& entry : index_) {
        if (entry != kFree && entry >= slot) ++entry;
      }
      index_[position] = static_cast<std::uint32_t>(slot);
    }
  }
  ++live_;
  if (tombstone) add_tombstone(version, now);
  compact_if_sparse();
  change.new_value = std::move(value);
  return change;
}

std::optional<KeyChange> NodeState::set(std::string_view key, std::string_view value, Instant now) {
  const VersionedValue* old = find(key);
  if (old != nullptr && old->status == KeyStatus::kSet && old->value == value) return std::nullopt;
  max_version_ += 1;
  return put(key, VersionedValue{std::string(value), max_version_, KeyStatus::kSet}, now);
}

std::optional<KeyChange> NodeState::remove(std::string_view key, Instant now) {
  const VersionedValue* old = find(key);
  if (old == nullptr || old->status == KeyStatus::kDeleted) return std::nullopt;
  max_version_ += 1;
  return put(key, VersionedValue{std::string(), max_version_, KeyStatus::kDeleted}, now);
}

std::optional<KeyChange> NodeState::set_with_ttl(std::string_view key, std::string_view value,
                                                 Instant now) {
  const VersionedValue* old = find(key);
  if (old != nullptr && old->status == KeyStatus::kDeleteAfterTtl && old->value == value) {
    return std::nullopt;
  }
  max_version_ += 1;
  return put(key, VersionedValue{std::string(value), max_version_, KeyStatus::kDeleteAfterTtl},
             now);
}

std::optional<KeyChange> NodeState::delete_after_ttl(std::string_view key, Instant now) {
  const VersionedValue* old = find(key);
  if (old == nullptr || old->status != KeyStatus::kSet) return std::nullopt;
  max_version_ += 1;
  return put(key, VersionedValue{old->value, max_version_, KeyStatus::kDeleteAfterTtl}, now);
}

void NodeState::reserve(std::size_t entries) {
  if (log_.size() + entries > log_.capacity()) {
    log_.reserve(log_.size() + entries);
    key_at_.reserve(log_.size() + entries);
  }
  if (index_full(live_ + entries, index_.size())) reindex(index_capacity(live_ + entries));
}

KeyChange NodeState::apply(std::string_view key, VersionedValue value, Instant now) {
  return put(key, std::move(value), now);
}

void NodeState::wipe(std::uint64_t new_last_gc_version) {
  log_ = {};
  key_at_ = {};
  keys_ = {};
  index_ = {};
  tombstones_ = {};
  live_ = 0;
  dead_key_bytes_ = 0;
  max_version_ = 0;
  last_gc_version_ = new_last_gc_version;
}

void NodeState::raise_max_version(std::uint64_t version) {
  if (version > max_version_) max_version_ = version;
}

bool NodeState::observe_heartbeat(std::uint64_t heartbeat) {
  if (heartbeat <= heartbeat_) return false;
  heartbeat_ = heartbeat;
  return true;
}

std::size_t NodeState::gc_tombstones(Instant cutoff) {
  std::size_t removed = 0;
  std::size_t kept = 0;
  for (const auto& [version, changed] : tombstones_) {
    if (changed > cutoff) {
      tombstones_[kept++] = {version, changed};
      continue;
    }
    const auto at = std::lower_bound(log_.begin(), log_.end(), version, version_less);
    const auto slot = static_cast<std::size_t>(at - log_.begin());
    if (at == log_.end() || at->version != version || key_at_[slot] == kHole) continue;
    make_hole(slot);
    if (version > last_gc_version_) last_gc_version_ = version;
    ++removed;
  }
  tombstones_.resize(kept);
  if (removed > 0) compact_if_sparse();
  return removed;
}

}  // namespace aiocluster
