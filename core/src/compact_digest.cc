#include "compact_digest.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include "hash.h"

namespace aiocluster::compact {

namespace {

using wire_size::length_delimited;

// Field 16 with its two-byte tag.
std::size_t extension_field(std::size_t body) { return 1 + length_delimited(body); }

void extension_header(wire::Writer& w, std::size_t body) {
  w.raw(wire::kExtensionTag, 2);
  w.varint(body);
}

std::size_t address_size(const Address& a) {
  return (a.host.empty() ? 0 : length_delimited(a.host.size())) + wire::uint_field_size(a.port);
}

std::size_t announcement_body(const Announcement& a) {
  return wire::uint_field_size(a.features) + length_delimited(address_size(a.advertise)) +
         wire::uint_field_size(a.generation_id);
}

constexpr std::uint8_t tag(unsigned field, unsigned wire_type) {
  return static_cast<std::uint8_t>(field << 3 | wire_type);
}
constexpr unsigned kFixed64 = 1;

// The distance from `from` to `to` going up the circle of 32-bit values.
std::uint64_t distance(std::uint32_t from, std::uint32_t to) {
  return static_cast<std::uint32_t>(to - from);
}

// Bits below the heartbeat in an entry's second value.
constexpr std::uint64_t kSpeaksCompact = 1;  // the member speaks the compact digest
constexpr std::uint64_t kHasGc = 2;          // a last_gc_version follows (else it is 0)

std::uint64_t coded_heartbeat(const Plan& p, const NodeState& st) {
  const bool speaks = st.slot() < p.speaks.size() && (p.speaks[st.slot()] & kCompactDigest) != 0;
  return st.heartbeat() << 2 | (st.last_gc_version() != 0 ? kHasGc : 0) |
         (speaks ? kSpeaksCompact : 0);
}

// The most bytes an entry takes: a 32-bit gap and three 64-bit varints.
constexpr std::size_t kMaxEntry = 5 + 3 * 10;

[[gnu::always_inline]] inline void write_entry(wire::Writer& w, const Plan& p, std::uint32_t gap,
                                               const NodeState& st) {
  w.varint(gap);
  w.varint(coded_heartbeat(p, st));
  if (st.last_gc_version() != 0) w.varint(st.last_gc_version());
  w.varint(st.max_version());
}

std::size_t full_entry(const NodeState& st) {
  return length_delimited(PacketPaths::encoded_id(st).size()) +
         wire::uint_field_size(st.heartbeat()) + wire::uint_field_size(st.last_gc_version()) +
         wire::uint_field_size(st.max_version());
}

std::size_t compact_body(const Plan& p) {
  std::size_t size = 1 + 8;  // the salt
  if (p.entries_size > 0 && !p.aligned) size += length_delimited(p.entries_size);
  if (p.partial) {
    size += 2 + wire::uint_field_size(p.cover_start) + wire::uint_field_size(p.cover_end);
  }
  if (p.fingerprinted) size += 1 + 8;
  if (p.entries_size > 0 && p.aligned) size += length_delimited(p.entries_size);
  return size;
}

// An aligned entry's first value: the heartbeat's difference from the
// previous entry's (zigzag), then has_gc and what the member speaks.
constexpr std::uint64_t kAlignedHasGc = 4;
constexpr std::uint64_t kAlignedSpeaksAligned = 2;
constexpr unsigned kAlignedShift = 3;

std::uint64_t zigzag(std::uint64_t diff) {
  return diff << 1 ^ (diff >> 63 != 0 ? ~std::uint64_t{0} : 0);
}
std::uint64_t unzigzag(std::uint64_t z) { return z >> 1 ^ (0 - (z & 1)); }

// A member an aligned digest lists: any but its sender and the members
// scheduled for deletion (which no digest lists).
bool listed_aligned(const NodeState& st, const NodeState* sender) {
  return &st != sender && !st.scheduled_for_deletion();
}

// The most bytes an aligned entry takes: three 64-bit varints.
constexpr std::size_t kMaxAlignedEntry = 3 * 10;

// A least-significant-digit radix sort on the 32-bit hash, a byte a pass:
// about four times fewer instructions than a comparison sort at a thousand
// members, more below a few hundred (callgrind). Its scratch is allocated
// each time: one allocation per table built, where a kept one would double
// the tables' memory.
void sort_by_hash(MemberHashes::Table& table) {
  if (table.size() < 512) {
    std::sort(table.begin(), table.end(),
              [](const auto& a, const auto& b) { return a.hash < b.hash; });
    return;
  }
  MemberHashes::Table spare(table.size());
  for (unsigned shift = 0; shift < 32; shift += 8) {
    std::array<std::size_t, 257> start{};
    for (const auto& e : table) ++start[(e.hash >> shift & 0xff) + 1];
    for (std::size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
    for (const auto& e : table) spare[start[e.hash >> shift & 0xff]++] = e;
    table.swap(spare);
  }
}

// Walks over every member read a replica each, a cache miss unless asked
// for this many members ahead (callgrind cannot see it; perf put the
// hashing of a table at 7 % of a cluster's first rounds at 4,000 nodes, 14 %
// at 10,000, most of it misses).
constexpr std::size_t kMembersAhead = 16;

void prefetch_member(const ClusterState& state, std::size_t i) {
  if (i < state.size()) __builtin_prefetch(&state.at(i));
}

// The same, and the id each member names: its entry in the id table once
// the replica has come, its bytes once the entry has. The walk is at
// member `i`.
void prefetch_members_ids(const ClusterState& state, std::size_t i) {
  prefetch_member(state, i + kMembersAhead);
  if (i + kMembersAhead / 2 < state.size()) {
    __builtin_prefetch(PacketPaths::id_entry(state.at(i + kMembersAhead / 2)));
  }
  if (i + kMembersAhead / 4 < state.size()) {
    __builtin_prefetch(PacketPaths::encoded_id(state.at(i + kMembersAhead / 4)).data());
  }
}

void take_full(DigestPlan& full, const NodeState* st) {
  full.nodes.push_back(st);
  full.sizes.push_back(full_entry(*st));
  full.size += length_delimited(full.sizes.back());
}

}  // namespace

std::size_t announcement_size(const Announcement& a) {
  return extension_field(announcement_body(a));
}

void append_announcement(Bytes& packet, const Announcement& a) {
  const std::size_t at = packet.size();
  const std::size_t body = announcement_body(a);
  const std::size_t size = at + extension_field(body);
  if (size > packet.capacity()) {
    packet = copy_of(packet, size - at);
  } else {
    packet.resize(size);
  }
  wire::Writer w(packet.data() + at);
  extension_header(w, body);
  w.uint_field(1, a.features);
  w.header(2, address_size(a.advertise));
  w.string_field(1, a.advertise.host);
  w.uint_field(2, a.advertise.port);
  w.uint_field(3, a.generation_id);
}

bool read_announcement(ByteView body, Announcement& out) {
  out = Announcement{};
  wire::Reader c(body);
  ByteView addr;
  if (c.next(tag(1, wire::kVarint)) && !c.varint(out.features)) return false;
  if (c.next(tag(2, wire::kLength)) && !c.length_delimited(addr)) return false;
  if (c.next(tag(3, wire::kVarint)) && !c.varint(out.generation_id)) return false;
  if (!c.done()) return false;
  wire::Reader a(addr);
  ByteView host;
  std::uint64_t port = 0;
  if (a.next(tag(1, wire::kLength)) && !a.length_delimited(host)) return false;
  if (a.next(tag(2, wire::kVarint)) && (!a.varint(port) || port > 65535)) return false;
  if (!a.done()) return false;
  out.advertise.host.assign(reinterpret_cast<const char*>(host.data()), host.size());
  out.advertise.port = static_cast<std::uint16_t>(port);
  return true;
}

std::uint32_t member_hash(ByteView encoded_id, std::uint64_t salt) {
  const std::uint64_t h = hash_bytes(
      std::string_view(reinterpret_cast<const char*>(encoded_id.data()), encoded_id.size()), salt);
  return static_cast<std::uint32_t>(h ^ (h >> 32));
}

std::uint64_t fingerprint(const ClusterState& state) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < state.size(); ++i) {
    const NodeState& st = state.at(i);
    if (!st.scheduled_for_deletion()) sum += id_sum_term(PacketPaths::encoded_id(st));
  }
  return sum;
}

