#include "aiocluster/node_state.h"

namespace aiocluster {

NodeState::NodeState(const NodeState& other)
    : id_(other.id_),
      heartbeat_(other.heartbeat_),
      max_version_(other.max_version_),
      last_gc_version_(other.last_gc_version_),
      scheduled_for_deletion_(other.scheduled_for_deletion_),
      entries_(other.entries_),
      tombstones_(other.tombstones_) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) by_version_.emplace(it->second.value.version, it);
}

NodeState& NodeState::operator=(const NodeState& other) {
  if (this != &other) *this = NodeState(other);
  return *this;
}

const VersionedValue* NodeState::find(std::string_view key) const {
  const auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second.value;
}

std::optional<std::string> NodeState::value(std::string_view key) const {
  const VersionedValue* vv = find(key);
  if (vv == nullptr || !vv->visible()) return std::nullopt;
  return vv->value;
}

KeyChange NodeState::put(std::string_view key, VersionedValue value, Instant now) {
  KeyChange change;
  change.key = std::string(key);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    it = entries_.emplace(change.key, Entry{value, now}).first;
  } else {
    const std::uint64_t old_version = it->second.value.version;
    by_version_.erase(old_version);
    if (it->second.value.is_tombstone()) tombstones_.erase(old_version);
    change.old_value = std::move(it->second.value);
    it->second = Entry{value, now};
  }
  auto [slot, inserted] = by_version_.emplace(value.version, it);
  if (!inserted) {
    // Another key held this version: only a corrupt peer sends that. The
    // newest write wins so the index stays one entry per version.
    const auto other = slot->second;
    tombstones_.erase(value.version);
    entries_.erase(other);
    slot->second = it;
  }
  if (value.is_tombstone()) tombstones_.insert(value.version);
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

KeyChange NodeState::apply(std::string_view key, VersionedValue value, Instant now) {
  return put(key, std::move(value), now);
}

void NodeState::wipe(std::uint64_t new_last_gc_version) {
  entries_.clear();
  by_version_.clear();
  tombstones_.clear();
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
  for (auto it = tombstones_.begin(); it != tombstones_.end();) {
    const auto entry = by_version_.find(*it);
    if (entry->second->second.status_changed > cutoff) {
      ++it;
      continue;
    }
    if (*it > last_gc_version_) last_gc_version_ = *it;
    entries_.erase(entry->second);
    by_version_.erase(entry);
    it = tombstones_.erase(it);
    ++removed;
  }
  return removed;
}

}  // namespace aiocluster
