#include "aiocluster/node_state.h"

#include <bit>
#include <cassert>

#include "hash.h"
#include "storage.h"

namespace aiocluster {

namespace {

constexpr std::size_t kNone = SIZE_MAX;

// Whether a delta's key-value is one a replica stores: past `before` (what
// the replica holds), and not a tombstone at or below `gc` (collected).
bool stores(const wire::KeyValueView& kv, std::uint64_t before, std::uint64_t gc) {
  return kv.version > before && (kv.status == KeyStatus::kSet || kv.version > gc);
}

// Grows by an eighth rather than doubling: the unused tail of a vector
// every replica has is most of what doubling would waste.
template <typename Vector>
void reserve_one_more(Vector& v, std::size_t extra = 1) {
  if (v.size() + extra <= v.capacity()) return;
  v.reserve(std::max(v.size() + extra, v.capacity() + v.capacity() / 8 + 1));
}

// A key index is a table like the core's others (hash.h): 5 to 7 bytes per
// key; none for no keys.
std::size_t index_capacity(std::size_t keys) { return keys == 0 ? 0 : table_capacity(keys); }

// Key equality without a call for short keys (most are): two overlapping
// loads cover 4 to 16 bytes. Longer keys test their last eight bytes first:
// keys that share a probe sequence mostly share a prefix ("node/4711/load"),
// not an end.
bool same_key(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  auto load = [](std::string_view s, std::size_t at, std::size_t bytes) {
    std::uint64_t word = 0;
    std::memcpy(&word, s.data() + at, bytes);
    return word;
  };
  if (n >= 8) {
    if (load(a, n - 8, 8) != load(b, n - 8, 8)) return false;
    if (n <= 16) return load(a, 0, 8) == load(b, 0, 8);
    return std::memcmp(a.data(), b.data(), n - 8) == 0;
  }
  if (n >= 4) return load(a, 0, 4) == load(b, 0, 4) && load(a, n - 4, 4) == load(b, n - 4, 4);
  return a == b;
}

// Field by field, not `ref = ValueRef{...}`: GCC builds that temporary on the
// stack and copies its 25 bytes with two overlapping 16-byte loads, the
// second across three stores just made, which the CPU cannot forward to a
// load: a stall per key-value applied, most of the append loop's time.
[[gnu::always_inline]] inline void assign(ValueRef& ref, std::string_view value,
                                          std::uint64_t version, KeyStatus status) {
  ref.value = value;
  ref.version = version;
  ref.status = status;
}

// Where an applied key-value's bytes stay: in `chunk`, the packet the state
// took over, or copied to the arena when it is null.
std::pair<const std::uint8_t*, Chunk*> kept_bytes(ByteStore& bytes, const wire::KeyValueView& kv,
                                                  Chunk* chunk, std::size_t& copied) {
  if (chunk != nullptr) return {kv.stored, chunk};
  auto [block, at] = bytes.allocate(kv.stored_size);
  std::memcpy(at, kv.stored, kv.stored_size);
  copied += kv.stored_size;
  return {at, block};
}

}  // namespace

// A replica of a node without keys is this block, its encoded id and what
// its Node keeps per member: issue 13 asks for at most 200 bytes in all.
static_assert(sizeof(NodeState) == 64, "a NodeState fills one cache line");

KeyChange KeyChangeRef::to_change() const {
  KeyChange change{std::string(key), std::nullopt, new_value.to_value()};
  if (old_value) change.old_value = old_value->to_value();
  return change;
}

NodeState::NodeState(NodeId id) : NodeState(std::move(id), nullptr) {}

NodeState::NodeState(NodeId id, Storage* shared) : storage_(shared) {
  std::unique_ptr<Storage> own;
  if (shared == nullptr) {
    own = std::make_unique<Storage>();
    storage_ = own.get();
    keys().own_storage = std::move(own);
  }
  Bytes encoded(wire_size::node_id(id));
  wire::Writer w(encoded.data());
  wire::write_node_id(w, id);
  hold_encoded_id(encoded);
  id_hash_ = static_cast<std::uint32_t>(
      this->hash(std::string_view(reinterpret_cast<const char*>(encoded.data()), encoded.size())) >>
      32);
}

NodeState::NodeState(Storage* shared, ByteView encoded, std::size_t hash)
    : storage_(shared), id_hash_(static_cast<std::uint32_t>(hash >> 32)) {
  // Read from a packet, the id is already encoded (canonically).
  hold_encoded_id(encoded);
}

NodeId NodeState::id() const { return id_view().to_node_id(); }

wire::NodeIdView NodeState::id_view() const {
  wire::NodeIdView view;
  // Written or read canonically when the state was made: it reads back.
  [[maybe_unused]] const bool ok = wire::read_node_id(encoded_id(), view);
  assert(ok);
  return view;
}

std::strong_ordering NodeState::compare_id(const NodeId& other) const {
  return id_view().compare(other);
}

void NodeState::hold_encoded_id(ByteView encoded) { id_ = storage_->ids->hold(encoded); }

void NodeState::release_encoded_id() {
  if (id_ == kNoId) return;
  storage_->ids->release(id_);
  id_ = kNoId;
}

[[gnu::always_inline]] inline std::size_t NodeState::hash(std::string_view bytes) const {
  return hash_bytes(bytes, storage_->hash_seed);
}

NodeState::NodeState(const NodeState& other) : NodeState(other, nullptr) {}

NodeState::NodeState(const NodeState& other, Storage* shared) : NodeState(other.id(), shared) {
  heartbeat_ = other.heartbeat_;
  max_version_announced_ = other.max_version_announced_;
  slot_ = other.slot_;
  max_version_ = other.max_version_;
  last_gc_version_ = other.last_gc_version_;
  scheduled_for_deletion_ = other.scheduled_for_deletion_;
  if (other.keys_ == nullptr) return;
  const Keys& from = *other.keys_;
  keys();
  copy_entries(from);
  if (from.index_size > 0) reindex(from.index_size);
  if (from.tombstones != nullptr) {
    keys_->tombstones = std::make_unique<Tombstones>(*from.tombstones);
    ++storage_->tombstoned;
  }
}

void NodeState::copy_entries(const Keys& from) {
  Keys& to = *keys_;
  to.live = from.live;
  ByteStore& bytes = storage_->bytes;
  to.log.reserve(storage_->pool, from.log.size());
  for (const Entry& e : from.log) {
    if (e.chunk == nullptr) {
      to.log.push_back(e);
      continue;
    }
    const std::size_t size = stored::size(e.stored);
    auto [chunk, at] = bytes.allocate(size);
    std::memcpy(at, e.stored, size);
    bytes.hold(chunk, size);
    to.log.push_back(Entry{e.version, at, chunk});
  }
}

void NodeState::share_keys(KeysTable& table) {
  if (shared_keys_ || keys_ == nullptr || keys_->live == 0 || keys_->live > kUnindexedKeys ||
      keys_->tombstones != nullptr || keys_->own_storage != nullptr) {
    return;
  }
  Keys* frozen = table.hold(encoded_id(), *keys_);
  for (const Entry& e : keys_->log) {
    if (e.chunk != nullptr) release(e);
  }
  free_index();
  drop_keys();
  keys_ = frozen;
  shared_keys_ = 1;
}

void NodeState::unshare_keys() {
  Keys* frozen = std::exchange(keys_, nullptr);
  shared_keys_ = 0;
  keys_ = new (storage_->keys.allocate()) Keys();
  copy_entries(*frozen);
  storage_->frozen->release(frozen);
}

NodeState::NodeState(NodeState&& other) noexcept
    : heartbeat_(other.heartbeat_),
      max_version_(other.max_version_),
      last_gc_version_(other.last_gc_version_),
      max_version_announced_(other.max_version_announced_),
      storage_(other.storage_),
      keys_(std::exchange(other.keys_, nullptr)),
      id_hash_(other.id_hash_),
      id_(other.id_),
      scheduled_for_deletion_(other.scheduled_for_deletion_),
      shared_keys_(other.shared_keys_),
      position_(other.position_),
      slot_(other.slot_) {
  other.id_ = kNoId;
}

NodeState::~NodeState() {
  release_encoded_id();
  if (keys_ == nullptr) return;
  if (shared_keys_) {
    storage_->frozen->release(keys_);
    return;
  }
  for (const Entry& e : keys_->log) {
    if (e.chunk != nullptr) release(e);
  }
  free_index();
  // The keys block goes back to the pool before the storage it may own.
  std::unique_ptr<Storage> own = std::move(keys_->own_storage);
  drop_keys();
}

NodeState::Keys::Keys() {
  // Made for the first key of each replica that has any.
  static_assert(sizeof(Keys) <= 48);
}
NodeState::Keys::~Keys() = default;

void NodeState::Log::reserve(std::pmr::memory_resource& pool, std::size_t entries) {
  if (entries <= capacity_) return;
  auto* data = static_cast<Entry*>(pool.allocate(entries * sizeof(Entry), alignof(Entry)));
  std::copy(data_, data_ + size_, data);
  if (data_ != nullptr) pool.deallocate(data_, capacity_ * sizeof(Entry), alignof(Entry));
  data_ = data;
  capacity_ = static_cast<std::uint32_t>(entries);
}

void NodeState::Log::grow(std::pmr::memory_resource& pool) {
  reserve(pool, std::size_t{capacity_} + capacity_ / 8 + 1);
}

void NodeState::Log::insert(std::pmr::memory_resource& pool, std::size_t at, const Entry& e) {
  reserve_one_more(pool);
  std::copy_backward(data_ + at, data_ + size_, data_ + size_ + 1);
  data_[at] = e;
  ++size_;
}

void NodeState::Log::shrink_to_fit(std::pmr::memory_resource& pool) {
  if (size_ == capacity_) return;
  if (size_ == 0) return free(pool);
  auto* data = static_cast<Entry*>(pool.allocate(size_ * sizeof(Entry), alignof(Entry)));
  std::copy(data_, data_ + size_, data);
  pool.deallocate(data_, capacity_ * sizeof(Entry), alignof(Entry));
  data_ = data;
  capacity_ = size_;
}

void NodeState::Log::free(std::pmr::memory_resource& pool) {
  if (data_ != nullptr) pool.deallocate(data_, capacity_ * sizeof(Entry), alignof(Entry));
  data_ = nullptr;
  size_ = 0;
  capacity_ = 0;
}

NodeState::Keys& NodeState::keys() {
  if (shared_keys_) unshare_keys();
  if (keys_ == nullptr) keys_ = new (storage_->keys.allocate()) Keys();
  return *keys_;
}

// Gives the keys block back to the pool (its entries released already).
void NodeState::drop_keys() {
  assert(!shared_keys_);
  Keys* keys = std::exchange(keys_, nullptr);
  keys->log.free(storage_->pool);
  keys->~Keys();
  storage_->keys.deallocate(keys);
}

// A replica that lost all its keys (a reset, garbage collection) costs no
// more than one that never had any; a state owning its storage keeps the
// block that owns it.
void NodeState::drop_empty_keys() {
  if (keys_->own_storage == nullptr && keys_->log.empty() && keys_->tombstones == nullptr) {
    free_index();
    drop_keys();
  }
}

// --- Reading entries. ---

std::string_view NodeState::key_at(std::size_t slot) const {
  return stored::key(keys_->log[slot].stored);
}

ValueRef NodeState::value_at(std::size_t slot) const {
  const StoredKeyValue kv = stored::read(keys_->log[slot].stored);
  return ValueRef{kv.value, kv.version, kv.status};
}

bool NodeState::is_tombstone(const Entry& entry) const {
  return stored::read(entry.stored).status != KeyStatus::kSet;
}

std::vector<std::uint32_t> NodeState::slots_by_key() const {
  std::vector<std::uint32_t> slots;
  const std::span<const Entry> entries = log();
  slots.reserve(size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].chunk != nullptr) slots.push_back(static_cast<std::uint32_t>(i));
  }
  std::sort(slots.begin(), slots.end(),
            [this](std::uint32_t a, std::uint32_t b) { return key_at(a) < key_at(b); });
  return slots;
}