std::uint64_t fingerprint(const ClusterState& state, std::uint64_t deletions,
                          FingerprintCache& cache) {
  const std::uint64_t membership = PacketPaths::membership(state);
  if (cache.deletions != deletions || (cache.membership != membership && cache.scheduled > 0)) {
    cache.scheduled = 0;
    cache.scheduled_sum = 0;
    for (std::size_t i = 0; i < state.size(); ++i) {
      prefetch_member(state, i + kMembersAhead);
      const NodeState& st = state.at(i);
      if (!st.scheduled_for_deletion()) continue;
      ++cache.scheduled;
      cache.scheduled_sum += id_sum_term(PacketPaths::encoded_id(st));
    }
  }
  cache.membership = membership;
  cache.deletions = deletions;
  return PacketPaths::id_sum(state) - cache.scheduled_sum;
}

const MemberHashes& hashed(ClusterState& state, std::uint64_t salt, MemberHashes& table) {
  const std::uint64_t membership = PacketPaths::membership(state);
  const std::size_t unplaced = PacketPaths::unplaced(state);
  if (table.salt == salt && table.membership == membership && table.unplaced == unplaced) {
    return table;
  }
  table.salt = salt;
  table.membership = membership;
  table.unplaced = unplaced;
  const std::size_t n = state.size();
  // Sized to the members: a node keeps its table between calls.
  if (table.by_hash.capacity() < n || table.by_hash.capacity() > n + n / 8) {
    MemberHashes::Table sized;
    sized.reserve(n);
    table.by_hash.swap(sized);
  }
  table.by_hash.clear();
  for (std::size_t i = 0; i < n; ++i) {
    prefetch_members_ids(state, i);
    table.by_hash.push_back(
        {member_hash(PacketPaths::encoded_id(state.at(i)), salt), static_cast<std::uint32_t>(i)});
  }
  sort_by_hash(table.by_hash);
  return table;
}

