#include "aiocluster/node.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <utility>

#include "codec_internal.h"
#include "compact_digest.h"
#include "compression.h"
#include "envelope.h"
#include "failure_detector.h"
#include "grow.h"
#include "packing.h"
#include "rate_limiter.h"
#include "sealer.h"
#include "storage.h"
#include "wire.h"

namespace aiocluster {

namespace {

// How many compact Syns one salt of ours serves (proto/README.md, section 2).
constexpr std::uint32_t kSynsPerSalt = 16;

// Events whose room the queue keeps once drained: a round raises a few, and
// every node keeps this room between calls (256 bytes an event; room for
// 256 of them was 64 bytes a replica at 1,000 nodes).
constexpr std::size_t kKeptEvents = 16;
// The most room for events a workspace keeps for the next burst (1 MB).
constexpr std::size_t kRoomEvents = 4096;
// The same for a workspace nodes share (16 MB, once for all of them): a
// packet that brings a whole replica of 2,000 nodes raises 8,000 events, and
// a room too small for it was grown afresh, page by page, for each one.
constexpr std::size_t kSharedRoomEvents = 65536;
// Key-value views whose room the packet scratch keeps after a decompressed packet.
constexpr std::size_t kKeptViews = 4096;

// The tls_name rule of mutual TLS: the peer's certificate must carry the
// tls_name of some node its digest announces (host names compare without case).
bool names_a_digest_node(const std::vector<std::string>& peer_names,
                         const wire::PacketView& packet) {
  auto same = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             auto lower = [](char c) {
               return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
             };
             return lower(x) == lower(y);
           });
  };
  return std::any_of(packet.digest.begin(), packet.digest.end(), [&](const auto& e) {
    std::string_view name;
    if (e.id.state != nullptr) {
      name = e.id.state->id_view().tls_name;
    } else if (e.id.unknown != 0) {
      name = packet.unknown_ids[e.id.unknown - 1].tls_name;
    }
    return !name.empty() && std::any_of(peer_names.begin(), peer_names.end(),
                                        [&](const std::string& p) { return same(p, name); });
  });
}

// This node's sender id in sealed packets: from its seed, without drawing
// from its generator (whose draws decide the gossip), mixed with its identity
// so two nodes given the same seed still use different nonces.
std::uint64_t sender_id(std::uint64_t seed, const NodeId& id) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a over the name
  for (char c : id.name) h = (h ^ static_cast<std::uint8_t>(c)) * 0x100000001b3ULL;
  return Rng(seed ^ 0x7365616cULL ^ h ^ id.generation_id).next();
}

}  // namespace

// Inlined: asked per node per round.
[[gnu::always_inline]] inline Node::Liveness& Node::liveness(const NodeState& st) {
  if (st.slot() >= liveness_.size()) [[unlikely]] {
    reserve_more(liveness_, st.slot() + 1 - liveness_.size());
    liveness_.resize(st.slot() + 1);
  }
  return liveness_[st.slot()];
}

namespace {

template <typename Table>
auto dead_entry(Table& table, std::uint32_t slot) {
  return std::lower_bound(table.begin(), table.end(), slot,
                          [](const auto& entry, std::uint32_t s) { return entry.first < s; });
}

}  // namespace

void Node::set_dead(const NodeState& st, Liveness& l) {
  l.dead = true;
  // An entry left from an earlier death (or an earlier node of the slot).
  const auto it = dead_entry(dead_since_, st.slot());
  if (it != dead_since_.end() && it->first == st.slot()) {
    it->second = now_;
  } else {
    dead_since_.emplace(it, st.slot(), now_);
  }
}

void Node::drop_undead() {
  // Erasing each entry as its node turns live would move the table once per
  // node (every node starts dead): they go together, once a round.
  std::erase_if(dead_since_, [&](const auto& entry) {
    return entry.first >= liveness_.size() || !liveness_[entry.first].dead;
  });
  if (dead_since_.capacity() > 4 * dead_since_.size() + 16) dead_since_.shrink_to_fit();
}

Instant Node::dead_since(const NodeState& st) const {
  const auto it = dead_entry(dead_since_, st.slot());
  return it != dead_since_.end() && it->first == st.slot() ? it->second : now_;
}

// The buffers of one call into the node: the packet being handled, the
// plans of the packets being written, the lists of a round, the zstd
// contexts. Nothing in them outlives the call that fills them (every field
// is set before it is read, in the same call), so nodes run on one thread
// may share one workspace (Node::share_workspace) and every packet stays
// what it would be with a workspace of its own.
struct Node::Workspace {
  wire::PacketView packet;
  DigestPlan digest;
  DeltaPlan delta;
  // Of a round.
  std::vector<const NodeState*> live;
  std::vector<const NodeState*> dead;
  std::vector<const NodeState*> pool;
  std::vector<const Address*> seeds;
  std::vector<const NodeState*> doomed;
  std::vector<const NodeState*> picked;
  // Of apply_delta: the last_gc_version of each replica a delta names.
  std::vector<std::pair<const NodeState*, std::uint64_t>> gc_before;
  // Our extensions: what the packet being handled announced (our features
  // it shares), set by read_extensions, and the compact digests written and
  // read.
  std::uint64_t peer_features = 0;
  bool announced = false;
  compact::Announcement announcement;
  compact::Plan compact;
  compact::ReadScratch compact_read;
  // The table of our members under the salt of the Syn being handled, not
  // our own: its SynAck reuses it. Built afresh in each call that needs it.
  compact::MemberHashes compact_hashes;
  // Of keyless_unseen.
  std::vector<char> seen;  // by slot
  std::vector<const NodeState*> unseen;
  compression::Codec zstd;
  // Room for a burst of events, empty between calls: the last burst's, left
  // by whichever node sharing the workspace drained it. A burst taking it
  // neither reallocates as it grows nor writes to pages the kernel must
  // fault in afresh (15 % of a 1,000-node simulator's first rounds).
  std::vector<Event> events_room;
  // Not a buffer: the encoded ids of the replicas of the nodes sharing the
  // workspace, one copy of each (ClusterState::share_ids). The first node's
  // table; each node's ClusterState keeps it alive as long as it is used.
  std::shared_ptr<IdTable> ids;
  // Likewise its table of frozen keys blocks (ClusterState::share_keys).
  std::shared_ptr<KeysTable> keys;
};

// What a node keeps between calls beside its state proper: caches that
// later packets depend on.
struct Node::Scratch {
  Bytes announcing;  // ours, encoded (announcement_field)
  // Our members under our own salt.
  compact::MemberHashes compact_hashes;
  // The aligned digest (proto/README.md section 2.3): our fingerprint, the
  // count that moves whenever a node is scheduled for deletion or taken off
  // the schedule, the fingerprint of the digest being handled, and the last
  // one read from any peer (our Syns are aligned while it is ours).
  compact::FingerprintCache fingerprint;
  std::uint64_t deletions = 0;
  std::optional<std::uint64_t> read_fingerprint;
  std::optional<std::uint64_t> heard_fingerprint;
  // What our last large compressed packet achieved (Node::fitted).
  compression::Ratio16 ratio = 0;
};

