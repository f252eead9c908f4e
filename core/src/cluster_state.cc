#include "aiocluster/cluster_state.h"

#include <algorithm>
#include <bit>
#include <functional>
#include <new>
#include <stdexcept>
#include <tuple>

#include "codec_internal.h"
#include "grow.h"
#include "hash.h"
#include "packing.h"
#include "storage.h"
#include "wire.h"

namespace aiocluster {

namespace {

using wire_size::length_delimited;
using wire_size::varint;

std::string_view as_text(ByteView bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Text in std::string's order, eight bytes at a time: node names are short
// and placing a node compares a dozen of them.
int compare_text(std::string_view a, std::string_view b) {
  const std::size_t n = std::min(a.size(), b.size());
  std::size_t i = 0;
  if constexpr (std::endian::native == std::endian::little) {
    for (; i + 8 <= n; i += 8) {
      std::uint64_t x;
      std::uint64_t y;
      std::memcpy(&x, a.data() + i, 8);
      std::memcpy(&y, b.data() + i, 8);
      if (x != y) return __builtin_bswap64(x) < __builtin_bswap64(y) ? -1 : 1;
    }
  }
  for (; i < n; ++i) {
    const auto x = static_cast<unsigned char>(a[i]);
    const auto y = static_cast<unsigned char>(b[i]);
    if (x != y) return x < y ? -1 : 1;
  }
  return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
}

// The first eight bytes of a name, zero-padded, as a number that orders as
// the names do (where two are equal, the rest decides).
std::uint64_t name_prefix(std::string_view name) {
  if (name.size() >= 8) {
    std::uint64_t word;
    std::memcpy(&word, name.data(), 8);
    if constexpr (std::endian::native == std::endian::little) word = __builtin_bswap64(word);
    return word;
  }
  std::uint64_t word = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    word |= std::uint64_t{static_cast<unsigned char>(name[i])} << (56 - 8 * i);
  }
  return word;
}

// NodeId's order (name first), names told apart by their prefix when it
// differs: placing a node compares a dozen of them.
bool id_less(const NodeState* st, const NodeId& id) {
  const wire::NodeIdView view = st->id_view();
  const std::uint64_t a = name_prefix(view.name);
  const std::uint64_t b = name_prefix(id.name);
  if (a != b) return a < b;
  if (const int c = compare_text(view.name, id.name); c != 0) return c < 0;
  return view.compare(id) < 0;
}

// NodeId's order, of two ids in place.
bool ids_less(const NodeState* a, const NodeState* b) {
  const wire::NodeIdView x = a->id_view();
  const wire::NodeIdView y = b->id_view();
  return std::tie(x.name, x.generation_id, x.host, x.port, x.tls_name) <
         std::tie(y.name, y.generation_id, y.host, y.port, y.tls_name);
}

bool same_id(const NodeState* st, const NodeId& id) { return st->id_view().compare(id) == 0; }

std::vector<NodeState*>::const_iterator seek(const std::vector<NodeState*>& order,
                                             const NodeId& id) {
  return std::lower_bound(order.begin(), order.end(), id, id_less);
}

bool same_bytes(ByteView a, ByteView b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

// The largest delta body that keeps the packet within `max_payload_size`
// (packet_size only grows with the body).
std::size_t largest_delta(const PacketSizeForDelta& packet_size, std::size_t max_payload_size) {
  if (packet_size(0) > max_payload_size) return 0;
  std::size_t fits = 0;
  std::size_t too_big = max_payload_size + 1;
  while (too_big - fits > 1) {
    const std::size_t mid = fits + (too_big - fits) / 2;
    (packet_size(mid) <= max_payload_size ? fits : too_big) = mid;
  }
  return fits;
}

}  // namespace

const NodeState& ClusterState::Nodes::at(const NodeId& id) const {
  const auto it = seek(*order_, id);
  if (it == order_->end() || !same_id(*it, id)) throw std::out_of_range("unknown node");
  return **it;
}

// --- Nodes: where they live and how they are found. ---

template <typename... Args>
NodeState* ClusterState::make_node(Args&&... args) {
  void* at = storage_->states.allocate();
  try {
    return new (at) NodeState(std::forward<Args>(args)...);
  } catch (...) {
    storage_->states.deallocate(at);
    throw;
  }
}

void ClusterState::drop_node(NodeState* st) {
  st->~NodeState();
  storage_->states.deallocate(st);
}

ClusterState::ClusterState(NodeId self, std::uint64_t seed)
    : storage_(std::make_unique<Storage>(seed)), self_id_(self) {
  self_ = add(std::move(self));
  place_new_nodes();
}

ClusterState::~ClusterState() {
  for (NodeState* st : order_) drop_node(st);
}

ClusterState::ClusterState(const ClusterState& other)
    : storage_(std::make_unique<Storage>(other.storage_->hash_seed)),
      tls_named_(other.tls_named_),
      slots_(other.slots_),
      added_(other.added_),
      laid_out_at_(other.added_),  // the copies are made in id order
      membership_(other.membership_ + 1),
      id_sum_(other.id_sum_),
      free_slots_(other.free_slots_),
      resets_(other.resets_),
      self_id_(other.self_id_) {
  order_.reserve(other.order_.size());
  for (const NodeState* st : other.order_) {
    NodeState* copy = make_node(*st, storage_.get());
    order_.push_back(copy);
    index_id(copy);
    if (st == other.self_) self_ = copy;
  }
  positions_stale_ = true;
}

ClusterState& ClusterState::operator=(const ClusterState& other) {
  if (this != &other) *this = ClusterState(other);
  return *this;
}

ClusterState::ClusterState(ClusterState&& other) noexcept
    : storage_(std::move(other.storage_)),
      self_(std::exchange(other.self_, nullptr)),
      order_(std::move(other.order_)),
      id_table_(std::move(other.id_table_)),
      tls_named_(std::exchange(other.tls_named_, 0)),
      slots_(std::exchange(other.slots_, 0)),
      added_(other.added_),
      laid_out_at_(other.laid_out_at_),
      membership_(other.membership_),
      id_sum_(other.id_sum_),
      free_slots_(std::move(other.free_slots_)),
      positions_stale_(other.positions_stale_),
      resets_(std::move(other.resets_)),
      self_id_(other.self_id_) {
  other.order_.clear();
}

ClusterState& ClusterState::operator=(ClusterState&& other) noexcept {
  if (this == &other) return *this;
  for (NodeState* st : order_) drop_node(st);
  storage_ = std::move(other.storage_);
  self_ = std::exchange(other.self_, nullptr);
  self_id_ = other.self_id_;
  order_ = std::move(other.order_);
  other.order_.clear();
  id_table_ = std::move(other.id_table_);
  tls_named_ = std::exchange(other.tls_named_, 0);
  slots_ = std::exchange(other.slots_, 0);
  added_ = other.added_;
  laid_out_at_ = other.laid_out_at_;
  membership_ = std::max(membership_, other.membership_) + 1;
  id_sum_ = other.id_sum_;
  free_slots_ = std::move(other.free_slots_);
  positions_stale_ = other.positions_stale_;
  resets_ = std::move(other.resets_);
  return *this;
}

// The top half only: all reduce() reads, and all a NodeState keeps.
std::size_t ClusterState::hash(ByteView id) const {
  return hash_bytes(as_text(id), storage_->hash_seed) & ~std::size_t{0xffff'ffff};
}

NodeState* ClusterState::find_encoded(ByteView id, std::size_t hash) const {
  const std::size_t n = id_table_.size();
  for (std::size_t p = reduce(hash, n);; p = p + 1 == n ? 0 : p + 1) {
    NodeState* st = id_table_[p];
    if (st == nullptr) return nullptr;
    if (st->id_hash() == hash && same_bytes(st->encoded_id(), id)) return st;
  }
}

void ClusterState::index_id(NodeState* st) {
  if (table_full(order_.size(), id_table_.size())) grow_id_table(order_.size());
  const std::size_t n = id_table_.size();
  std::size_t p = reduce(st->id_hash(), n);
  while (id_table_[p] != nullptr) p = p + 1 == n ? 0 : p + 1;
  id_table_[p] = st;
}

void ClusterState::grow_id_table(std::size_t nodes) {
  std::vector<NodeState*> table(table_capacity(nodes + 1), nullptr);
  table.swap(id_table_);
  const std::size_t n = id_table_.size();
  for (NodeState* st : table) {
    if (st == nullptr) continue;
    std::size_t p = reduce(st->id_hash(), n);
    while (id_table_[p] != nullptr) p = p + 1 == n ? 0 : p + 1;
    id_table_[p] = st;
  }
}

// Backward-shift deletion, as in a node's key index.
void ClusterState::unindex_id(const NodeState* st) {
  const std::size_t n = id_table_.size();
  std::size_t hole = reduce(st->id_hash(), n);
  while (id_table_[hole] != st) hole = hole + 1 == n ? 0 : hole + 1;
  id_table_[hole] = nullptr;
  for (std::size_t q = hole + 1 == n ? 0 : hole + 1; id_table_[q] != nullptr;
       q = q + 1 == n ? 0 : q + 1) {
    const std::size_t home = reduce(id_table_[q]->id_hash(), n);
    const bool stays = hole <= q ? (home > hole && home <= q) : (home > hole || home <= q);
    if (stays) continue;
    id_table_[hole] = id_table_[q];
    id_table_[q] = nullptr;
    hole = q;
  }
}

NodeState* ClusterState::add(NodeId id) { return enter(make_node(std::move(id), storage_.get())); }

NodeState* ClusterState::enter(NodeState* st) {
  if (wire::canonical_id::has_tls_name(st->encoded_id())) ++tls_named_;
  // Appended; place_new_nodes() puts it in id order.
  reserve_more(order_);
  order_.push_back(st);
  ++unplaced_;
  index_id(st);
  ++added_;
  ++membership_;
  id_sum_ += id_sum_term(st->encoded_id());
  if (free_slots_.empty()) {
    st->slot_ = slots_++;
  } else {
    st->slot_ = free_slots_.back();
    free_slots_.pop_back();
  }
  positions_stale_ = true;
  return st;
}

namespace {

// A node by its name's first eight bytes, which order most ids on their
// own, computed once per node.
using Keyed = std::pair<std::uint64_t, NodeState*>;

Keyed keyed(NodeState* st) {
  return {name_prefix(wire::canonical_id::name(PacketPaths::encoded_id(*st))), st};
}

bool keyed_less(const Keyed& a, const Keyed& b) {
  return a.first != b.first ? a.first < b.first : ids_less(a.second, b.second);
}

// Where `node` goes among the placed nodes order[0, old): before the first
// of them above it. Old nodes from `lo` up go above it, those below
// `bottom` below it: the step down from `old` doubles until one goes below,
// then a binary search finds the place in between.
std::size_t place_among(std::span<NodeState* const> order, std::size_t old, const Keyed& node) {
  std::size_t lo = old;
  std::size_t bottom = 0;
  for (std::size_t step = 1; lo > bottom; step *= 2) {
    const std::size_t probe = lo - bottom > step ? lo - step : bottom;
    if (keyed_less(keyed(order[probe]), node)) {
      bottom = probe + 1;
      break;
    }
    lo = probe;
  }
  const auto above =
      std::upper_bound(order.begin() + static_cast<std::ptrdiff_t>(bottom),
                       order.begin() + static_cast<std::ptrdiff_t>(lo), node,
                       [](const Keyed& a, NodeState* b) { return keyed_less(a, keyed(b)); });
  return static_cast<std::size_t>(above - order.begin());
}

}  // namespace

void ClusterState::place_new_nodes() {
  if (unplaced_ == 0) return;
  // The new nodes sorted among themselves (by name prefix first, computed
  // once), then merged in from the back: one sort of a few and one pass,
  // where inserting each would move the tail of the order every time.
  const std::size_t placed = order_.size() - unplaced_;
  // Local rather than kept: a burst of joins would leave its room behind in
  // every node's state, and most rounds place nothing.
  std::vector<Keyed> spare(unplaced_);
  for (std::size_t i = 0; i < unplaced_; ++i) spare[i] = keyed(order_[placed + i]);
  // By prefix (then address, for a strict order): integers only; then the
  // few runs of one prefix by their whole ids.
  std::sort(spare.begin(), spare.end(), [](const Keyed& a, const Keyed& b) {
    return a.first != b.first ? a.first < b.first : std::less<NodeState*>()(a.second, b.second);
  });
  for (auto run = spare.begin(); run != spare.end();) {
    auto next = run + 1;
    while (next != spare.end() && next->first == run->first) ++next;
    if (next - run > 1) std::sort(run, next, keyed_less);
    run = next;
  }
  // Each comparison with a placed node is a cache miss or two: while the
  // new nodes are few beside them, each one's place is searched for rather
  // than every placed node above it compared (the merge was 8 % of a
  // cluster's fourth round at 10,000 nodes, most packets bringing a few
  // hundred new nodes to thousands).
  const bool search = spare.size() * 16 <= placed;
  std::size_t out = order_.size();
  std::size_t old = placed;
  for (std::size_t fresh = spare.size(); fresh > 0; --fresh) {
    const Keyed& node = spare[fresh - 1];
    std::size_t at = old;
    if (search) {
      at = place_among(order_, old, node);
    } else {
      while (at > 0 && keyed_less(node, keyed(order_[at - 1]))) --at;
    }
    out = static_cast<std::size_t>(
        std::move_backward(order_.begin() + static_cast<std::ptrdiff_t>(at),
                           order_.begin() + static_cast<std::ptrdiff_t>(old),
                           order_.begin() + static_cast<std::ptrdiff_t>(out)) -
        order_.begin());
    old = at;
    order_[--out] = node.second;
  }
  unplaced_ = 0;
}

void ClusterState::lay_out() {
  const std::size_t n = order_.size();
  if (added_ - laid_out_at_ < std::max<std::size_t>(n / 8, 64)) return;
  laid_out_at_ = added_;
  // Out to a buffer in id order, then back into the same blocks sorted by
  // address. A NodeState is relocatable: nothing points into it.
  std::vector<NodeState*> homes(order_);
  std::sort(homes.begin(), homes.end(), std::less<>());
  const auto self_at =
      static_cast<std::size_t>(std::find(order_.begin(), order_.end(), self_) - order_.begin());
  std::vector<NodeState> moved;
  moved.reserve(n);
  for (NodeState* st : order_) {
    moved.emplace_back(std::move(*st));
    st->~NodeState();
  }
  std::fill(id_table_.begin(), id_table_.end(), nullptr);
  for (std::size_t i = 0; i < n; ++i) {
    order_[i] = new (homes[i]) NodeState(std::move(moved[i]));
    index_id(order_[i]);
  }
  self_ = order_[self_at];
}

void ClusterState::renumber() const {
  if (!positions_stale_) return;
  for (std::size_t i = 0; i < order_.size(); ++i) {
    order_[i]->position_ = static_cast<std::uint32_t>(i);
  }
  positions_stale_ = false;
}

const NodeState* ClusterState::find(const NodeId& id) const {
  const auto it = seek(order_, id);
  return it != order_.end() && same_id(*it, id) ? *it : nullptr;
}

NodeState* ClusterState::find(const NodeId& id) {
  return const_cast<NodeState*>(std::as_const(*this).find(id));
}

NodeState* ClusterState::find_or_create(const NodeId& id, std::size_t max_nodes, bool* created) {
  if (created != nullptr) *created = false;
  if (NodeState* st = find(id)) return st;
  if (order_.size() >= max_nodes) return nullptr;
  if (created != nullptr) *created = true;
  NodeState* st = add(id);
  place_new_nodes();
  return st;
}

NodeState* ClusterState::find_or_create(const wire::PacketView& packet, wire::IdRef& id,
                                        std::size_t max_nodes, bool* created) {
  if (created != nullptr) *created = false;
  // Unknown when resolved, it may have been created since.
  if (id.state == nullptr && added_ != packet.resolved_at) {
    id.state = find_encoded(id.bytes, id.hash);
  }
  if (id.state != nullptr) return id.state;
  NodeState* st = create(id, max_nodes);
  if (created != nullptr) *created = st != nullptr;
  return st;
}

NodeState* ClusterState::create(wire::IdRef& id, std::size_t max_nodes) {
  if (order_.size() >= max_nodes || id.unknown == 0) return nullptr;
  id.state = enter(make_node(storage_.get(), id.bytes, id.hash));
  return id.state;
}

void ClusterState::remove(const NodeId& id) {
  if (id == self_id()) return;
  const auto it = seek(order_, id);
  if (it == order_.end() || !same_id(*it, id)) return;
  NodeState* st = *it;
  order_.erase(it);
  unindex_id(st);
  if (!id.tls_name.empty()) --tls_named_;
  free_slots_.push_back(st->slot_);
  resets_.erase(st->slot_);
  positions_stale_ = true;
  ++membership_;
  id_sum_ -= id_sum_term(st->encoded_id());
  drop_node(st);
}

bool ClusterState::resolve(wire::PacketView& packet) const {
  // Our peers list nodes in our id order (digests after the sender itself):
  // the next node in that order is tried before the id table.
  renumber();
  std::size_t next = 0;
  auto known = [&](wire::IdRef& id) {
    if (next < order_.size() && same_bytes(order_[next]->encoded_id(), id.bytes)) {
      id.state = order_[next++];
      id.hash = id.state->id_hash();
      return true;
    }
    id.hash = hash(id.bytes);
    id.state = find_encoded(id.bytes, id.hash);
    if (id.state == nullptr) return false;
    next = id.state->position_ + 1;
    return true;
  };
  packet.unknown_ids.clear();
  packet.unknown_node_deltas = 0;
  packet.resolved_at = added_;
  // An unknown id of the digest is read in full (its tls_name may matter,
  // Node reads it); one of a node delta is only checked.
  for (auto& e : packet.digest) {
    if (known(e.id)) continue;
    if (!wire::read_node_id(e.id.bytes, packet.unknown_ids.emplace_back())) return false;
    e.id.unknown = static_cast<std::uint32_t>(packet.unknown_ids.size());
  }
  next = 0;
  for (auto& nd : packet.node_deltas) {
    if (known(nd.id)) continue;
    if (!wire::is_node_id(nd.id.bytes)) return false;
    nd.id.unknown = 1;
    ++packet.unknown_node_deltas;
  }
  return true;
}

// --- Digests. ---

namespace {

// The NodeDigestPb body of a node.
std::size_t digest_entry(const NodeState& st, std::size_t id_size) {
  return length_delimited(id_size) + wire::uint_field_size(st.heartbeat()) +
         wire::uint_field_size(st.last_gc_version()) + wire::uint_field_size(st.max_version());
}

}  // namespace

void ClusterState::plan_digest(std::size_t max_size, Rng& rng, DigestPlan& plan) const {
  plan.nodes.clear();
  plan.sizes.clear();
  auto take = [&plan](const NodeState* st) {
    plan.nodes.push_back(st);
    plan.sizes.push_back(digest_entry(*st, st->encoded_id().size()));
    return length_delimited(plan.sizes.back());
  };
  std::size_t total = take(self_);
  for (const NodeState* st : order_) {
    if (st != self_ && !st->scheduled_for_deletion()) total += take(st);
  }
  plan.size = total;
  if (total <= max_size) return;
  // Too many nodes for one packet: a different random subset each time, so
  // every node is announced sooner or later (self always first), in the
  // order drawn.
  plan.order.resize(plan.nodes.size() - 1);
  for (std::size_t i = 0; i < plan.order.size(); ++i) plan.order[i] = i + 1;
  rng.shuffle(std::span(plan.order));
  plan.spare_nodes.assign(1, self_);
  plan.spare_sizes.assign(1, plan.sizes[0]);
  std::size_t used = length_delimited(plan.sizes[0]);
  for (std::size_t i : plan.order) {
    const std::size_t size = length_delimited(plan.sizes[i]);
    if (used + size > max_size) continue;
    used += size;
    plan.spare_nodes.push_back(plan.nodes[i]);
    plan.spare_sizes.push_back(plan.sizes[i]);
  }
  plan.nodes.swap(plan.spare_nodes);
  plan.sizes.swap(plan.spare_sizes);
  plan.size = used;
}

void ClusterState::write_digest(wire::Writer& w, const DigestPlan& plan) const {
  for (std::size_t i = 0; i < plan.nodes.size(); ++i) {
    const NodeState* st = plan.nodes[i];
    const ByteView id = st->encoded_id();
    w.header(1, plan.sizes[i]);
    w.header(1, id.size());
    w.raw(id.data(), id.size());
    w.uint_field(2, st->heartbeat());
    w.uint_field(3, st->last_gc_version());
    w.uint_field(4, st->max_version());
  }
}

Digest ClusterState::digest(std::size_t max_size, Rng& rng) const {
  DigestPlan plan;
  plan_digest(max_size, rng, plan);
  Digest digest;
  digest.node_digests.reserve(plan.nodes.size());
  for (const NodeState* st : plan.nodes) {
    digest.node_digests.push_back(
        NodeDigest{st->id(), st->heartbeat(), st->last_gc_version(), st->max_version()});
  }
  return digest;
}

// --- Deltas. ---

namespace {

// What a node delta of a candidate reads is two cache misses, one after the
// other: its keys block, then its key-values' bytes (two thirds of
// plan_delta in a cluster's first rounds, perf). Each is asked for some
// candidates ahead: the keys block of candidate `next + kAhead`, the first
// key-value of `next`, whose keys block came meanwhile.
void prefetch_delta(std::span<const DeltaPlan::Candidate> candidates, std::size_t next) {
  constexpr std::size_t kAhead = 4;
  if (next + kAhead < candidates.size()) {
    if (const void* keys = PacketPaths::keys_block(*candidates[next + kAhead].state)) {
      __builtin_prefetch(keys);
    }
  }
  if (next < candidates.size()) {
    const DeltaPlan::Candidate& c = candidates[next];
    if (const void* bytes = PacketPaths::first_delta_bytes(*c.state, c.from)) {
      __builtin_prefetch(bytes);
    }
  }
}

}  // namespace

void ClusterState::plan_delta(std::span<const wire::DigestEntryView> peer,
                              std::size_t max_delta_size, Rng& rng, DeltaPlan& plan) const {
  renumber();
  // The peer's entry of each node we know, by position.
  plan.seen.assign(order_.size(), nullptr);
  for (const auto& e : peer) {
    if (e.id.state != nullptr) plan.seen[e.id.state->position_] = &e;
  }
  plan.candidates.clear();
  for (std::size_t position = 0; position < order_.size(); ++position) {
    const NodeState& st = *order_[position];
    if (st.scheduled_for_deletion()) continue;
    const wire::DigestEntryView* seen = plan.seen[position];
    const std::uint64_t dgc = seen != nullptr ? seen->last_gc_version : 0;
    const std::uint64_t dmax = seen != nullptr ? seen->max_version : 0;
    if (st.max_version() <= dmax) continue;
    const bool reset = dgc < st.last_gc_version() && dmax < st.last_gc_version();
    const std::uint64_t from = reset ? 0 : dmax;
    plan.candidates.push_back({&st, from, st.max_version() - from, seen == nullptr, 0});
  }
  rng.shuffle(std::span(plan.candidates));
  // Unknown nodes first, then the most stale; ties keep their shuffled order
  // (often they all tie: a peer that knows nothing, or a round of updates).
  auto before = [](const DeltaPlan::Candidate& a, const DeltaPlan::Candidate& b) {
    if (a.unknown != b.unknown) return a.unknown;
    return a.staleness > b.staleness;
  };
  if (!std::is_sorted(plan.candidates.begin(), plan.candidates.end(), before)) {
    for (std::size_t i = 0; i < plan.candidates.size(); ++i) plan.candidates[i].rank = i;
    std::sort(plan.candidates.begin(), plan.candidates.end(),
              [&](const DeltaPlan::Candidate& a, const DeltaPlan::Candidate& b) {
                if (before(a, b) || before(b, a)) return before(a, b);
                return a.rank < b.rank;
              });
  }

  plan.parts.clear();
  std::size_t delta_len = 0;
  for (std::size_t i = 0; i < plan.candidates.size(); ++i) {
    prefetch_delta(plan.candidates, i + 1);
    const DeltaPlan::Candidate& c = plan.candidates[i];
    const NodeState& st = *c.state;
    const auto& log = st.log();
    const std::size_t header = length_delimited(st.encoded_id().size()) +
                               wire::uint_field_size(c.from) +
                               wire::uint_field_size(st.last_gc_version());
    // Sized with the largest max_version it may carry, so a partial node
    // delta, whose max_version is smaller, can only be smaller still.
    const std::size_t max_field = 1 + varint(st.max_version());
    const std::size_t first = st.first_after(c.from);
    std::size_t kvs_len = 0;
    std::size_t end = first;
    std::uint64_t last_version = 0;
    bool complete = true;
    // Below `sure` key-value bytes the node delta fits whatever its length
    // prefix (at most 10 bytes); only past it is the exact size computed.
    const std::size_t fixed = delta_len + header + max_field + 1 + 10;
    const std::size_t sure = max_delta_size > fixed ? max_delta_size - fixed : 0;
    for (std::size_t slot = first; slot < log.size(); ++slot) {
      if (log[slot].chunk == nullptr) continue;
      const std::size_t kv = 1 + stored::size(log[slot].stored);
      if (kvs_len + kv > sure &&
          delta_len + length_delimited(header + kvs_len + kv + max_field) > max_delta_size) {
        complete = false;
        break;
      }
      kvs_len += kv;
      last_version = log[slot].version;
      end = slot + 1;
    }
    std::uint64_t max_version = st.max_version();
    if (complete) {
      end = log.size();
      if (delta_len + length_delimited(header + kvs_len + max_field) > max_delta_size) {
        break;  // only possible with no key-values: the bare header does not fit
      }
    } else if (kvs_len == 0) {
      continue;  // its first key-value does not fit: a smaller node still may
    } else {
      max_version = last_version;
    }
    const std::size_t size = header + kvs_len + 1 + varint(max_version);
    delta_len += length_delimited(size);
    plan.parts.push_back({&st, c.from, max_version, static_cast<std::uint32_t>(first),
                          static_cast<std::uint32_t>(end), size});
    if (!complete) break;
  }
  plan.size = delta_len;
}

void ClusterState::write_delta(wire::Writer& w, const DeltaPlan& plan) const {
  for (const DeltaPlan::Part& part : plan.parts) {
    const NodeState& st = *part.state;
    const ByteView id = st.encoded_id();
    w.header(1, part.size);
    w.header(1, id.size());
    w.raw(id.data(), id.size());
    w.uint_field(2, part.from);
    w.uint_field(3, st.last_gc_version());
    const auto& log = st.log();
    for (std::size_t slot = part.first_slot; slot < part.end_slot; ++slot) {
      if (log[slot].chunk == nullptr) continue;
      w.byte(wire::tag(4, wire::kLength));
      w.raw(log[slot].stored, stored::size(log[slot].stored));
    }
    w.byte(wire::tag(5, wire::kVarint));
    w.varint(part.max_version);
  }
}

Delta ClusterState::delta_for(const Digest& peer, const PacketSizeForDelta& packet_size,
                              std::size_t max_payload_size, Rng& rng) const {
  std::vector<wire::DigestEntryView> entries(peer.node_digests.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const NodeDigest& nd = peer.node_digests[i];
    // Read only: plan_delta never writes through it.
    entries[i].id.state = const_cast<NodeState*>(find(nd.node_id));
    entries[i].last_gc_version = nd.last_gc_version;
    entries[i].max_version = nd.max_version;
  }
  DeltaPlan plan;
  plan_delta(entries, largest_delta(packet_size, max_payload_size), rng, plan);
  Delta delta;
  delta.node_deltas.reserve(plan.parts.size());
  for (const DeltaPlan::Part& part : plan.parts) {
    const NodeState& st = *part.state;
    NodeDelta& nd = delta.node_deltas.emplace_back();
    nd.node_id = st.id();
    nd.from_version_excluded = part.from;
    nd.last_gc_version = st.last_gc_version();
    nd.max_version = part.max_version;
    for (std::size_t slot = part.first_slot; slot < part.end_slot; ++slot) {
      if (st.log()[slot].chunk == nullptr) continue;
      const StoredKeyValue kv = stored::read(st.log()[slot].stored);
      nd.key_values.push_back(
          KeyValueUpdate{std::string(kv.key), std::string(kv.value), kv.version, kv.status});
    }
  }
  return delta;
}

// --- Applying deltas. ---

namespace {

// A node delta is well formed when its versions increase strictly, start past
// from_version_excluded and stay within max_version, and no key or value
// exceeds the limits. read_packet checked the versions and bounded the sizes:
// the key-values are only read again when a bound exceeds a limit.
bool well_formed(const wire::NodeDeltaView& nd, const wire::KeyValueView* kvs,
                 const ApplyLimits& limits) {
  if (!nd.versions_increase) return false;
  if (nd.key_sizes_or > limits.max_key_size || nd.value_sizes_or > limits.max_value_size) {
    for (std::uint32_t k = 0; k < nd.key_value_count; ++k) {
      if (kvs[k].key.size() > limits.max_key_size || kvs[k].value.size() > limits.max_value_size) {
        return false;
      }
    }
  }
  const std::uint64_t last =
      nd.key_value_count == 0 ? nd.from_version_excluded : kvs[nd.key_value_count - 1].version;
  return !nd.has_max_version || nd.max_version >= last;
}

// The version up to which a (well-formed) node delta proves its receiver
// complete; see ClusterState::apply.
std::uint64_t proven_complete_to(const wire::NodeDeltaView& nd, const wire::KeyValueView* kvs) {
  if (nd.key_value_count > 0) return kvs[nd.key_value_count - 1].version;
  const std::uint64_t claimed = nd.has_max_version ? nd.max_version : nd.from_version_excluded;
  return claimed <= nd.last_gc_version ? claimed : nd.from_version_excluded;
}

// Whether `nd` would fill in versions of (local_max, local_gc], which only
// happens while a reset is being re-sent, from a sender whose view predates
// the collection at local_gc.
bool stale_for_reset(const wire::NodeDeltaView& nd, const wire::KeyValueView* kvs,
                     std::uint64_t local_max, std::uint64_t local_gc) {
  if (local_gc <= local_max || nd.last_gc_version >= local_gc) return false;
  return std::any_of(kvs, kvs + nd.key_value_count, [&](const wire::KeyValueView& kv) {
    return kv.version > local_max && kv.version <= local_gc;
  });
}

// What max_version the sender announced: where the reset settles.
std::uint64_t announced_max(const wire::NodeDeltaView& nd, const wire::KeyValueView* kvs) {
  if (nd.has_max_version) return nd.max_version;
  return nd.key_value_count == 0 ? nd.from_version_excluded : kvs[nd.key_value_count - 1].version;
}

}  // namespace

void ClusterState::credit_delivered(wire::PacketView& packet, std::vector<char>& seen) const {
  seen.assign(slots(), 0);
  for (const auto& e : packet.digest) {
    if (e.id.state != nullptr && e.id.state->slot() < seen.size()) seen[e.id.state->slot()] = 1;
  }
  for (const auto& nd : packet.node_deltas) {
    const NodeState* st = nd.id.state;
    if (st == nullptr || st == self_ || st->slot() >= seen.size() || seen[st->slot()] != 0) {
      continue;
    }
    seen[st->slot()] = 1;
    packet.digest.push_back(wire::DigestEntryView{nd.id, 0, nd.last_gc_version,
                                                  announced_max(nd, packet.key_values_of(nd))});
  }
}

ApplyReport ClusterState::apply(wire::PacketView& packet, Bytes* adopt, Instant now,
                                const ApplyLimits& limits, const OnKeyChange& on_change) {
  // The packet's bytes are taken over when key-values are most of them;
  // otherwise the few kept are copied, rather than holding a packet of
  // digest bytes for them.
  Chunk* chunk = nullptr;
  if (adopt != nullptr) {
    std::size_t key_value_bytes = 0;
    for (const auto& nd : packet.node_deltas) key_value_bytes += nd.key_value_bytes;
    if (key_value_bytes * 2 >= adopt->size()) chunk = storage_->bytes.adopt(std::move(*adopt));
  }
  // Room in the id table and the order for every node this packet may
  // bring, at once.
  if (packet.unknown_node_deltas > 0) {
    const std::size_t nodes = order_.size() + packet.unknown_node_deltas;
    if (table_full(nodes, id_table_.size())) grow_id_table(nodes);
    if (nodes > order_.capacity()) order_.reserve(grown_capacity(order_.capacity(), nodes));
  }
  // Run however the loop ends, a callback's throw included: the nodes
  // created so far are found by id only once placed in id order.
  struct Finish {
    ClusterState& state;
    Chunk* chunk;
    void operator()() {
      if (chunk != nullptr) state.storage_->bytes.drop_if_unused(std::exchange(chunk, nullptr));
      state.place_new_nodes();
    }
    ~Finish() { (*this)(); }
  } finish{*this, chunk};
  ApplyReport report;
  for (std::size_t i = 0; i < packet.node_deltas.size(); ++i) {
    switch (apply_node_delta(packet, i, chunk, now, limits, on_change, report)) {
      case NodeDeltaOutcome::kApplied:
        ++report.applied;
        break;
      case NodeDeltaOutcome::kReset:
        ++report.applied;
        ++report.resets;
        break;
      case NodeDeltaOutcome::kIgnored:
        break;
      case NodeDeltaOutcome::kRejectedGap:
        ++report.rejected_gap;
        break;
      case NodeDeltaOutcome::kRejectedReset:
        ++report.rejected_reset;
        break;
      case NodeDeltaOutcome::kRejectedStale:
        ++report.rejected_stale;
        break;
      case NodeDeltaOutcome::kRejectedMalformed:
        ++report.rejected_malformed;
        break;
      case NodeDeltaOutcome::kRejectedLimit:
        ++report.rejected_limit;
        break;
    }
  }
  finish();
  collect_garbage();
  return report;
}

NodeDeltaOutcome ClusterState::apply_node_delta(wire::PacketView& packet, std::size_t index,
                                                Chunk* chunk, Instant now,
                                                const ApplyLimits& limits,
                                                const OnKeyChange& on_change, ApplyReport& report) {
  wire::NodeDeltaView& nd = packet.node_deltas[index];
  const wire::KeyValueView* kvs = packet.key_values_of(nd);
  NodeState* st = nd.id.state;
  if (st == self_) return NodeDeltaOutcome::kIgnored;
  if (!well_formed(nd, kvs, limits)) return NodeDeltaOutcome::kRejectedMalformed;
  if (nd.key_value_count > limits.max_keys_per_node) return NodeDeltaOutcome::kRejectedLimit;

  // Unknown when resolved, it may have been created since.
  if (st == nullptr && added_ != packet.resolved_at) {
    st = nd.id.state = find_encoded(nd.id.bytes, nd.id.hash);
  }
  if (st != nullptr && st->scheduled_for_deletion()) return NodeDeltaOutcome::kIgnored;
  const std::uint64_t local_max = st ? st->max_version() : 0;
  const std::uint64_t local_gc = st ? st->last_gc_version() : 0;
  if (nd.from_version_excluded > local_max) return NodeDeltaOutcome::kRejectedGap;
  const bool reset = nd.last_gc_version > local_gc && nd.last_gc_version > local_max;
  if (reset && nd.from_version_excluded != 0) return NodeDeltaOutcome::kRejectedReset;
  if (!reset && stale_for_reset(nd, kvs, local_max, local_gc)) {
    return NodeDeltaOutcome::kRejectedStale;
  }
  if (st == nullptr) {
    // The encoded id is canonical: its size is the NodeIdPb's.
    if (nd.id.bytes.size() > limits.max_node_id_size) return NodeDeltaOutcome::kRejectedLimit;
    // Looked up above: a new node, unless over the limit.
    st = create(nd.id, limits.max_nodes);
    if (st == nullptr) return NodeDeltaOutcome::kRejectedLimit;
  }

  std::uint64_t applied_up_to = local_max;
  if (reset) {
    begin_reset(*st, announced_max(nd, kvs), nd.last_gc_version, limits, on_change);
    applied_up_to = 0;
  }
  ResetShadow* shadow = nullptr;
  if (!resets_.empty()) {
    const auto it = resets_.find(st->slot());
    if (it != resets_.end()) {
      shadow = &it->second;
      shadow->settles_at = std::max(shadow->settles_at, announced_max(nd, kvs));
    }
  }
  // While a reset is re-sent, a change is told against what the
  // application last heard of the key: its old value is the shadow's, and a
  // key that came back unchanged is no change at all.
  OnKeyChange against_shadow;
  if (shadow != nullptr) {
    against_shadow = [&on_change, shadow](const NodeState& node, const KeyChangeRef& change) {
      const auto it = shadow->entries.find(change.key);
      if (it == shadow->entries.end()) return on_change(node, change);
      const VersionedValue known = std::move(it->second);
      shadow->entries.erase(it);
      const ValueRef& now_held = change.new_value;
      if (known.value == now_held.value && known.version == now_held.version &&
          known.status == now_held.status) {
        return;
      }
      on_change(node, KeyChangeRef{change.key, ValueRef{known.value, known.version, known.status},
                                   change.new_value});
    };
  }
  const NodeState::Applied applied = st->apply_key_values(
      kvs, nd.key_value_count, applied_up_to, nd.last_gc_version, limits.max_keys_per_node, chunk,
      now, shadow == nullptr ? on_change : against_shadow);
  report.key_values += applied.count;
  if (applied.count > 0 && storage_->sharing_keys()) st->share_keys(*storage_->frozen);
  // Apart (a branch between): GCC otherwise adds both with one 16-byte load
  // of `applied`, whose two halves the callee has just stored separately,
  // and the CPU cannot forward them to it (a stall per node delta).
  if (applied.bytes_copied != 0) report.bytes_copied += applied.bytes_copied;
  if (applied.count > 0) applied_up_to = applied.last_version;
  if (applied.truncated) {
    st->raise_max_version(applied_up_to);
    return NodeDeltaOutcome::kRejectedLimit;
  }
  const std::uint64_t complete_to = proven_complete_to(nd, kvs);
  if (complete_to < announced_max(nd, kvs)) ++report.completeness_capped;
  st->raise_max_version(complete_to);
  if (shadow != nullptr &&
      st->max_version() >= std::max(shadow->settles_at, st->max_version_announced())) {
    settle_reset(*st, on_change);
  }
  return reset ? NodeDeltaOutcome::kReset : NodeDeltaOutcome::kApplied;
}

// Wipes a replica for a reset, keeping what the application knows of it in
// the shadow until the re-sent state covers it.
void ClusterState::begin_reset(NodeState& st, std::uint64_t settles_at,
                               std::uint64_t last_gc_version, const ApplyLimits& limits,
                               const OnKeyChange& on_change) {
  ResetShadow& shadow = resets_[st.slot()];
  st.for_each_since(0, [&](std::string_view key, const VersionedValue& vv) {
    shadow.entries.insert_or_assign(std::string(key), vv);
    return true;
  });
  shadow.settles_at = settles_at;
  st.wipe(last_gc_version);
  // Resets that never complete (a peer announcing more than it ever sends)
  // could pile up keys: settle early rather than hold more than a replica may.
  if (shadow.entries.size() > limits.max_keys_per_node) settle_reset(st, on_change);
}

// The reset is over: whatever the re-sent state did not bring back is gone.
void ClusterState::settle_reset(NodeState& st, const OnKeyChange& on_change) {
  const auto it = resets_.find(st.slot());
  if (it == resets_.end()) return;
  for (const auto& [key, old_value] : it->second.entries) {
    if (old_value.status == KeyStatus::kDeleted) continue;
    on_change(st, KeyChangeRef{key, ValueRef{old_value.value, old_value.version, old_value.status},
                               ValueRef{{}, st.last_gc_version(), KeyStatus::kDeleted}});
  }
  resets_.erase(it);
}

ApplyReport ClusterState::apply(const Delta& delta, Instant now, const ApplyLimits& limits,
                                const std::function<void(const NodeId&, KeyChange)>& on_change) {
  // Through the packet path: the delta as an Ack, read back. A node delta
  // with text no packet can carry (not UTF-8) is malformed.
  ApplyReport report;
  Ack ack;
  for (const NodeDelta& nd : delta.node_deltas) {
    const bool text_ok = std::all_of(nd.key_values.begin(), nd.key_values.end(),
                                     [](const KeyValueUpdate& kv) {
                                       return is_valid_utf8(kv.key) && is_valid_utf8(kv.value);
                                     }) &&
                         is_valid_utf8(nd.node_id.name) &&
                         is_valid_utf8(nd.node_id.gossip_advertise_addr.host) &&
                         is_valid_utf8(nd.node_id.tls_name);
    if (text_ok) {
      ack.delta.node_deltas.push_back(nd);
    } else {
      ++report.rejected_malformed;
    }
  }
  Bytes bytes = encode(Packet{"", std::move(ack)});
  wire::PacketView packet;
  if (!wire::read_packet(bytes, packet) || !resolve(packet)) {
    throw std::logic_error("ClusterState::apply: an encoded delta does not read back");
  }
  const std::size_t not_text = report.rejected_malformed;
  report = apply(packet, &bytes, now, limits, [&](const NodeState& st, const KeyChangeRef& change) {
    on_change(st.id(), change.to_change());
  });
  report.rejected_malformed += not_text;
  return report;
}

std::size_t ClusterState::gc_tombstones(Instant now, Duration grace) {
  std::size_t removed = 0;
  // Rounds go by with no tombstone anywhere: not a walk of every replica.
  if (storage_->tombstoned > 0) {
    std::size_t tombstoned = 0;
    for (NodeState* st : order_) {
      removed += st->gc_tombstones(now - grace);
      if (st->keys_ != nullptr && st->keys_->tombstones != nullptr) ++tombstoned;
    }
    storage_->tombstoned = tombstoned;
  }
  collect_garbage();
  return removed;
}

void ClusterState::share_ids(const std::shared_ptr<IdTable>& table) {
  if (table == storage_->ids) return;
  for (NodeState* st : order_) {
    const IdTable::Ref ref = table->hold(st->encoded_id());
    storage_->ids->release(st->id_);
    st->id_ = ref;
  }
  storage_->ids = table;
}

const std::shared_ptr<IdTable>& ClusterState::ids() const { return storage_->ids; }

const std::shared_ptr<KeysTable>& ClusterState::keys_table() {
  if (storage_->frozen == nullptr) share_keys(std::make_shared<KeysTable>(storage_->hash_seed));
  return storage_->frozen;
}

void ClusterState::share_keys(const std::shared_ptr<KeysTable>& table) {
  if (table == storage_->frozen) return;
  // The blocks of the table left stay with the ClusterStates still using it.
  for (NodeState* st : order_) {
    if (st->shared_keys_) st->unshare_keys();
  }
  if (storage_->frozen != nullptr) storage_->frozen->leave();
  storage_->frozen = table;
  if (table != nullptr) table->join();
}

std::size_t ClusterState::bytes_held() const { return storage_->bytes.held(); }
std::size_t ClusterState::bytes_in_use() const { return storage_->bytes.live(); }

void ClusterState::collect_garbage() {
  if (!storage_->bytes.wasteful()) return;
  for (NodeState* st : order_) st->relocate_sparse();
}

}  // namespace aiocluster