const MemberHashes& hashed(ClusterState& state, std::uint64_t salt, HashCache cache) {
  return hashed(state, salt, cache.own.salt == salt ? cache.own : cache.other);
}

void plan(const ClusterState& state, const MemberHashes& hashes,
          std::span<const std::uint8_t> speaks, std::span<const NodeState* const> in_full,
          std::size_t budget, std::size_t rotation, Plan& out) {
  out.salt = hashes.salt;
  out.speaks = speaks;
  out.aligned = false;
  out.members.clear();
  out.full.nodes.clear();
  out.full.sizes.clear();
  out.full.size = 0;
  take_full(out.full, &state.self());
  for (const NodeState* st : in_full) {
    if (st == &state.self() ||
        length_delimited(out.full.size) + length_delimited(full_entry(*st)) > budget / 4) {
      continue;
    }
    take_full(out.full, st);
  }
  for (const auto& [h, position] : hashes.by_hash) {
    const NodeState* st = &state.at(position);
    if (st == &state.self() || st->scheduled_for_deletion() ||
        (out.full.nodes.size() > 1 &&
         std::find(out.full.nodes.begin(), out.full.nodes.end(), st) != out.full.nodes.end())) {
      continue;
    }
    out.members.emplace_back(h, st);
  }
  // Members sharing a hash travel in full: a receiver could not tell them apart.
  auto shared = [&](std::size_t i) {
    return (i > 0 && out.members[i - 1].first == out.members[i].first) ||
           (i + 1 < out.members.size() && out.members[i + 1].first == out.members[i].first);
  };
  std::size_t kept = 0;
  for (std::size_t i = 0; i < out.members.size(); ++i) {
    if (shared(i)) {
      take_full(out.full, out.members[i].second);
    } else {
      out.members[kept++] = out.members[i];
    }
  }
  out.members.resize(kept);

  // Everything, if it fits.
  out.partial = false;
  out.first = 0;
  out.count = out.members.size();
  // Entries are written here, once (sizing them first and writing them again
  // cost twice the varints), into a buffer with room for the longest ones,
  // up to one entry beyond the budget: a node keeps it, so its size is
  // bounded by the budget rather than the membership.
  const bool capped = out.members.size() * kMaxEntry > budget + kMaxEntry;
  out.entries.resize(capped ? budget + kMaxEntry : out.members.size() * kMaxEntry);
  wire::Writer w(out.entries.data());
  std::uint32_t prev = 0;
  bool all = true;
  for (const auto& [h, st] : out.members) {
    if (capped && static_cast<std::size_t>(w.position() - out.entries.data()) > budget) {
      all = false;
      break;
    }
    write_entry(w, out, h - prev, *st);
    prev = h;
  }
  out.entries_size = static_cast<std::size_t>(w.position() - out.entries.data());
  out.size = compact_body(out);
  if (all && length_delimited(out.full.size) + extension_field(out.size) <= budget) return;

  // A partial digest: from the rotation's member up the circle, as many as
  // fit (never all: then it would not be partial), covering the hashes from
  // the first one's to the first one left out.
  out.partial = true;
  out.count = 0;
  out.entries_size = 0;
  if (out.members.size() < 2) return;  // not even one entry fits: no compact digest
  const std::size_t n = out.members.size();
  out.first = rotation % n;
  out.cover_start = out.members[out.first].first;
  prev = out.cover_start;
  w = wire::Writer(out.entries.data());  // gaps now start from cover_start
  while (out.count + 1 < n) {
    const auto& [h, st] = out.members[(out.first + out.count) % n];
    const std::size_t before = out.entries_size;
    write_entry(w, out, h - prev, *st);
    out.entries_size = static_cast<std::size_t>(w.position() - out.entries.data());
    out.cover_end = out.members[(out.first + out.count + 1) % n].first;
    if (length_delimited(out.full.size) + extension_field(compact_body(out)) > budget) {
      out.entries_size = before;
      break;
    }
    prev = h;
    ++out.count;
  }
  out.cover_end = out.members[(out.first + out.count) % n].first;
  out.size = compact_body(out);
}