Node::Node(Config config, Instant now, std::uint64_t seed, const KeyValues& initial_key_values)
    : config_((config.validate() ? throw ConfigError(*config.validate()) : std::move(config))),
      now_(now),
      rng_(seed),
      cluster_(config_.node_id, Rng(seed ^ 0x68617368ULL).next()),
      detector_(
          std::make_unique<FailureDetector>(config_.failure_detector, config_.gossip_interval)),
      next_round_(now),
      datagram_syns_(std::make_unique<SourceRateLimiter>(
          config_.gossip_interval /
              static_cast<Duration::rep>(config_.limits.datagram_syns_per_round),
          config_.limits.datagram_syn_burst, config_.limits.max_rate_limited_sources)),
      sealer_(std::make_unique<Sealer>(config_.sealing, now, sender_id(seed, config_.node_id))),
      scratch_(std::make_unique<Scratch>()),
      work_(std::make_shared<Workspace>()) {
  work_->ids = cluster_.ids();
  work_->keys = cluster_.keys_table();
  for (const auto& [key, value] : initial_key_values) set(key, value);
}

Node::~Node() = default;

Node::Node(const Node& other, std::uint64_t sender)
    : config_(other.config_),
      now_(other.now_),
      rng_(other.rng_),
      cluster_(other.cluster_),
      detector_(std::make_unique<FailureDetector>(*other.detector_)),
      stats_(other.stats_),
      next_round_(other.next_round_),
      later_syns_(other.later_syns_),
      key_values_at_round_(other.key_values_at_round_),
      liveness_(other.liveness_),
      dead_since_(other.dead_since_),
      transmits_(other.transmits_),
      transmits_head_(other.transmits_head_),
      events_(other.events_),
      events_head_(other.events_head_),
      pending_syns_(other.pending_syns_),
      pending_synacks_(other.pending_synacks_),
      datagram_syns_(std::make_unique<SourceRateLimiter>(*other.datagram_syns_)),
      sealer_(std::make_unique<Sealer>(*other.sealer_)),
      features_by_slot_(other.features_by_slot_),
      compact_rotation_(other.compact_rotation_),
      compact_salt_(other.compact_salt_),
      compact_salt_syns_(other.compact_salt_syns_),
      scratch_(std::make_unique<Scratch>()),
      work_(std::make_shared<Workspace>()) {
  work_->ids = cluster_.ids();
  work_->keys = cluster_.keys_table();
  sealer_->take_sender(sender);
}

Node Node::fork(std::uint64_t seed) const {
  // Another stream than the one a Node built with `seed` seals under.
  return Node(*this, sender_id(seed ^ 0x666f726bULL, config_.node_id));
}

Node::Node(Node&&) noexcept = default;
Node& Node::operator=(Node&&) noexcept = default;

void Node::advance_clock(Instant now) {
  // Time never runs backwards inside the core, whatever the driver passes.
  if (now <= now_) return;
  // A driver gives the node an input at least every round: a much longer
  // gap means this process did not run, not that the peers went quiet.
  if (now - now_ > *detector_->config().local_pause_threshold) {
    ++stats_.local_pauses;
    detector_->note_local_pause(now);
  }
  now_ = now;
}

std::optional<Instant> Node::poll_timeout() const {
  if (later_syns_.empty()) return next_round_;
  const Instant syn = later_syns_.back().first;
  return next_round_ ? std::min(*next_round_, syn) : syn;
}

void Node::handle_timeout(Instant now) {
  advance_clock(now);
  // Before a round that is due as well (a timer that fired late): no
  // exchange a round picked is lost, and the round's own Syns come after.
  send_due_syns();
  if (!next_round_ || now_ < *next_round_) return;
  run_round();
  *next_round_ += config_.gossip_interval;
  if (*next_round_ <= now_) next_round_ = now_ + config_.gossip_interval;
}

void Node::run_round() {
  ++stats_.rounds;
  // No NodeState pointer is held between calls: the start of a round may
  // move them (ClusterState::lay_out).
  PacketPaths::lay_out(cluster_);
  cluster_.self().increment_heartbeat();
  expire_pending();
  std::vector<SynTarget> targets = round_targets();
  // While rounds bring more key-values than we know nodes (joining, or a
  // cluster starting), peers answering one digest at once would send much
  // the same: the round's Syns then go one after another, spread over the
  // interval, each with what the exchanges before it brought. Otherwise all
  // at once, one Syn of each form for every peer.
  const bool catching_up = stats_.key_values_applied - key_values_at_round_ > cluster_.size();
  key_values_at_round_ = stats_.key_values_applied;
  if (catching_up && targets.size() > 1) {
    for (std::size_t p = targets.size() - 1; p > 0; --p) {
      const Duration offset = config_.gossip_interval * static_cast<Duration::rep>(p) /
                              static_cast<Duration::rep>(targets.size());
      later_syns_.emplace_back(now_ + offset, std::move(targets[p]));
    }
    targets.resize(1);
  }
  send_syns(targets);
  if (sealing()) sealer_->expire(now_);
  update_liveness();
  stats_.tombstones_removed +=
      cluster_.gc_tombstones(now_, config_.marked_for_deletion_grace_period);
}

std::vector<Node::SynTarget> Node::round_targets() {
  std::vector<Address> peers;
  std::vector<const NodeState*>& picked = work_->picked;
  select_peers(peers, picked);
  auto form_of = [&](const NodeState* st) -> std::uint8_t {
    return !speaks_compact(st) ? 0 : speaks(st, compact::kAligned) ? 2 : 1;
  };
  std::vector<SynTarget> targets(peers.size());
  for (std::size_t p = 0; p < peers.size(); ++p) {
    targets[p] = SynTarget{std::move(peers[p]), "", form_of(picked[p]),
                           speaks(picked[p], compression::kFeature)};
  }
  // The certificate to expect is the one of the node known at this
  // address (a live one first); a bare seed has none. One walk for all peers.
  for (std::size_t i = 0; cluster_.tls_named() > 0 && i < cluster_.size(); ++i) {
    const NodeId& id = cluster_.at(i).id();
    if (id.tls_name.empty()) continue;
    for (SynTarget& t : targets) {
      if (id.gossip_advertise_addr == t.to &&
          (t.tls_name.empty() || liveness(cluster_.at(i)).live)) {
        t.tls_name = id.tls_name;
      }
    }
  }
  return targets;
}

void Node::send_due_syns() {
  while (!later_syns_.empty() && later_syns_.back().first <= now_) {
    SynTarget target = std::move(later_syns_.back().second);
    later_syns_.pop_back();
    send_syns(std::span(&target, 1));
  }
}