std::size_t NodeState::first_after(std::uint64_t version) const {
  // All of the log, the usual case of a full delta: no search.
  const std::span<const Entry> entries = log();
  if (entries.empty() || version < entries.front().version) return 0;
  const auto it = std::upper_bound(entries.begin(), entries.end(), version,
                                   [](std::uint64_t v, const Entry& e) { return v < e.version; });
  return static_cast<std::size_t>(it - entries.begin());
}

// Inlined into store_in_room(), the path of every applied key-value.
[[gnu::always_inline]] inline std::size_t NodeState::probe(std::string_view key,
                                                           std::size_t h) const {
  const Keys& k = *keys_;
  const std::size_t n = k.index_size;
  std::size_t p = reduce(h, n);
  while (k.index[p] != kFree && !same_key(stored::key(k.log[k.index[p]].stored), key)) {
    if (++p == n) p = 0;
  }
  return p;
}

std::size_t NodeState::slot_of(std::string_view key) const {
  if (keys_ == nullptr) return kNone;
  if (keys_->index_size == 0) return keys_->live == 0 ? kNone : scan_for(key);
  const std::uint32_t slot = keys_->index[probe(key, hash(key))];
  return slot == kFree ? kNone : slot;
}

// A const lookup cannot build the index (concurrent readers of a const
// state would race): an unindexed replica, at most kUnindexedKeys keys, is
// scanned instead.
std::size_t NodeState::scan_for(std::string_view key) const {
  for (std::size_t slot = 0; slot < keys_->log.size(); ++slot) {
    if (keys_->log[slot].chunk != nullptr && same_key(key_at(slot), key)) return slot;
  }
  return kNone;
}