bool plan_aligned(const ClusterState& state, std::uint64_t salt, std::uint64_t fingerprint,
                  std::span<const std::uint8_t> speaks, std::size_t budget, Plan& out) {
  out.salt = salt;
  out.speaks = speaks;
  out.members.clear();
  out.full.nodes.clear();
  out.full.sizes.clear();
  out.full.size = 0;
  take_full(out.full, &state.self());
  out.partial = false;
  out.first = 0;
  out.count = 0;
  out.fingerprinted = true;
  out.fingerprint = fingerprint;
  out.aligned = true;
  // Written once, into room for the longest entries up to one beyond the
  // budget (as in plan()).
  const std::size_t room = std::min(state.size() * kMaxAlignedEntry, budget + kMaxAlignedEntry);
  out.entries.resize(room);
  wire::Writer w(out.entries.data());
  std::uint64_t previous = 0;
  for (std::size_t i = 0; i < state.size(); ++i) {
    const NodeState& st = state.at(i);
    if (!listed_aligned(st, &state.self())) continue;
    const std::uint64_t z = zigzag(st.heartbeat() - previous);
    // Beyond 2^61 the shifted difference would lose bits: the hashed digest
    // (whose entries code heartbeats whole) takes it.
    if (z >> (64 - kAlignedShift) != 0 ||
        static_cast<std::size_t>(w.position() - out.entries.data()) > budget) {
      return false;
    }
    previous = st.heartbeat();
    const std::uint8_t features = st.slot() < speaks.size() ? speaks[st.slot()] : 0;
    w.varint(z << kAlignedShift | (st.last_gc_version() != 0 ? kAlignedHasGc : 0) |
             ((features & kAligned) != 0 ? kAlignedSpeaksAligned : 0) |
             ((features & kCompactDigest) != 0 ? kSpeaksCompact : 0));
    if (st.last_gc_version() != 0) w.varint(st.last_gc_version());
    w.varint(st.max_version());
    ++out.count;
  }
  out.entries_size = static_cast<std::size_t>(w.position() - out.entries.data());
  out.size = compact_body(out);
  return length_delimited(out.full.size) + extension_field(out.size) <= budget;
}

bool usable(const Plan& plan) { return !plan.partial || plan.count > 0; }

std::size_t digest_fields_size(const Plan& plan) {
  return length_delimited(plan.full.size) + extension_field(plan.size);
}

void write_full(wire::Writer& w, const ClusterState& state, const Plan& plan) {
  w.header(2, plan.full.size);
  PacketPaths::write_digest(state, w, plan.full);
}

void write_compact(wire::Writer& w, const Plan& plan) {
  extension_header(w, plan.size);
  w.byte(tag(1, kFixed64));
  for (int i = 0; i < 8; ++i) w.byte(static_cast<std::uint8_t>(plan.salt >> (8 * i)));
  if (plan.entries_size > 0 && !plan.aligned) {
    w.header(2, plan.entries_size);
    w.raw(plan.entries.data(), plan.entries_size);
  }
  if (plan.partial) {
    w.uint_field(3, 1);
    w.uint_field(4, plan.cover_start);
    w.uint_field(5, plan.cover_end);
  }
  if (plan.fingerprinted) {
    w.byte(tag(6, kFixed64));
    for (int i = 0; i < 8; ++i) w.byte(static_cast<std::uint8_t>(plan.fingerprint >> (8 * i)));
  }
  if (plan.entries_size > 0 && plan.aligned) {
    w.header(7, plan.entries_size);
    w.raw(plan.entries.data(), plan.entries_size);
  }
}