// One Syn of each form at most, copied to every target that takes it, and
// compressed (once) for those that announced compression when large enough
// to gain. The last target of each form takes the plain Syn itself.
void Node::send_syns(std::span<SynTarget> targets) {
  std::optional<Bytes> syns[3];
  std::optional<Bytes> compressed[3];
  bool compress_tried[3] = {false, false, false};
  bool aligned[3] = {false, false, false};
  std::size_t last_of[3] = {0, 0, 0};
  for (std::size_t p = 0; p < targets.size(); ++p) last_of[targets[p].form] = p;
  for (std::size_t p = 0; p < targets.size(); ++p) {
    SynTarget& target = targets[p];
    const std::size_t form = target.form;
    const bool compact = form != 0;
    std::optional<Bytes>& syn = syns[form];
    if (!syn) {
      syn = make_syn(compact, form == 2);
      aligned[form] = form == 2 && work_->compact.aligned;
    }
    const Bytes* out = &*syn;
    if (target.compression && compression::worth_trying(syn->size(), false)) {
      if (!compress_tried[form]) {
        compress_tried[form] = true;
        compressed[form] = work_->zstd.compress(*syn);
      }
      if (compressed[form]) {
        out = &*compressed[form];
        ++stats_.packets_compressed;
      }
    }
    ++stats_.packets_out.syn;
    stats_.bytes_out += out->size();
    stats_.compact_digests_out += compact ? 1 : 0;
    stats_.aligned_digests_out += aligned[form] ? 1 : 0;
    Bytes payload = out == &*syn && p == last_of[form] ? std::move(*syn) : copy_of(*out);
    // Sealed one by one: every packet takes a nonce of its own.
    transmits_.push_back(
        Transmit{std::move(target.to), sealed(std::move(payload)), std::move(target.tls_name)});
  }
}

void Node::select_peers(std::vector<Address>& out, std::vector<const NodeState*>& picked) {
  picked.clear();
  const Address& self_addr = self_id().gossip_advertise_addr;
  std::vector<const NodeState*>& live = work_->live;
  std::vector<const NodeState*>& dead = work_->dead;
  live.clear();
  dead.clear();
  constexpr std::size_t kAhead = 12;
  for (std::size_t i = 0; i < cluster_.size(); ++i) {
    // Each replica is a cache miss otherwise (see update_liveness).
    if (i + kAhead < cluster_.size()) __builtin_prefetch(&cluster_.at(i + kAhead));
    const NodeState& st = cluster_.at(i);
    if (&st == &cluster_.self() || st.scheduled_for_deletion()) continue;
    (liveness(st).live ? live : dead).push_back(&st);
  }
  auto add = [&](const Address& addr, const NodeState* st) {
    if (addr == self_addr || std::find(out.begin(), out.end(), addr) != out.end()) return;
    out.push_back(addr);
    picked.push_back(st);
  };

  // Up to gossip_count distinct peers among the live ones (among every known
  // peer while none is live): a partial Fisher-Yates shuffle.
  std::vector<const NodeState*>& pool = work_->pool;
  pool = live.empty() ? dead : live;
  const std::size_t picks = std::min(config_.gossip_count, pool.size());
  for (std::size_t i = 0; i < picks; ++i) {
    std::swap(pool[i], pool[i + rng_.below(pool.size() - i)]);
    add(pool[i]->id().gossip_advertise_addr, pool[i]);
  }
  const std::size_t regular_picks = out.size();
  // Sometimes a dead node, so a recovered one is heard again.
  if (!dead.empty() &&
      rng_.chance(static_cast<double>(dead.size()) / static_cast<double>(live.size() + 1))) {
    const NodeState* st = dead[rng_.below(dead.size())];
    add(st->id().gossip_advertise_addr, st);
  }
  // A seed, while the cluster may still be split or nothing is live.
  std::vector<const Address*>& seeds = work_->seeds;
  seeds.clear();
  for (const auto& seed : config_.seeds) {
    if (seed == self_addr) continue;
    if (std::none_of(seeds.begin(), seeds.end(), [&](const Address* s) { return *s == seed; })) {
      seeds.push_back(&seed);
    }
  }
  if (seeds.empty()) return;
  // Only the regular picks count: a dead node that happens to be a seed
  // does not stand in for one.
  const bool seed_picked =
      std::any_of(out.begin(), out.begin() + regular_picks, [&](const Address& a) {
        return std::any_of(seeds.begin(), seeds.end(), [&](const Address* s) { return *s == a; });
      });
  if (seed_picked && live.size() >= seeds.size()) return;
  const double p = live.empty() ? 1.0
                                : static_cast<double>(seeds.size()) /
                                      static_cast<double>(live.size() + dead.size());
  if (live.empty() || rng_.chance(p)) add(*seeds[rng_.below(seeds.size())], nullptr);
}

const Node::Liveness* Node::liveness_of(const NodeId& id) const {
  const NodeState* st = cluster_.find(id);
  if (st == nullptr || st->slot() >= liveness_.size()) return nullptr;
  return &liveness_[st->slot()];
}

void Node::update_liveness() {
  const Duration grace = config_.dead_node_grace_period;
  std::vector<const NodeState*>& doomed = work_->doomed;
  doomed.clear();
  // Replicas, then their windows and liveness, asked for some nodes ahead:
  // a thousand of each per node stay in no cache.
  constexpr std::size_t kAhead = 12;
  for (std::size_t i = 0; i < cluster_.size(); ++i) {
    if (i + 2 * kAhead < cluster_.size()) __builtin_prefetch(&cluster_.at(i + 2 * kAhead));
    if (i + kAhead < cluster_.size()) {
      const std::uint32_t slot = cluster_.at(i + kAhead).slot();
      detector_->prefetch_window(slot);
      if (slot < liveness_.size()) __builtin_prefetch(&liveness_[slot]);
    }
    NodeState& st = cluster_.at(i);
    if (&st == &cluster_.self()) continue;
    Liveness& l = liveness(st);
    const bool live = !st.scheduled_for_deletion() && detector_->is_live(st.slot(), now_);
    if (live && detector_->spared_by_pause(st.slot(), now_)) ++stats_.convictions_deferred;
    if (live && !l.live) {
      l.live = true;
      l.dead = false;
    } else if (!live && l.live) {
      l.live = false;
      set_dead(st, l);
      detector_->forget(st.slot());
    } else if (!live && !l.dead) {
      set_dead(st, l);
    }
    report_liveness(st, l);
    // A node dead long enough is scheduled for deletion, then removed.
    if (!l.dead) continue;
    const Duration dead_for = now_ - dead_since(st);
    if (dead_for >= grace) {
      doomed.push_back(&st);
    } else if (dead_for >= grace / 2 && !st.scheduled_for_deletion()) {
      st.schedule_for_deletion();
      ++scratch_->deletions;
    }
  }
  for (const NodeState* st : doomed) {
    // Its slot may name another node next.
    liveness_[st->slot()] = Liveness{};
    if (st->slot() < features_by_slot_.size()) features_by_slot_[st->slot()] = 0;
    detector_->forget(st->slot());
    const NodeId id = st->id();
    cluster_.remove(id);
    ++stats_.nodes_removed;
  }
  drop_undead();
}

void Node::report_liveness(const NodeState& st, Liveness& l) {
  const bool reported = l.live && (!config_.extra_liveness || config_.extra_liveness(st));
  if (reported == l.reported) return;
  l.reported = reported;
  ++live_set_version_;
  if (reported) {
    queue_event(NodeJoined{st.id()});
  } else {
    queue_event(NodeLeft{st.id()});
  }
}

// With a stated detection time a node turns live when its beat arrives, not
// at our next round: a join shows up to a round sooner. Dying still waits
// for a round (update_liveness), as the protocol says.
void Node::turn_live_if_heard(const NodeState& st) {
  Liveness& l = liveness(st);
  if (l.live || st.scheduled_for_deletion() || !detector_->is_live(st.slot(), now_)) return;
  l.live = true;
  l.dead = false;
  report_liveness(st, l);
}