void NodeState::ensure_index() {
  if (unindexed()) reindex(index_capacity(keys_->live));
}

std::optional<VersionedValue> NodeState::find(std::string_view key) const {
  const std::size_t slot = slot_of(key);
  if (slot == kNone) return std::nullopt;
  return value_at(slot).to_value();
}

std::optional<std::string> NodeState::value(std::string_view key) const {
  const std::size_t slot = slot_of(key);
  if (slot == kNone) return std::nullopt;
  const ValueRef v = value_at(slot);
  if (v.status == KeyStatus::kDeleted) return std::nullopt;
  return std::string(v.value);
}

std::optional<Instant> NodeState::status_changed_at(std::string_view key) const {
  const std::size_t slot = slot_of(key);
  if (slot == kNone || keys_->tombstones == nullptr) return std::nullopt;
  const std::uint64_t version = keys_->log[slot].version;
  const Tombstones& t = *keys_->tombstones;
  const auto it = std::lower_bound(t.begin(), t.end(), version,
                                   [](const auto& e, std::uint64_t v) { return e.first < v; });
  if (it == t.end() || it->first != version) return std::nullopt;
  return it->second;
}

// --- The index and the log. ---

// Backward-shift deletion keeps every probe sequence unbroken without
// tombstone markers in the index.
void NodeState::unindex(std::size_t position) {
  const std::size_t n = keys_->index_size;
  std::size_t hole = position;
  keys_->index[hole] = kFree;
  for (std::size_t q = hole + 1 == n ? 0 : hole + 1; keys_->index[q] != kFree;
       q = q + 1 == n ? 0 : q + 1) {
    const std::size_t home = reduce(hash(key_at(keys_->index[q])), n);
    // The entry at q may move back to the hole unless its home lies
    // cyclically in (hole, q].
    const bool stays = hole <= q ? (home > hole && home <= q) : (home > hole || home <= q);
    if (stays) continue;
    keys_->index[hole] = keys_->index[q];
    keys_->index[q] = kFree;
    hole = q;
  }
}