namespace {

std::size_t cluster_field(std::string_view cluster_id) {
  return cluster_id.empty() ? 0 : length_delimited(cluster_id.size());
}

Bytes finish(Bytes bytes, const wire::Writer& w) {
  // Sizes are computed ahead: a mismatch is a bug in the core.
  if (w.position() != bytes.data() + bytes.size()) {
    throw std::logic_error("a compact digest packet's size was computed wrong");
  }
  return bytes;
}

}  // namespace

Bytes write_syn(std::string_view cluster_id, const ClusterState& state, const Plan& plan,
                std::size_t room) {
  const std::size_t body = digest_fields_size(plan);
  Bytes bytes = with_room(cluster_field(cluster_id) + length_delimited(body), room);
  wire::Writer w(bytes.data());
  w.string_field(1, cluster_id);
  w.header(2, body);
  write_full(w, state, plan);
  write_compact(w, plan);
  return finish(std::move(bytes), w);
}

Bytes write_synack(std::string_view cluster_id, const ClusterState& state, const Plan& plan,
                   const DeltaPlan& delta, std::size_t room) {
  const std::size_t body = digest_fields_size(plan) + length_delimited(delta.size);
  Bytes bytes = with_room(cluster_field(cluster_id) + length_delimited(body), room);
  wire::Writer w(bytes.data());
  w.string_field(1, cluster_id);
  w.header(3, body);
  write_full(w, state, plan);
  w.header(3, delta.size);
  PacketPaths::write_delta(state, w, delta);
  write_compact(w, plan);
  return finish(std::move(bytes), w);
}

std::size_t synack_delta_budget(std::string_view cluster_id, std::size_t max_payload_size,
                                const Plan& plan) {
  const std::size_t cid = cluster_field(cluster_id);
  const std::size_t inner = largest_body(max_payload_size < cid ? 0 : max_payload_size - cid);
  const std::size_t digests = digest_fields_size(plan);
  return inner < digests ? 0 : largest_body(inner - digests);
}

namespace {

struct Header {
  std::uint64_t salt = 0;
  ByteView entries;
  bool partial = false;
  std::uint32_t cover_start = 0;
  std::uint32_t cover_end = 0;
  bool fingerprinted = false;
  std::uint64_t fingerprint = 0;
  bool aligned = false;
  ByteView aligned_entries;
};

bool read_header(ByteView body, Header& out) {
  wire::Reader c(body);
  std::uint64_t v = 0;
  if (!c.next(tag(1, kFixed64)) || !c.fixed64(out.salt) || out.salt == 0) return false;
  if (c.next(tag(2, wire::kLength)) && !c.length_delimited(out.entries)) return false;
  if (c.next(tag(3, wire::kVarint))) {
    if (!c.varint(v) || v > 1) return false;
    out.partial = v == 1;
  }
  if (c.next(tag(4, wire::kVarint))) {
    if (!c.varint(v) || v > UINT32_MAX) return false;
    out.cover_start = static_cast<std::uint32_t>(v);
  }
  if (c.next(tag(5, wire::kVarint))) {
    if (!c.varint(v) || v > UINT32_MAX) return false;
    out.cover_end = static_cast<std::uint32_t>(v);
  }
  // A range only with the partial flag, and never an empty one.
  if (!out.partial && (out.cover_start != 0 || out.cover_end != 0)) return false;
  if (out.partial && out.cover_start == out.cover_end) return false;
  if (c.next(tag(6, kFixed64))) {
    if (!c.fixed64(out.fingerprint)) return false;
    out.fingerprinted = true;
  }
  if (c.next(tag(7, wire::kLength))) {
    if (!c.length_delimited(out.aligned_entries)) return false;
    out.aligned = true;
  }
  // Aligned entries come alone: with the fingerprint they are read against,
  // neither hashed entries nor a partial range.
  if (out.aligned && (!out.fingerprinted || !out.entries.empty() || out.partial)) return false;
  return c.done();
}

// The length of the covered range, going up from its start: the whole
// circle for a full digest.
std::uint64_t cover_length(const Header& h) {
  return h.partial ? distance(h.cover_start, h.cover_end) : std::uint64_t{1} << 32;
}

bool covers(const Header& h, std::uint32_t hash) {
  return !h.partial || distance(h.cover_start, hash) < cover_length(h);
}

// Our member of each hash a digest lists, found by walking our table up
// from the covered range's start alongside the digest (both go up the
// circle), instead of a search per entry.
class MemberWalk {
 public:
  using Table = MemberHashes::Table;
  MemberWalk(ClusterState& state, const Table& ours, std::uint32_t start)
      : state_(state),
        ours_(ours),
        at_(static_cast<std::size_t>(
            std::lower_bound(ours.begin(), ours.end(), start,
                             [](const auto& a, std::uint32_t h) { return a.hash < h; }) -
            ours.begin())),
        last_(start) {}