void Node::note_node(const NodeState& st, bool created) {
  if (!created || &st == &cluster_.self()) return;
  Liveness& l = liveness(st);
  if (!l.live && !l.dead) set_dead(st, l);
}

void Node::report_heartbeats() {
  wire::PacketView& packet = work_->packet;
  // Reading the digest touched every replica it names; the windows of those
  // with a new heartbeat (the few that record() one) are asked for some
  // entries ahead: a thousand per node stay in no cache. (Not their rings:
  // scattered over the heap, a prefetch of one stalled as long as the store
  // it spared, in perf.)
  constexpr std::size_t kAhead = 12;
  const wire::DigestEntryView* const digest = packet.digest.data();
  const std::size_t entries = packet.digest.size();
  const FailureDetector& detector = *detector_;
  for (std::size_t i = 0; i < entries; ++i) {
    if (i + kAhead < entries) {
      const wire::DigestEntryView& ahead = digest[i + kAhead];
      if (ahead.id.state != nullptr && ahead.heartbeat > ahead.id.state->heartbeat()) {
        detector.prefetch_window(ahead.id.state->slot());
      }
    }
    auto& e = packet.digest[i];
    NodeState* st = e.id.state;
    if (st == &cluster_.self()) continue;
    bool created = false;
    if (st == nullptr) {
      // Only a node we would create needs this check: known ones passed it.
      // Its id is canonical: its size is the NodeIdPb's.
      if (e.id.bytes.size() > config_.limits.max_node_id_size) {
        ++stats_.nodes_refused;
        continue;
      }
      st = PacketPaths::find_or_create(cluster_, packet, e.id, config_.limits.max_nodes, &created);
      if (st == nullptr) {
        ++stats_.nodes_refused;
        continue;
      }
    }
    note_node(*st, created);
    st->announce_max_version(e.max_version);
    // The first heartbeat seen of a node says nothing about when it beat.
    const bool first = st->heartbeat() == 0;
    if (!st->observe_heartbeat(e.heartbeat) || first) continue;
    // A node scheduled for deletion that beats again may be back (after a
    // long partition): it is gossiped with again and turns live once the
    // detector hears it beat twice; otherwise update_liveness schedules it
    // again, and its removal time (Liveness::dead_since) never moves. Python
    // aiocluster 1.1.0 revives such nodes too.
    if (st->scheduled_for_deletion()) {
      st->unschedule_deletion();
      ++scratch_->deletions;
      ++stats_.nodes_revived;
    }
    detector_->report_heartbeat(st->slot(), now_);
    if (config_.failure_detector.detection_time) turn_live_if_heard(*st);
  }
  PacketPaths::place_new_nodes(cluster_);
}

void Node::apply_delta(Bytes* owned) {
  const std::size_t known_before = cluster_.size();
  const ApplyLimits limits{config_.limits.max_nodes, config_.limits.max_keys_per_node,
                           config_.limits.max_key_size, config_.limits.max_value_size,
                           config_.limits.max_node_id_size};
  wire::PacketView& packet = work_->packet;
  // A reset wipes a replica and gives it the owner's last_gc_version, the
  // only way that version of a known replica moves.
  std::vector<std::pair<const NodeState*, std::uint64_t>>& gc_before = work_->gc_before;
  gc_before.clear();
  for (const auto& nd : packet.node_deltas) {
    const NodeState* st = nd.id.state;
    if (st != nullptr && st != &cluster_.self()) gc_before.emplace_back(st, st->last_gc_version());
  }
  // A node delta's changes come one after another: its id is decoded once.
  const NodeState* named = nullptr;
  NodeId id;
  const ApplyReport report = PacketPaths::apply(
      cluster_, packet, owned, now_, limits, [&](const NodeState& st, const KeyChangeRef& change) {
        if (&st != named) {
          id = st.id();
          named = &st;
        }
        emit_change(id, change.to_change());
      });
  stats_.node_deltas_applied += report.applied;
  stats_.resets_applied += report.resets;
  stats_.rejected_gap += report.rejected_gap;
  stats_.rejected_reset += report.rejected_reset;
  stats_.rejected_stale += report.rejected_stale;
  stats_.rejected_malformed += report.rejected_malformed;
  stats_.rejected_limit += report.rejected_limit;
  stats_.key_values_applied += report.key_values;
  stats_.key_value_bytes_copied += report.bytes_copied;
  stats_.completeness_capped += report.completeness_capped;
  if (report.resets > 0) {
    for (const auto& [st, gc] : gc_before) {
      if (st->last_gc_version() != gc) queue_event(ReplicaReset{st->id()});
    }
  }
  if (cluster_.size() != known_before) {
    for (const auto& nd : packet.node_deltas) {
      if (nd.id.state != nullptr) note_node(*nd.id.state, true);
    }
  }
}

void Node::emit_change(const NodeId& node, KeyChange change) {
  ++live_set_version_;
  queue_event(std::in_place_type<KeyChanged>, node, std::move(change.key),
              std::move(change.old_value), std::move(change.new_value));
}

template <typename... Args>
void Node::queue_event(Args&&... args) {
  if (events_.size() == events_.capacity()) [[unlikely]] {
    take_events_room();
  }
  events_.emplace_back(std::forward<Args>(args)...);
}