void NodeState::release(const Entry& entry) {
  storage_->bytes.release(entry.chunk, stored::size(entry.stored));
}

// Forgets a live slot: out of the index, its bytes let go.
void NodeState::make_hole(std::size_t slot) {
  assert(!shared_keys_);
  const std::string_view key = key_at(slot);
  unindex(probe(key, hash(key)));
  release(keys_->log[slot]);
  keys_->log[slot].stored = nullptr;
  keys_->log[slot].chunk = nullptr;
  --keys_->live;
}

void NodeState::add_tombstone(std::uint64_t version, Instant now) {
  assert(!shared_keys_);
  if (keys_->tombstones == nullptr) {
    keys_->tombstones = std::make_unique<Tombstones>();
    ++storage_->tombstoned;
  }
  Tombstones& t = *keys_->tombstones;
  if (t.empty() || t.back().first < version) {
    reserve_one_more(t);
    t.emplace_back(version, now);
    return;
  }
  const auto it = std::lower_bound(t.begin(), t.end(), version,
                                   [](const auto& e, std::uint64_t v) { return e.first < v; });
  t.insert(it, {version, now});
}

void NodeState::drop_tombstone(std::uint64_t version) {
  if (keys_->tombstones == nullptr) return;
  Tombstones& t = *keys_->tombstones;
  const auto it = std::lower_bound(t.begin(), t.end(), version,
                                   [](const auto& e, std::uint64_t v) { return e.first < v; });
  if (it != t.end() && it->first == version) t.erase(it);
  if (t.empty()) keys_->tombstones.reset();
}

void NodeState::free_index() {
  if (keys_->index != nullptr)
    storage_->pool.deallocate(keys_->index, keys_->index_size * sizeof(std::uint32_t), 4);
  keys_->index = nullptr;
  keys_->index_size = 0;
}

void NodeState::reindex(std::size_t capacity) {
  assert(!shared_keys_);
  free_index();
  if (capacity == 0) return;
  keys_->index = static_cast<std::uint32_t*>(
      storage_->pool.allocate(capacity * sizeof(std::uint32_t), alignof(std::uint32_t)));
  keys_->index_size = static_cast<std::uint32_t>(capacity);
  std::fill(keys_->index, keys_->index + capacity, kFree);
  for (std::size_t slot = 0; slot < keys_->log.size(); ++slot) {
    if (keys_->log[slot].chunk == nullptr) continue;
    const std::string_view key = key_at(slot);
    keys_->index[probe(key, hash(key))] = static_cast<std::uint32_t>(slot);
  }
}