  // The one member whose hash is `hash`, or null (none, or several). Each
  // call's hash is further up the circle from the start than the last one's.
  NodeState* next(std::uint32_t hash) {
    if (hash < last_) at_ = 0;  // wrapped past 2^32
    last_ = hash;
    while (at_ < ours_.size() && ours_[at_].hash < hash) ++at_;
    if (at_ == ours_.size() || ours_[at_].hash != hash) return nullptr;
    if (at_ + 1 < ours_.size() && ours_[at_ + 1].hash == hash) return nullptr;
    return &state_.at(ours_[at_].position);
  }

 private:
  ClusterState& state_;
  const Table& ours_;
  std::size_t at_;
  std::uint32_t last_;
};

}  // namespace

namespace {

// `st`'s digest entry as if the sender held exactly what we hold of it: a
// member a digest covers without listing is neither sent nor taken for
// unknown.
wire::DigestEntryView held_as_ours(NodeState& st) {
  wire::DigestEntryView e;
  e.id.state = &st;
  e.id.bytes = PacketPaths::encoded_id(st);
  e.last_gc_version = st.last_gc_version();
  e.max_version = st.max_version();
  return e;
}

// Every member we know that the base digest did not list, held as ours.
void as_held(ClusterState& state, const std::vector<const NodeState*>& listed,
             wire::PacketView& packet) {
  for (std::size_t i = 0; i < state.size(); ++i) {
    NodeState& st = state.at(i);
    if (!std::binary_search(listed.begin(), listed.end(), &st)) {
      packet.digest.push_back(held_as_ours(st));
    }
  }
}

// The aligned entries of `header`, one per member we list in id order but
// the sender, when its fingerprint is ours; otherwise (another membership,
// or a count that is not ours) read as covering nothing. False when
// malformed.
bool read_aligned(ClusterState& state, const Header& header, std::size_t max_entries,
                  std::uint64_t ours, wire::PacketView& packet, ReadScratch& scratch,
                  ReadReport& report) {
  const std::vector<const NodeState*>& listed = scratch.listed_in_full;
  const NodeState* sender = packet.digest.empty() ? nullptr : packet.digest.front().id.state;
  const std::size_t before = packet.digest.size();
  bool match = header.fingerprint == ours && sender != nullptr;
  std::size_t at = 0;  // our next member, by position in id order
  constexpr std::size_t kAhead = 32;
  std::uint64_t heartbeat = 0;
  std::size_t entries = 0;
  wire::Reader c(header.aligned_entries);
  while (!c.done()) {
    std::uint64_t coded = 0;
    wire::DigestEntryView e;
    if (!c.varint(coded) || ((coded & kAlignedHasGc) != 0 && !c.varint(e.last_gc_version)) ||
        !c.varint(e.max_version) || ++entries > max_entries) {
      return false;
    }
    heartbeat += unzigzag(coded >> kAlignedShift);
    if (!match) continue;
    // Each member is a cache miss otherwise (report_heartbeats then finds
    // it cached): its first two lines hold what is read here.
    if (at + kAhead < state.size()) {
      const auto* ahead = reinterpret_cast<const char*>(&state.at(at + kAhead));
      __builtin_prefetch(ahead);
      __builtin_prefetch(ahead + 64);
    }
    while (at < state.size() && !listed_aligned(state.at(at), sender)) ++at;
    if (at == state.size()) {
      match = false;  // more entries than members: not our membership after all
      continue;
    }
    NodeState& st = state.at(at++);
    e.heartbeat = heartbeat;
    e.id.state = &st;
    e.id.bytes = PacketPaths::encoded_id(st);
    packet.digest.push_back(e);
    // An aligned speaker speaks the compact digest too: listed once.
    if ((coded & kAlignedSpeaksAligned) != 0) {
      scratch.aligned_speakers.push_back(&st);
    } else if ((coded & kSpeaksCompact) != 0) {
      scratch.speakers.push_back(&st);
    }
  }
  while (match && at < state.size() && !listed_aligned(state.at(at), sender)) ++at;
  if (match && at == state.size()) {
    report.resolved += entries;
    return true;
  }
  report.mismatched = true;
  packet.digest.resize(before);
  scratch.speakers.clear();
  scratch.aligned_speakers.clear();
  as_held(state, listed, packet);
  return true;
}

}  // namespace