void Node::take_events_room() {
  std::vector<Event>& room = work_->events_room;
  if (room.capacity() <= events_.capacity()) return;
  room.assign(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
  events_.swap(room);
  room.clear();
}

void Node::plan_digest(std::size_t budget) {
  DigestPlan& plan = work_->digest;
  PacketPaths::plan_digest(cluster_, budget, rng_, plan);
  if (plan.nodes.size() < cluster_.size()) {
    std::size_t announced = 0;
    for (std::size_t i = 0; i < cluster_.size(); ++i) {
      announced += cluster_.at(i).scheduled_for_deletion() ? 0 : 1;
    }
    if (plan.nodes.size() < announced) ++stats_.digests_truncated;
  }
}

// The salt of the compact digests we start (proto/README.md): kept for a
// few Syns, so we hash our members once for all of them and their SynAcks.
// A salt is drawn for every compact digest all the same, so the random
// stream of a seed (peer picks, shuffles) stays what it was when every
// digest had a fresh salt.
std::uint64_t Node::own_salt() {
  const std::uint64_t fresh = rng_.next() | 1;
  if (compact_salt_syns_ == 0) {
    compact_salt_ = fresh;
    compact_salt_syns_ = kSynsPerSalt;
  }
  --compact_salt_syns_;
  return compact_salt_;
}

std::uint64_t Node::fingerprint() {
  return compact::fingerprint(cluster_, scratch_->deletions, scratch_->fingerprint);
}

Bytes Node::make_syn(bool compact, bool aligned) {
  const std::size_t budget = syn_digest_budget(config_.cluster_id, payload_limit());
  if (compact) {
    compact::Plan& plan = work_->compact;
    const std::uint64_t salt = own_salt();
    plan.fingerprinted = aligned;
    if (aligned) {
      plan.fingerprint = fingerprint();
      if (scratch_->heard_fingerprint == plan.fingerprint &&
          compact::plan_aligned(cluster_, salt, plan.fingerprint, features_by_slot_, budget,
                                plan)) {
        return announced(
            compact::write_syn(config_.cluster_id, cluster_, plan, announcement_room()));
      }
    }
    compact::plan(cluster_, compact::hashed(cluster_, salt, scratch_->compact_hashes),
                  features_by_slot_, {}, budget, compact_rotation_, plan);
    if (compact::usable(plan)) {
      compact_rotation_ += plan.count;
      stats_.partial_digests_out += plan.partial ? 1 : 0;
      return announced(compact::write_syn(config_.cluster_id, cluster_, plan, announcement_room()));
    }
  }
  plan_digest(budget);
  return announced(write_syn(config_.cluster_id, cluster_, work_->digest, announcement_room()));
}

// The nodes the digest being answered does not list and that have no
// key-values: no delta would carry their ids, so a compact SynAck lists them
// in full.
std::span<const NodeState* const> Node::keyless_unseen() {
  std::vector<char>& seen = work_->seen;
  seen.assign(cluster_.slots(), 0);
  for (const auto& e : work_->packet.digest) {
    if (e.id.state != nullptr && e.id.state->slot() < seen.size()) seen[e.id.state->slot()] = 1;
  }
  std::vector<const NodeState*>& unseen = work_->unseen;
  unseen.clear();
  for (std::size_t i = 0; i < cluster_.size(); ++i) {
    const NodeState& st = cluster_.at(i);
    if (st.max_version() == 0 && !st.scheduled_for_deletion() && st.slot() < seen.size() &&
        seen[st.slot()] == 0) {
      unseen.push_back(&st);
    }
  }
  return unseen;
}

Bytes Node::make_synack() {
  ++stats_.packets_out.synack;
  const std::size_t budget = synack_digest_budget(config_.cluster_id, payload_limit());
  if ((work_->peer_features & compact::kCompactDigest) != 0) {
    // The Syn's salt, whose table reading it built: our own when it had no
    // compact digest.
    std::uint64_t salt = work_->compact_read.salt;
    if (salt == 0) {
      salt = own_salt();
    } else {
      rng_.next();  // drawn all the same: see own_salt()
    }
    compact::Plan& plan = work_->compact;
    auto write_compact_synack = [&] {
      ++stats_.compact_digests_out;
      Bytes out =
          fitted(compact::synack_delta_budget(config_.cluster_id, payload_limit(), plan), [&] {
            return announced(compact::write_synack(config_.cluster_id, cluster_, plan, work_->delta,
                                                   announcement_room()));
          });
      stats_.bytes_out += out.size();
      return out;
    };
    plan.fingerprinted = (work_->peer_features & compact::kAligned) != 0;
    if (plan.fingerprinted) {
      plan.fingerprint = fingerprint();
      // Aligned when the Syn's fingerprint is ours: its sender reads it
      // against the membership it had when it wrote the Syn.
      if (scratch_->read_fingerprint == plan.fingerprint &&
          compact::plan_aligned(cluster_, salt, plan.fingerprint, features_by_slot_, budget,
                                plan)) {
        ++stats_.aligned_digests_out;
        return write_compact_synack();
      }
    }
    // Under our own salt, the table we keep: our next Syns reuse it.
    compact::MemberHashes& own = scratch_->compact_hashes;
    const compact::MemberHashes& table =
        work_->compact_read.salt == 0
            ? compact::hashed(cluster_, salt, own)
            : compact::hashed(cluster_, salt, compact::HashCache{own, work_->compact_hashes});
    compact::plan(cluster_, table, features_by_slot_, keyless_unseen(), budget, compact_rotation_,
                  plan);
    if (compact::usable(plan)) {
      compact_rotation_ += plan.count;
      stats_.partial_digests_out += plan.partial ? 1 : 0;
      return write_compact_synack();
    }
  }
  plan_digest(budget);
  const DigestPlan& digest = work_->digest;
  Bytes out = fitted(synack_delta_budget(config_.cluster_id, payload_limit(), digest.size), [&] {
    return announced(
        write_synack(config_.cluster_id, cluster_, digest, work_->delta, announcement_room()));
  });
  stats_.bytes_out += out.size();
  return out;
}

namespace {
bool carries_key_values(const DeltaPlan& plan) {
  return std::any_of(plan.parts.begin(), plan.parts.end(),
                     [](const DeltaPlan::Part& p) { return p.end_slot > p.first_slot; });
}

// Whether the delta left out something the peer lacks: a node, or the end
// of one.
bool cut_short(const DeltaPlan& plan) {
  return plan.parts.size() < plan.candidates.size() ||
         (!plan.parts.empty() &&
          plan.parts.back().max_version < plan.parts.back().state->max_version());
}
}  // namespace

// The budget counts the bytes sent (proto/README.md section 5). To a peer
// that speaks compression the delta is planned first with the budget the
// ratio of our last large packet predicts, and compressed once; only when
// that packet does not fit is it planned again with the plain budget. A
// delta still cut short whose compressed packet leaves room is planned
// again, larger, and the largest packet whose compressed form fits goes out.
Bytes Node::fitted(std::size_t budget, const std::function<Bytes()>& write) {
  auto plan = [&](std::size_t b) {
    PacketPaths::plan_delta(cluster_, work_->packet.digest, b, rng_, work_->delta);
  };
  const bool compressing = (work_->peer_features & compression::kFeature) != 0;
  const std::size_t limit = send_limit();
  const std::size_t cap = std::min(compression::kMaxPlain, config_.max_inbound_payload_size);
  auto compressed = [&](const Bytes& plain) -> std::optional<Bytes> {
    if (!compressing ||
        !compression::worth_trying(plain.size(), carries_key_values(work_->delta))) {
      return std::nullopt;
    }
    return work_->zstd.compress(plain);
  };
  const std::size_t predicted =
      compressing ? compression::predicted_budget(budget, limit, cap, scratch_->ratio) : budget;
  plan(predicted);
  Bytes plain = write();
  std::optional<Bytes> sent = compressed(plain);
  const std::size_t size = sent ? sent->size() : plain.size();
  if (predicted > budget && (size > limit || plain.size() > cap)) {
    // The ratio promised too much: predicted again from this packet's, which
    // holds much the same, then the plain budget.
    scratch_->ratio = compression::ratio16(plain.size(), size);
    const std::size_t again = compression::predicted_budget(budget, limit, cap, scratch_->ratio);
    bool fits = false;
    if (again > budget && again < predicted) {
      plan(again);
      plain = write();
      sent = compressed(plain);
      fits = sent && sent->size() <= limit && plain.size() <= cap;
    }
    if (fits) {
      budget = again;
    } else {
      plan(budget);
      plain = write();
      sent = compressed(plain);
    }
  } else {
    budget = predicted;
  }
  if (!sent) return plain;
  for (int i = 0; i < compression::kMaxReplans && cut_short(work_->delta); ++i) {
    const std::optional<std::size_t> next =
        compression::grown_budget(budget, plain.size(), sent->size(), limit, cap);
    if (!next) break;
    budget = *next;
    plan(budget);
    Bytes more = write();
    std::optional<Bytes> more_sent = work_->zstd.compress(more);
    if (!more_sent || more_sent->size() > limit || more.size() > cap) break;
    plain = std::move(more);
    sent = std::move(more_sent);
  }
  // Small packets compress less: only large ones predict the next.
  if (plain.size() >= limit / 4) scratch_->ratio = compression::ratio16(plain.size(), sent->size());
  ++stats_.packets_compressed;
  return std::move(*sent);
}

Bytes Node::make_ack() {
  Bytes out = fitted(ack_delta_budget(config_.cluster_id, send_limit()),
                     [&] { return write_ack(config_.cluster_id, cluster_, work_->delta); });
  ++stats_.packets_out.ack;
  stats_.bytes_out += out.size();
  return out;
}

Bytes Node::make_bad_cluster() {
  Bytes out = encode(Packet{config_.cluster_id, BadCluster{}});
  ++stats_.packets_out.bad_cluster;
  stats_.bytes_out += out.size();
  return out;
}

Outcome Node::handle_packet(ByteView bytes, Instant now, const Inbound& in) {
  advance_clock(now);
  return receive(bytes, nullptr, in);
}

Outcome Node::handle_packet(Bytes&& bytes, Instant now, const Inbound& in) {
  advance_clock(now);
  return receive(bytes, &bytes, in);
}

Outcome Node::drop(DropReason reason) {
  ++stats_.dropped(reason);
  return Outcome{std::nullopt, reason};
}

Outcome Node::receive(ByteView bytes, Bytes* owned, const Inbound& in) {
  stats_.bytes_in += bytes.size();
  if (bytes.size() > config_.max_inbound_payload_size) return drop(DropReason::kOversized);
  if (bytes.size() > config_.max_payload_size) ++stats_.packets_in_above_max_payload;
  if (!sealing()) return receive_decompressed(bytes, owned, in);
  Sealer::Opened opened = sealer_->open(bytes, config_.cluster_id, now_);
  if (opened.refused) return drop(*opened.refused);
  // A plaintext packet (accepted in the rollout modes) is answered in
  // plaintext: its sender may hold no key yet.
  if (!opened.sealed) return receive_decompressed(bytes, owned, in);
  ++stats_.packets_opened;
  Outcome outcome = receive_decompressed(opened.plaintext, &opened.plaintext, in);
  if (outcome.reply) outcome.reply->payload = sealed(std::move(outcome.reply->payload));
  return outcome;
}

// Opened first, then decompressed: a sealed packet wraps the compressed
// bytes. A node without the extension reads 0xB7 as a 1.1.0 peer would.
Outcome Node::receive_decompressed(ByteView bytes, Bytes* owned, const Inbound& in) {
  if ((features() & compression::kFeature) == 0 || !compression::is_compressed(bytes)) {
    return receive_plain(bytes, owned, in);
  }
  compression::Codec::Result r = work_->zstd.decompress(bytes, config_.max_inbound_payload_size);
  if (r.refused) return drop(*r.refused);
  ++stats_.packets_decompressed;
  Outcome outcome = receive_plain(r.plain, &r.plain, in);
  // A plain packet may hold several times what the wire does (a whole
  // replica at first contact): its views go with it rather than stay sized
  // for it in every node.
  if (work_->packet.key_values.capacity() > kKeptViews) {
    work_->packet.key_values.clear();
    work_->packet.key_values.shrink_to_fit();
  }
  return outcome;
}

Outcome Node::receive_plain(ByteView bytes, Bytes* owned, const Inbound& in) {
  wire::PacketView& packet = work_->packet;
  // Anything but the canonical form goes through the generated parser and
  // is written again canonically, so one path handles every packet.
  Bytes canonical;
  if (!wire::read_packet(bytes, packet) || !PacketPaths::resolve(cluster_, packet)) {
    DecodeResult decoded = decode_reference(bytes);
    if (const auto* error = std::get_if<DecodeError>(&decoded)) {
      return drop(*error == DecodeError::kNoMessage ? DropReason::kUnknownMessage
                                                    : DropReason::kMalformed);
    }
    canonical = encode(std::get<Packet>(decoded));
    if (!wire::read_packet(canonical, packet) || !PacketPaths::resolve(cluster_, packet)) {
      return drop(DropReason::kMalformed);
    }
    owned = &canonical;
  }

  const bool datagram = in.stage == Stage::kDatagram;
  switch (packet.kind) {
    case wire::Kind::kBadCluster:
      ++stats_.packets_in.bad_cluster;
      if (in.stage != Stage::kStreamReply && !(datagram && take_pending(pending_syns_, in.from))) {
        return drop(DropReason::kOutOfPlace);
      }
      return Outcome{};
    case wire::Kind::kSyn:
      return on_syn(in);
    case wire::Kind::kSynAck:
      return on_synack(owned, in);
    case wire::Kind::kAck:
      return on_ack(owned, in);
  }
  return drop(DropReason::kUnknownMessage);
}

Outcome Node::on_syn(const Inbound& in) {
  const wire::PacketView& packet = work_->packet;
  const bool datagram = in.stage == Stage::kDatagram;
  ++stats_.packets_in.syn;
  if (in.stage != Stage::kStreamOpen && !datagram) return drop(DropReason::kOutOfPlace);
  if (datagram && !datagram_syns_->admit(in.from, now_)) return drop(DropReason::kRateLimited);
  if (in.peer_names && in.peer_names->empty()) return drop(DropReason::kTlsNameless);
  if (in.peer_names && !names_a_digest_node(*in.peer_names, packet)) {
    return drop(DropReason::kTlsName);
  }
  if (packet.cluster_id != config_.cluster_id) {
    Outcome refused = drop(DropReason::kWrongCluster);
    refused.reply = Reply{make_bad_cluster(), false};
    return refused;
  }
  if (!read_extensions()) return drop(DropReason::kMalformed);
  report_heartbeats();
  learn_features();
  // Serving an exchange beats too, as Python aiocluster does (PROTOCOL.md
  // section 4 allows it): heartbeats then reach a node several times a
  // round, so the window outweighs the protocol's 5 s prior sooner and a
  // crash is seen sooner (README, "Interop with Python aiocluster 1.1.0").
  cluster_.self().increment_heartbeat();
  Outcome answered{Reply{make_synack(), true}, std::nullopt};
  if (datagram) add_pending(pending_synacks_, in.from);
  return answered;
}

Outcome Node::on_synack(Bytes* owned, const Inbound& in) {
  const bool datagram = in.stage == Stage::kDatagram;
  ++stats_.packets_in.synack;
  if (in.stage != Stage::kStreamReply && !(datagram && take_pending(pending_syns_, in.from))) {
    return drop(DropReason::kOutOfPlace);
  }
  if (work_->packet.cluster_id != config_.cluster_id) return drop(DropReason::kWrongCluster);
  if (!read_extensions()) return drop(DropReason::kMalformed);
  report_heartbeats();
  learn_features();
  apply_delta(owned);
  // The Ack leaves out what this delta showed its sender holds.
  PacketPaths::credit_delivered(cluster_, work_->packet, work_->seen);
  return Outcome{Reply{make_ack(), false}, std::nullopt};
}

Outcome Node::on_ack(Bytes* owned, const Inbound& in) {
  const bool datagram = in.stage == Stage::kDatagram;
  ++stats_.packets_in.ack;
  if (in.stage != Stage::kStreamAck && !(datagram && take_pending(pending_synacks_, in.from))) {
    return drop(DropReason::kOutOfPlace);
  }
  if (work_->packet.cluster_id != config_.cluster_id) return drop(DropReason::kWrongCluster);
  apply_delta(owned);
  return Outcome{};
}

std::uint64_t Node::features() const {
  return (config_.extensions.compact_digest ? compact::kCompactDigest : 0) |
         (config_.extensions.compact_digest && config_.extensions.aligned_digest ? compact::kAligned
                                                                                 : 0) |
         (config_.extensions.compression ? compression::kFeature : 0);
}

namespace {
compact::Announcement announcement(const Config& config, std::uint64_t features) {
  return compact::Announcement{features, config.node_id.gossip_advertise_addr,
                               config.node_id.generation_id};
}

// The PacketPb.extensions field, encoded at the first packet: what it says
// (our features, address and generation) never changes.
const Bytes& announcement_field(const Config& config, std::uint64_t features, Bytes& encoded) {
  if (encoded.empty()) compact::append_announcement(encoded, announcement(config, features));
  return encoded;
}
}  // namespace

// What every packet may take before the announcement is added.
std::size_t Node::payload_limit() const {
  if (features() == 0) return send_limit();
  const std::size_t size = announcement_field(config_, features(), scratch_->announcing).size();
  return send_limit() - std::min(size, send_limit());
}

// The bytes announced() appends: writers leave that room so that it
// appends in place.
std::size_t Node::announcement_room() const {
  return features() == 0 ? 0 : announcement_field(config_, features(), scratch_->announcing).size();
}

// What every packet may take before it is sealed. The envelope's bytes are
// kept free whatever the mode, so that a mode change never changes budgets.
std::size_t Node::send_limit() const {
  return config_.max_payload_size - (sealing() ? envelope::kOverhead : 0);
}

Bytes Node::sealed(Bytes packet) {
  if (!sealing() || !sealer_->seals()) return packet;
  ++stats_.packets_sealed;
  stats_.bytes_out += envelope::kOverhead;
  return sealer_->seal(packet, config_.cluster_id, now_);
}

void Node::install_key(const SealKey& key) {
  config_.sealing.keyring.install(key);
  keyring_changed();
}

void Node::make_primary_key(const SealKey& key) {
  config_.sealing.keyring.make_primary(key);
  keyring_changed();
}

bool Node::remove_key(const SealKey& key) {
  const bool removed = config_.sealing.keyring.remove(key);
  keyring_changed();
  return removed;
}

void Node::set_keyring(const Keyring& keyring) {
  if (keyring.empty()) {
    throw std::invalid_argument("an empty keyring: sealing cannot be turned off while running");
  }
  config_.sealing.keyring = keyring;
  keyring_changed();
}

void Node::set_seal_mode(SealMode mode) {
  config_.sealing.mode = mode;
  sealer_->set_mode(mode);
}

void Node::keyring_changed() { sealer_->set_keyring(config_.sealing.keyring); }

std::size_t Node::replay_senders() const { return sealer_->replay_senders(); }

void Node::share_workspace(const Node& other) {
  work_ = other.work_;
  cluster_.share_ids(work_->ids);
  cluster_.share_keys(work_->keys);
}

Bytes Node::announced(Bytes packet) const {
  if (features() == 0) return packet;
  const Bytes& field = announcement_field(config_, features(), scratch_->announcing);
  const std::size_t at = packet.size();
  if (at + field.size() > packet.capacity()) {
    packet = copy_of(packet, field.size());
  } else {
    packet.resize(at + field.size());
  }
  std::memcpy(packet.data() + at, field.data(), field.size());
  return packet;
}

// The extensions of a Syn or SynAck being handled: what its sender speaks
// (remembered for our next Syns to it), and its compact digest, read into
// the packet's digest. False when the compact digest is malformed.
bool Node::read_extensions() {
  wire::PacketView& packet = work_->packet;
  work_->peer_features = 0;
  work_->announced = false;
  work_->compact_read.speakers.clear();
  work_->compact_read.aligned_speakers.clear();
  work_->compact_read.salt = 0;
  work_->compact_hashes.salt = 0;  // another node's, or another state's
  scratch_->read_fingerprint.reset();
  if (features() == 0) return true;  // like a 1.1.0 peer: unknown fields are skipped
  if (!packet.extensions.empty()) {
    compact::Announcement& a = work_->announcement;
    if (compact::read_announcement(packet.extensions, a)) {
      work_->announced = true;
      work_->peer_features = a.features & features();
    } else {
      ++stats_.announcements_malformed;
    }
  }
  if (packet.compact_digest.empty()) return true;
  compact::ReadReport report;
  std::optional<std::uint64_t> ours;
  if ((features() & compact::kAligned) != 0) ours = fingerprint();
  if (!compact::read(cluster_, packet.compact_digest, config_.limits.max_nodes, packet,
                     {scratch_->compact_hashes, work_->compact_hashes}, ours ? &*ours : nullptr,
                     work_->compact_read, report)) {
    ++stats_.compact_digests_rejected;
    return false;
  }
  ++stats_.compact_digests_in;
  stats_.compact_entries_unresolved += report.unresolved;
  stats_.aligned_digests_in += report.aligned ? 1 : 0;
  stats_.aligned_digests_mismatched += report.mismatched ? 1 : 0;
  if (report.fingerprinted) {
    scratch_->read_fingerprint = report.fingerprint;
    scratch_->heard_fingerprint = report.fingerprint;
  }
  return true;
}

// After report_heartbeats, which adds the nodes a digest names: the sender
// lists itself first (PROTOCOL.md section 5), so its announcement is its own
// when that first entry has the address and generation it announced.
void Node::learn_features() {
  const wire::PacketView& packet = work_->packet;
  for (const NodeState* st : work_->compact_read.speakers) {
    features_of(*st) |= compact::kCompactDigest;
  }
  for (const NodeState* st : work_->compact_read.aligned_speakers) {
    features_of(*st) |= compact::kCompactDigest | compact::kAligned;
  }
  if (!work_->announced || packet.digest.empty() || features() == 0) return;
  const compact::Announcement& a = work_->announcement;
  const NodeState* sender = packet.digest.front().id.state;
  if (sender == nullptr || sender == &cluster_.self() ||
      sender->id().gossip_advertise_addr != a.advertise ||
      sender->id().generation_id != a.generation_id) {
    return;
  }
  features_of(*sender) = static_cast<std::uint8_t>(a.features & 0xff);
}

std::uint8_t& Node::features_of(const NodeState& st) {
  if (st.slot() >= features_by_slot_.size()) features_by_slot_.resize(st.slot() + 1);
  return features_by_slot_[st.slot()];
}

bool Node::speaks_compact(const NodeState* st) const { return speaks(st, compact::kCompactDigest); }

bool Node::speaks(const NodeState* st, std::uint64_t feature) const {
  return (features() & feature) != 0 && st != nullptr && st->slot() < features_by_slot_.size() &&
         (features_by_slot_[st->slot()] & feature) != 0;
}

void Node::handle_datagram_sent(const PeerKey& to) { add_pending(pending_syns_, to); }

bool Node::take_pending(Pending& pending, const PeerKey& from) {
  auto [it, end] = pending.equal_range(from);
  // The oldest message still within exchange_timeout is answered; the
  // expired ones go.
  while (it != end && it->second <= now_) it = pending.erase(it);
  if (it == end) return false;
  pending.erase(it);
  return true;
}

void Node::add_pending(Pending& pending, const PeerKey& to) {
  if (pending.size() >= config_.limits.max_pending_exchanges) {
    auto oldest =
        std::min_element(pending.begin(), pending.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; });
    pending.erase(oldest);
    ++stats_.exchanges_evicted;
  }
  pending.emplace(to, now_ + config_.exchange_timeout);
}