void NodeState::compact() {
  assert(!shared_keys_);
  std::size_t kept = 0;
  for (const Entry& e : keys_->log) {
    if (e.chunk != nullptr) keys_->log[kept++] = e;
  }
  keys_->log.shrink(kept);
  keys_->log.shrink_to_fit(storage_->pool);
  reindex(index_capacity(keys_->live));
}

void NodeState::compact_if_sparse() {
  const std::size_t holes = keys_->log.size() - keys_->live;
  if ((holes > 16 && holes > keys_->live) || (holes > 0 && keys_->live == 0)) compact();
}

std::optional<NodeState::Entry> NodeState::store(std::string_view key, std::uint64_t version,
                                                 KeyStatus status, const std::uint8_t* stored,
                                                 std::size_t stored_size, Chunk* chunk,
                                                 Instant now) {
  const Keys& k = keys();
  if (table_full(k.live + 1, k.index_size)) reindex(index_capacity(k.live + 1));
  return store_in_room(key, version, status, stored, stored_size, chunk, now);
}

// Inlined into apply_key_values(), the path of every applied key-value.
[[gnu::always_inline]] inline std::optional<NodeState::Entry> NodeState::store_in_room(
    std::string_view key, std::uint64_t version, KeyStatus status, const std::uint8_t* stored,
    std::size_t stored_size, Chunk* chunk, Instant now) {
  assert(!shared_keys_);
  storage_->bytes.hold(chunk, stored_size);
  const Entry incoming{version, stored, chunk};
  const std::size_t h = hash(key);
  const std::size_t position = probe(key, h);
  if (keys_->index[position] == kFree &&
      (keys_->log.empty() || version > keys_->log.back().version)) {
    // The usual case of a delta to a new replica, or of a new key: a new
    // key at the newest version.
    keys_->log.reserve_one_more(storage_->pool);
    keys_->index[position] = static_cast<std::uint32_t>(keys_->log.size());
    keys_->log.push_back(incoming);
    ++keys_->live;
    if (status != KeyStatus::kSet) add_tombstone(version, now);
    return std::nullopt;
  }
  return replace(key, h, position, incoming, status, now);
}

// Every other case of store(): an existing key, or a version below the
// newest.
std::optional<NodeState::Entry> NodeState::replace(std::string_view key, std::size_t h,
                                                   std::size_t position, const Entry& incoming,
                                                   KeyStatus status, Instant now) {
  const std::uint64_t version = incoming.version;
  const std::size_t old = keys_->index[position] == kFree ? kNone : keys_->index[position];
  std::optional<Entry> replaced;

  // The key's previous entry becomes a hole; its bytes stay held for the
  // caller, who reports the change before releasing them.
  auto take_old = [&] {
    if (old == kNone) return;
    Entry& e = keys_->log[old];
    if (is_tombstone(e)) drop_tombstone(e.version);
    replaced = e;
    e.stored = nullptr;
    e.chunk = nullptr;
    --keys_->live;
  };

  if (keys_->log.empty() || version > keys_->log.back().version) {
    // The usual case: owners write, and deltas arrive, in version order.
    take_old();
    keys_->log.reserve_one_more(storage_->pool);
    keys_->index[position] = static_cast<std::uint32_t>(keys_->log.size());
    keys_->log.push_back(incoming);
  } else {
    const auto at = std::lower_bound(keys_->log.begin(), keys_->log.end(), version,
                                     [](const Entry& e, std::uint64_t v) { return e.version < v; });
    const auto slot = static_cast<std::size_t>(at - keys_->log.begin());
    if (at != keys_->log.end() && at->version == version) {
      if (slot == old) {
        // Same key, same version: replaced in place.
        if (is_tombstone(*at)) drop_tombstone(version);
        replaced = *at;
        *at = incoming;
        if (status != KeyStatus::kSet) add_tombstone(version, now);
        compact_if_sparse();
        return replaced;
      }
      if (at->chunk != nullptr) {
        // Another key held this version: only a corrupt peer sends that.
        // The newest write wins so each version names one entry.
        if (is_tombstone(*at)) drop_tombstone(version);
        make_hole(slot);
        position = probe(key, h);  // the index moved under us
      }
      take_old();
      keys_->log[slot] = incoming;
      keys_->index[position] = static_cast<std::uint32_t>(slot);
    } else {
      // An older version than every entry: kept in order at the cost of
      // renumbering the slots after it.
      take_old();
      keys_->log.insert(storage_->pool, slot, incoming);
      for (std::size_t i = 0; i < keys_->index_size; ++i) {
        if (keys_->index[i] != kFree && keys_->index[i] >= slot) ++keys_->index[i];
      }
      keys_->index[position] = static_cast<std::uint32_t>(slot);
    }
  }
  ++keys_->live;
  if (status != KeyStatus::kSet) add_tombstone(version, now);
  compact_if_sparse();
  return replaced;
}