bool read(ClusterState& state, ByteView body, std::size_t max_entries, wire::PacketView& packet,
          HashCache hashes, const std::uint64_t* ours, ReadScratch& scratch, ReadReport& report) {
  Header header;
  if (!read_header(body, header)) return false;
  // A node that does not speak the aligned digest reads the new fields as a
  // node that predates them would: as a malformed digest.
  if (header.fingerprinted && ours == nullptr) return false;
  scratch.salt = header.salt;
  report.fingerprinted = header.fingerprinted;
  report.fingerprint = header.fingerprint;
  report.aligned = header.aligned;
  // The members the base digest listed keep its entries.
  auto& listed = scratch.listed_in_full;
  listed.clear();
  for (const auto& e : packet.digest) {
    if (e.id.state != nullptr) listed.push_back(e.id.state);
  }
  std::sort(listed.begin(), listed.end());
  scratch.speakers.clear();
  scratch.aligned_speakers.clear();
  if (header.aligned) {
    return read_aligned(state, header, max_entries, *ours, packet, scratch, report);
  }
  const auto& ours_by_hash = hashed(state, header.salt, hashes).by_hash;

  wire::Reader c(header.entries);
  MemberWalk member(state, ours_by_hash, header.cover_start);
  std::uint64_t offset = 0;  // of the current hash from the range's start
  const std::uint64_t length = cover_length(header);
  std::size_t entries = 0;
  // An entry's member is asked for when its hash is read and its id taken
  // kMembersAhead entries later, when it has arrived.
  std::size_t named = packet.digest.size();
  auto name_members = [&](std::size_t end) {
    for (; named < end; ++named) {
      wire::IdRef& id = packet.digest[named].id;
      id.bytes = PacketPaths::encoded_id(*id.state);
    }
  };
  while (!c.done()) {
    std::uint64_t gap = 0;
    std::uint64_t coded = 0;
    wire::DigestEntryView e;
    if (!c.varint(gap) || !c.varint(coded) ||
        ((coded & kHasGc) != 0 && !c.varint(e.last_gc_version)) || !c.varint(e.max_version)) {
      return false;
    }
    e.heartbeat = coded >> 2;
    // Hashes strictly increase along the covered range.
    if (++entries > max_entries || (entries > 1 && gap == 0) || gap >= length ||
        offset + gap >= length) {
      return false;
    }
    offset += gap;
    const auto hash = static_cast<std::uint32_t>(header.cover_start + offset);
    NodeState* const st = member.next(hash);
    if (st == nullptr) {
      ++report.unresolved;
      continue;
    }
    if ((coded & kSpeaksCompact) != 0) scratch.speakers.push_back(st);
    __builtin_prefetch(st);
    e.id.state = st;
    packet.digest.push_back(e);
    if (packet.digest.size() > named + kMembersAhead) {
      name_members(packet.digest.size() - kMembersAhead);
    }
    ++report.resolved;
  }
  name_members(packet.digest.size());
  if (!header.partial) return true;
  for (std::size_t k = 0; k < ours_by_hash.size(); ++k) {
    const auto [hash, position] = ours_by_hash[k];
    if (covers(header, hash)) continue;
    if (k + kMembersAhead < ours_by_hash.size()) {
      prefetch_member(state, ours_by_hash[k + kMembersAhead].position);
    }
    NodeState& st = state.at(position);
    if (std::binary_search(listed.begin(), listed.end(), &st)) continue;
    packet.digest.push_back(held_as_ours(st));
  }
  return true;
}

}  // namespace aiocluster::compact