void Node::expire_pending() {
  for (auto* pending : {&pending_syns_, &pending_synacks_}) {
    std::erase_if(*pending, [&](const auto& entry) { return entry.second <= now_; });
  }
}

std::optional<Transmit> Node::poll_transmit() {
  if (transmits_head_ == transmits_.size()) return std::nullopt;
  Transmit tx = std::move(transmits_[transmits_head_++]);
  if (transmits_head_ == transmits_.size()) {
    transmits_.clear();
    transmits_head_ = 0;
  }
  return tx;
}

std::optional<Event> Node::poll_event() {
  if (events_head_ == events_.size()) return std::nullopt;
  Event ev = std::move(events_[events_head_++]);
  if (events_head_ == events_.size()) {
    events_.clear();
    events_head_ = 0;
    // A burst (joining a large cluster, a whole replica from one compressed
    // packet: thousands of events) leaves its room to the workspace, for the
    // next burst of any node sharing it, rather than in every node; the room
    // of an ordinary round stays, so rounds do not reallocate.
    if (events_.capacity() > kKeptEvents) {
      std::vector<Event>& room = work_->events_room;
      const std::size_t most = work_.use_count() > 1 ? kSharedRoomEvents : kRoomEvents;
      if (events_.capacity() > room.capacity() && events_.capacity() <= most) {
        events_.swap(room);
      }
      events_.shrink_to_fit();
    }
  }
  return ev;
}