// A new key of an unindexed replica's first delta: its hash's tag is not
// in a table of the delta's keys so far (twice their number of cells or
// more, on the stack: shared with nothing). A tag seen before may be a
// repeated key: the index decides.
struct NodeState::SeenKeys {
  SeenKeys(std::uint64_t hash_seed, std::size_t keys) : seed(hash_seed) {
    const std::size_t cells = std::bit_ceil(std::max<std::size_t>(2 * keys, 8));
    shift = 64 - std::countr_zero(cells);
    mask = cells - 1;
    std::fill_n(table, cells, kEmpty);
  }
  std::size_t room(std::string_view key) {
    const std::uint64_t h = hash_bytes(key, seed);
    tag = static_cast<std::uint32_t>(h) | 1;
    for (std::size_t p = h >> shift;; p = (p + 1) & mask) {
      if (table[p] == kEmpty) return p;
      if (table[p] == tag) return kNone;
    }
  }
  void claim(std::size_t place, std::uint32_t /*slot*/) { table[place] = tag; }

  std::uint64_t seed;
  std::size_t mask = 0;
  int shift = 0;
  std::uint32_t tag = 0;
  // A free cell: even, so never a tag (tags are odd). Not 0: a fill with
  // zeros compiles to `rep stos`, whose start-up took a quarter of
  // apply_key_values' time at ten keys a node; a fill with a value whose
  // bytes differ is a few vector stores.
  static constexpr std::uint32_t kEmpty = 2;
  std::uint32_t table[2 * kUnindexedKeys];  // the first mask + 1 in use
};

// A new key of a replica with an index: not in it.
struct NodeState::IndexedKeys {
  std::size_t room(std::string_view key) {
    const std::size_t place = state.probe(key, state.hash(key));
    return state.keys_->index[place] == kFree ? place : kNone;
  }
  void claim(std::size_t place, std::uint32_t slot) { state.keys_->index[place] = slot; }

  NodeState& state;
};

NodeState::Applied NodeState::apply_key_values(const wire::KeyValueView* kvs, std::size_t count,
                                               std::uint64_t before, std::uint64_t gc,
                                               std::size_t max_keys, Chunk* chunk, Instant now,
                                               const OnKeyChange& on_change) {
  // Only key-values past `before` are stored (and no tombstone at or below
  // `gc`): a delta re-sending what the replica holds, as when two peers
  // answer one round, must not grow its log nor build its index.
  std::size_t fresh = 0;
  for (std::size_t k = 0; k < count; ++k) fresh += stores(kvs[k], before, gc) ? 1 : 0;
  if (fresh == 0) return {};  // a replica without keys stays without its block
  keys();
  // At most this many keys become live below: the loop stops at the first
  // new key past the limit, so the index never needs to grow inside it.
  const std::size_t admitted =
      std::min(fresh, max_keys - std::min<std::size_t>(keys_->live, max_keys));
  Applied applied;
  std::size_t k = 0;
  if (keys_->log.empty() && admitted <= kUnindexedKeys) {
    // A first delta (or a reset's): appended without an index, its keys
    // told apart by a table of their hashes' tags.
    keys_->log.reserve(storage_->pool, admitted);
    SeenKeys seen(storage_->hash_seed, admitted);
    k = append_key_values(kvs, count, before, gc, max_keys, chunk, now, on_change, seen, applied);
    if (k == count) return applied;
    // A key seen before (a repeat, or two keys of one tag): the index
    // decides from here on.
    reserve(std::min(count - k, max_keys - std::min<std::size_t>(keys_->live, max_keys)));
  } else {
    reserve(admitted);
    if (keys_->log.empty()) {
      IndexedKeys indexed(*this);
      k = append_key_values(kvs, count, before, gc, max_keys, chunk, now, on_change, indexed,
                            applied);
    }
  }
  // One change, rewritten per key-value: what the callback sees is in place.
  KeyChangeRef change;
  ByteStore& bytes = storage_->bytes;
  for (; k < count; ++k) {
    const wire::KeyValueView& kv = kvs[k];
    if (!stores(kv, before, gc)) continue;
    if (keys_->live >= max_keys && slot_of(kv.key) == kNone) {
      applied.truncated = true;
      break;
    }
    const auto [stored, in] = kept_bytes(bytes, kv, chunk, applied.bytes_copied);
    const auto replaced =
        store_in_room(kv.key, kv.version, kv.status, stored, kv.stored_size, in, now);
    change.key = kv.key;
    change.old_value.reset();
    assign(change.new_value, kv.value, kv.version, kv.status);
    if (replaced) {
      const StoredKeyValue old = stored::read(replaced->stored);
      assign(change.old_value.emplace(), old.value, old.version, old.status);
    }
    on_change(*this, change);
    if (replaced) release(*replaced);
    applied.last_version = kv.version;
    ++applied.count;
  }
  return applied;
}