namespace {
void check_user_input(std::string_view key, std::string_view value, const Config& config,
                      const NodeState& self) {
  const Limits& limits = config.limits;
  // Peers refuse a node with more keys than this: ours would stop spreading.
  if (!self.find(key) && self.size() >= limits.max_keys_per_node) {
    throw std::invalid_argument("a new key would exceed limits.max_keys_per_node");
  }
  if (key.size() > limits.max_key_size) {
    throw std::invalid_argument("key of " + std::to_string(key.size()) +
                                " bytes exceeds limits.max_key_size");
  }
  if (value.size() > limits.max_value_size) {
    throw std::invalid_argument("value of " + std::to_string(value.size()) +
                                " bytes exceeds limits.max_value_size");
  }
  // Protobuf refuses to parse a string field that is not UTF-8: one such key
  // would make every SynAck and Ack this node sends unreadable.
  if (!is_valid_utf8(key) || !is_valid_utf8(value)) {
    throw std::invalid_argument("key and value must be valid UTF-8");
  }
  // A key-value that no packet can carry would stall this node's replication
  // at its version for good: size the Ack carrying it alone, every version
  // field at its widest.
  using wire_size::length_delimited;
  constexpr std::size_t kVersionField = 1 + 10;
  const std::size_t kv = wire_size::key_value(key, value, UINT64_MAX, KeyStatus::kDeleteAfterTtl);
  const std::size_t node_delta =
      length_delimited(wire_size::node_id(self.id())) + 3 * kVersionField + length_delimited(kv);
  const std::size_t cluster =
      config.cluster_id.empty() ? 0 : length_delimited(config.cluster_id.size());
  const std::size_t packet =
      cluster + length_delimited(length_delimited(length_delimited(node_delta)));
  // Room is left for a sealed envelope, so that a key set now still travels
  // once a keyring is installed.
  if (packet + envelope::kOverhead > config.max_payload_size) {
    throw std::invalid_argument("key and value together exceed what max_payload_size can carry");
  }
}
}  // namespace

void Node::set(std::string_view key, std::string_view value) {
  check_user_input(key, value, config_, cluster_.self());
  if (auto change = cluster_.self().set(key, value, now_))
    emit_change(self_id(), std::move(*change));
}

void Node::remove(std::string_view key) {
  if (auto change = cluster_.self().remove(key, now_)) emit_change(self_id(), std::move(*change));
}

void Node::set_with_ttl(std::string_view key, std::string_view value) {
  check_user_input(key, value, config_, cluster_.self());
  if (auto change = cluster_.self().set_with_ttl(key, value, now_)) {
    emit_change(self_id(), std::move(*change));
  }
}

void Node::delete_after_ttl(std::string_view key) {
  if (auto change = cluster_.self().delete_after_ttl(key, now_)) {
    emit_change(self_id(), std::move(*change));
  }
}

std::optional<std::string> Node::get(std::string_view key) const {
  return cluster_.self().value(key);
}

std::vector<NodeId> Node::live_nodes() const {
  std::vector<NodeId> out;
  for (const auto& [id, st] : cluster_.nodes()) {
    if (&st == &cluster_.self() ||
        (st.slot() < liveness_.size() && liveness_[st.slot()].reported)) {
      out.push_back(id);
    }
  }
  return out;
}

std::vector<NodeId> Node::dead_nodes() const {
  std::vector<NodeId> out;
  for (const auto& [id, st] : cluster_.nodes()) {
    if (st.slot() < liveness_.size() && liveness_[st.slot()].dead) out.push_back(id);
  }
  return out;
}

bool Node::is_live(const NodeId& id) const {
  if (id == self_id()) return true;
  const Liveness* l = liveness_of(id);
  return l != nullptr && l->reported;
}

LiveSet Node::live_set() const {
  LiveSet out;
  for (const auto& [id, st] : cluster_.nodes()) {
    if (&st != &cluster_.self() &&
        (st.slot() >= liveness_.size() || !liveness_[st.slot()].reported)) {
      continue;
    }
    LiveMember member{id, {}};
    st.for_each([&](std::string_view key, const VersionedValue& vv) {
      if (vv.visible()) {
        member.key_values.emplace(std::string(key), vv.value);
      }
    });
    out.push_back(std::move(member));
  }
  return out;
}

const FailureDetectorConfig& Node::failure_detector() const { return detector_->config(); }

std::optional<double> Node::phi(const NodeId& id) const {
  const NodeState* st = cluster_.find(id);
  if (st == nullptr) return std::nullopt;
  return detector_->phi(st->slot(), now_);
}

ClusterSnapshot Node::snapshot() const {
  ClusterSnapshot snap;
  snap.self = self_id();
  snap.nodes.reserve(cluster_.size());
  for (const auto& [id, st] : cluster_.nodes()) {
    NodeSnapshot ns{id, st.heartbeat(), st.max_version(), st.last_gc_version(), is_live(id), {}};
    st.for_each([&](std::string_view key, const VersionedValue& vv) {
      ns.key_values.emplace(std::string(key), vv);
    });
    snap.nodes.push_back(std::move(ns));
  }
  return snap;
}

}  // namespace aiocluster