// apply_key_values() into an empty log, the case of a new replica or a
// reset: versions increase, so each key-value goes at the end with no
// lookup of an entry to replace, once `new_keys` says its key is new
// (room(key): a place for it, or kNone when the key may have been seen;
// claim(place, slot) takes it). Hands a key that may be a repeat (only a
// corrupt peer sends one) back to the general loop: returns where it
// stopped.
template <typename NewKeys>
std::size_t NodeState::append_key_values(const wire::KeyValueView* kvs, std::size_t count,
                                         std::uint64_t before, std::uint64_t gc,
                                         std::size_t max_keys, Chunk* chunk, Instant now,
                                         const OnKeyChange& on_change, NewKeys& new_keys,
                                         Applied& applied) {
  assert(!shared_keys_);
  ByteStore& bytes = storage_->bytes;
  // Through a reference kept in a register: keys_ would be read again
  // after every callback.
  Keys& keys = *keys_;
  auto slot = static_cast<std::uint32_t>(keys.log.size());
  // One change, rewritten per key-value: what the callback sees is in place.
  KeyChangeRef change;
  // Counted here, not through `applied`, which the callback could alias.
  std::size_t count_applied = 0;
  std::uint64_t last_version = 0;
  // Bytes held in the packet's chunk, taken in one step at the end (or
  // when the callback throws, so every appended entry is held).
  std::size_t chunk_bytes = 0;
  std::uint32_t chunk_refs = 0;
  auto hold_chunk = [&] {
    if (chunk_refs == 0) return;
    bytes.hold(chunk, chunk_bytes, chunk_refs);
    chunk_refs = 0;
  };
  auto done = [&](std::size_t stopped_at) {
    hold_chunk();
    applied.count += count_applied;
    if (count_applied > 0) applied.last_version = last_version;
    return stopped_at;
  };
  for (std::size_t k = 0; k < count; ++k) {
    const wire::KeyValueView& kv = kvs[k];
    if (!stores(kv, before, gc)) continue;
    const std::size_t place = new_keys.room(kv.key);
    if (place == kNone) return done(k);
    if (keys.live >= max_keys) {
      applied.truncated = true;
      return done(count);
    }
    const auto [stored, in] = kept_bytes(bytes, kv, chunk, applied.bytes_copied);
    if (in == chunk) {
      chunk_bytes += kv.stored_size;
      ++chunk_refs;
    } else {
      bytes.hold(in, kv.stored_size);
    }
    new_keys.claim(place, slot++);
    keys.log.push_back(Entry{kv.version, stored, in});  // reserved by apply_key_values()
    ++keys.live;
    change.key = kv.key;
    assign(change.new_value, kv.value, kv.version, kv.status);
    try {
      if (kv.status != KeyStatus::kSet) add_tombstone(kv.version, now);
      on_change(*this, change);
    } catch (...) {
      hold_chunk();
      throw;
    }
    last_version = kv.version;
    ++count_applied;
  }
  return done(count);
}

// --- Mutations. ---

std::optional<KeyChange> NodeState::write(std::string_view key, std::string_view value,
                                          KeyStatus status, Instant now) {
  const std::uint64_t version = max_version_ + 1;
  KeyChange change{std::string(key), std::nullopt,
                   VersionedValue{std::string(value), version, status}};
  const std::size_t size = stored::size_of(key, value, version, status);
  auto [chunk, at] = storage_->bytes.allocate(size);
  stored::write(at, key, value, version, status);
  max_version_ = version;
  if (auto replaced = store(key, version, status, at, size, chunk, now)) {
    const StoredKeyValue old = stored::read(replaced->stored);
    change.old_value = VersionedValue{std::string(old.value), old.version, old.status};
    release(*replaced);
  }
  collect_own_garbage();
  return change;
}

std::optional<KeyChange> NodeState::set(std::string_view key, std::string_view value, Instant now) {
  const std::size_t slot = slot_of(key);
  if (slot != kNone) {
    const ValueRef old = value_at(slot);
    if (old.status == KeyStatus::kSet && old.value == value) return std::nullopt;
  }
  return write(key, value, KeyStatus::kSet, now);
}

std::optional<KeyChange> NodeState::remove(std::string_view key, Instant now) {
  const std::size_t slot = slot_of(key);
  if (slot == kNone || value_at(slot).status == KeyStatus::kDeleted) return std::nullopt;
  return write(key, {}, KeyStatus::kDeleted, now);
}

std::optional<KeyChange> NodeState::set_with_ttl(std::string_view key, std::string_view value,
                                                 Instant now) {
  const std::size_t slot = slot_of(key);
  if (slot != kNone) {
    const ValueRef old = value_at(slot);
    if (old.status == KeyStatus::kDeleteAfterTtl && old.value == value) return std::nullopt;
  }
  return write(key, value, KeyStatus::kDeleteAfterTtl, now);
}

std::optional<KeyChange> NodeState::delete_after_ttl(std::string_view key, Instant now) {
  const std::size_t slot = slot_of(key);
  if (slot == kNone) return std::nullopt;
  const ValueRef old = value_at(slot);
  if (old.status != KeyStatus::kSet) return std::nullopt;
  return write(key, old.value, KeyStatus::kDeleteAfterTtl, now);
}

void NodeState::reserve(std::size_t entries) {
  if (keys_ == nullptr && entries == 0) return;
  Keys& k = keys();
  k.log.reserve(storage_->pool, k.log.size() + entries);
  if (table_full(k.live + entries, k.index_size)) reindex(index_capacity(k.live + entries));
}

KeyChange NodeState::apply(std::string_view key, const VersionedValue& value, Instant now) {
  KeyChange change{std::string(key), std::nullopt, value};
  const std::size_t size = stored::size_of(key, value.value, value.version, value.status);
  auto [chunk, at] = storage_->bytes.allocate(size);
  stored::write(at, key, value.value, value.version, value.status);
  if (auto replaced = store(key, value.version, value.status, at, size, chunk, now)) {
    const StoredKeyValue old = stored::read(replaced->stored);
    change.old_value = VersionedValue{std::string(old.value), old.version, old.status};
    release(*replaced);
  }
  collect_own_garbage();
  return change;
}

void NodeState::wipe(std::uint64_t new_last_gc_version) {
  if (shared_keys_) {
    storage_->frozen->release(std::exchange(keys_, nullptr));
    shared_keys_ = 0;
  } else if (keys_ != nullptr) {
    for (const Entry& e : keys_->log) {
      if (e.chunk != nullptr) release(e);
    }
    keys_->log.free(storage_->pool);
    free_index();
    keys_->tombstones.reset();
    keys_->live = 0;
    drop_empty_keys();
  }
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
  if (keys_ == nullptr || keys_->tombstones == nullptr) return 0;
  Tombstones& t = *keys_->tombstones;
  std::size_t removed = 0;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const auto [version, changed] = t[i];
    if (changed > cutoff) {
      t[kept++] = {version, changed};
      continue;
    }
    const auto at = std::lower_bound(keys_->log.begin(), keys_->log.end(), version,
                                     [](const Entry& e, std::uint64_t v) { return e.version < v; });
    const auto slot = static_cast<std::size_t>(at - keys_->log.begin());
    if (at == keys_->log.end() || at->version != version || at->chunk == nullptr) continue;
    ensure_index();
    make_hole(slot);
    if (version > last_gc_version_) last_gc_version_ = version;
    ++removed;
  }
  t.resize(kept);
  if (t.empty()) keys_->tombstones.reset();
  if (removed > 0) {
    compact_if_sparse();
    if (keys_->live == 0) drop_empty_keys();
  }
  return removed;
}

// --- Garbage of the byte store. ---

void NodeState::relocate_sparse() {
  if (shared_keys_) return;  // its bytes are the table's
  ByteStore& bytes = storage_->bytes;
  for (Entry& e : keys_ == nullptr ? std::span<Entry>()
                                   : std::span<Entry>(keys_->log.data(), keys_->log.size())) {
    if (e.chunk == nullptr || !bytes.sparse(e.chunk)) continue;
    const std::size_t size = stored::size(e.stored);
    auto [chunk, at] = bytes.allocate(size);
    std::memcpy(at, e.stored, size);
    bytes.hold(chunk, size);
    bytes.release(e.chunk, size);
    e.stored = at;
    e.chunk = chunk;
  }
}

void NodeState::collect_own_garbage() {
  if (keys_ != nullptr && keys_->own_storage != nullptr && storage_->bytes.wasteful()) {
    relocate_sparse();
  }
}

}  // namespace aiocluster
