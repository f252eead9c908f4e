#include "aiocluster/sim/simulator.h"

#include <algorithm>
#include <atomic>
#include <compare>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <variant>

#include "aiocluster/codec.h"
#include "aiocluster/exchange.h"
#include "aiocluster/framing.h"
#include "aiocluster/random.h"
#include "aiocluster/sim/trace_hash.h"
#include "workers.h"

namespace aiocluster::sim {

namespace {

std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Independent seeds for independent streams of draws, all from the run seed.
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b) {
  return mix64(seed + 0x9e3779b97f4a7c15ULL * (a + 1)) ^ mix64(b * 0xd1b54a32d192ed03ULL + a);
}

// Stream ids of the run's own generators (nodes use derive_seed(seed, slot + 16, incarnation)).
constexpr std::uint64_t kNetworkStream = 1;
constexpr std::uint64_t kScheduleStream = 2;
constexpr std::uint64_t kFirstNodeStream = 16;

// Tags mixed into the trace before each record, so records of different
// kinds never collide.
enum class Tag : std::uint64_t {
  kBoot = 1,
  kCrash,
  kPause,
  kResume,
  kTimer,
  kDeliver,
  kNoRoute,
  kBlocked,
  kLost,
  kDuplicate,
  kDown,
  kTimedOut,
  kOverflow,
  kCut,
  kEventJoined,
  kEventLeft,
  kEventKey,
  kPartition,
  kHeal,
  kAction,
  kLink,
  kFiltered,
  kEventReset,
  kClock,
};

enum class Kind : std::uint8_t { kBoot, kTimer, kDeliver, kResume, kAction };

struct Item {
  Instant at;
  std::uint64_t seq = 0;  // ties at one instant run in scheduling order
  Kind kind = Kind::kAction;
  NodeIndex slot = 0;
  std::uint64_t incarnation = 0;  // of `slot`, for boots, timers and resumes
  // Deliveries.
  NodeIndex from = 0;
  std::uint64_t stream = 0;   // 0: a datagram
  bool to_initiator = false;  // on a stream: which end receives it
  Bytes bytes;                // a datagram, or a whole frame
  // Timers: the deadline the node asked for (`at` is never in the past).
  Instant wanted;
  // Actions.
  std::uint64_t action = 0;
};

struct Later {
  bool operator()(const Item& a, const Item& b) const {
    return std::tie(a.at, a.seq) > std::tie(b.at, b.seq);
  }
};

enum class Health : std::uint8_t { kHealthy, kOnlyPaused, kFaulted };

struct Slot {
  Config config;  // generation_id as of the latest boot
  KeyValues initial;
  bool fixed_generation = false;  // the caller chose the first generation id
  std::unique_ptr<Node> node;
  std::uint64_t incarnation = 0;  // bumped at every boot and crash
  std::uint64_t boots = 0;
  bool crashed = false;
  std::optional<Instant> paused_until;
  std::vector<Item> held;        // arrived while paused
  std::optional<Instant> armed;  // the timer scheduled for this incarnation, by the node's clock
  Instant armed_at;              // when it fires, in true time
  NodeClock clock;
  Instant clock_set_at;  // true time
  // Healthy until a fault hits it; a node whose only faults were pauses is
  // told apart, to count the deaths it declares separately.
  Health health = Health::kHealthy;
  bool healthy() const { return health == Health::kHealthy; }
};

// One TCP connection carrying one exchange, an end on each node.
struct Stream {
  NodeIndex initiator = 0;
  NodeIndex responder = 0;
  std::uint64_t initiator_incarnation = 0;
  std::uint64_t responder_incarnation = 0;  // known once the first frame arrived
  Instant deadline;
  StreamExchange initiating;
  std::optional<StreamExchange> responding;  // from the first frame's arrival
};

struct Rule {
  std::vector<NodeIndex> a;
  std::vector<NodeIndex> b;
  bool one_way = false;
};

bool contains(const std::vector<NodeIndex>& sorted, NodeIndex i) {
  return std::binary_search(sorted.begin(), sorted.end(), i);
}

std::uint64_t nanos(Instant t) { return static_cast<std::uint64_t>(t.time_since_epoch().count()); }

// What a clock drifting by `ppm` gains over `elapsed`, in integer
// nanoseconds (split so that hours at 10^6 ppm cannot overflow).
Duration gain(Duration elapsed, std::int64_t ppm) {
  const auto e = elapsed.count();
  return Duration(e / 1'000'000 * ppm + e % 1'000'000 * ppm / 1'000'000);
}

}  // namespace

struct Simulator::State {
  explicit State(Options opts)
      : options(std::move(opts)),
        now(options.epoch),
        net(derive_seed(options.seed, kNetworkStream, 0)),
        schedule(derive_seed(options.seed, kScheduleStream, 0)),
        workspace_holders(options.threads > 1 ? options.threads * kGroupsPerThread : 1) {
    if (options.threads > 1) workers = std::make_unique<Workers>(options.threads);
  }

  Options options;
  Instant now;
  Rng net;       // every network draw
  Rng schedule;  // boot phases
  std::vector<Slot> slots;
  std::map<Address, NodeIndex> by_address;
  std::map<NodeId, NodeIndex> by_id;  // every incarnation that ever booted
  std::vector<Item> queue;            // a binary heap ordered by Later
  std::uint64_t seq = 0;
  std::map<std::pair<NodeIndex, NodeIndex>, LinkFaults> links;
  std::map<PartitionId, Rule> rules;
  PartitionId next_rule = 1;
  std::map<std::uint64_t, Stream> streams;
  std::uint64_t next_stream = 1;
  std::map<std::uint64_t, std::function<void(Simulator&)>> actions;
  std::uint64_t next_action = 1;
  std::vector<CrashReport> crashes;
  std::vector<std::size_t> undetected;  // indices into crashes
  Counters counters;
  TraceHash trace;
  std::vector<std::function<void(NodeIndex, const Event&)>> event_hooks;
  std::vector<std::function<void(NodeIndex)>> input_hooks;
  std::vector<std::function<bool(const Arrival&)>> filters;
  // The pair that failed the last convergence probe: usually still failing,
  // so checking it first keeps probes cheap on large clusters.
  mutable std::optional<std::pair<NodeIndex, NodeIndex>> last_unconverged;
  // By slot: the NodeLeft and ReplicaReset events its nodes emitted. An
  // observer's view only regresses with one: replicas only grow otherwise,
  // and a node seen live stays so until it leaves.
  std::vector<std::uint64_t> regressions;
  // By slot: 1 + regressions[slot] when a probe found the node converged,
  // against the running nodes and versions of `probed`: converged still
  // until one of them changes or it emits such an event. Near convergence
  // most observers are, and a probe of a large cluster walks only the others.
  mutable std::vector<std::uint64_t> converged_after;
  mutable std::vector<std::uint64_t> probed;  // slot, incarnation, max_version of each
  // By group of slots (slot % size()): a node up whose workspace (packet
  // views, plans, zstd contexts) every node of the group booted shares.
  // Each node's own would be sized by the membership, hundreds of bytes per
  // replica. A group runs on one thread at a time; with several threads,
  // several groups per thread even out their share of a batch.
  static constexpr std::size_t kGroupsPerThread = 4;
  std::vector<std::optional<NodeIndex>> workspace_holders;

  // --- Batches: node inputs handled at once (Options::threads > 1) ---
  // The digests of an event's strings in the trace (TraceHash::of), taken
  // on the worker with the event: added in their place, they leave the
  // trace as it was, and the serial part of a batch hashes no strings (a
  // cluster's first rounds raise tens of millions of key changes).
  struct EventDigests {
    std::uint64_t name = 0;
    std::uint64_t key = 0;    // key changes only
    std::uint64_t value = 0;  // key changes only
    static EventDigests of(const Event& ev) {
      EventDigests d;
      std::visit(
          [&](const auto& e) {
            d.name = TraceHash::of(e.node.name);
            if constexpr (std::is_same_v<std::decay_t<decltype(e)>, KeyChanged>) {
              d.key = TraceHash::of(e.key);
              d.value = TraceHash::of(e.new_value.value);
            }
          },
          ev);
      return d;
    }
  };
  struct TakenEvent {
    Event event;
    EventDigests digests;
  };
  struct Input {
    Item item;                 // a timer or a datagram
    std::uint64_t digest = 0;  // the datagram's, for the trace
    Outcome outcome;
    // The events its node raised, taken on the worker: events[begin, end)
    // of its group's buffer.
    const std::vector<TakenEvent>* events = nullptr;
    std::size_t events_begin = 0;
    std::size_t events_end = 0;
  };
  std::unique_ptr<Workers> workers;
  std::vector<Input> batch;
  std::vector<std::vector<std::size_t>> batch_groups;  // inputs by group, in order
  // By group, the events of its inputs. Taken on the workers: a cluster's
  // first rounds raise a key change per key-value a node learns (millions),
  // and each node hands its room for them back to the workspace it shares
  // with the next node of the group as soon as they are taken.
  std::vector<std::vector<TakenEvent>> batch_events;
  // The room a group keeps for the next batch (280 bytes an event): a
  // cold start's bursts are let go of, or they would stay for the whole run.
  static constexpr std::size_t kKeptBatchEvents = 256;
  std::vector<const std::vector<std::size_t>*> busy_groups;  // those with inputs
  std::vector<std::size_t> group_cost;  // by group: a guess at its inputs' time
  // A guess at an input's handling time, in bytes: a datagram's size, and a
  // round's timer (which writes digests) like a middling packet.
  static std::size_t cost(const Item& item) {
    return item.kind == Kind::kTimer ? 4096 : 512 + item.bytes.size();
  }
  // By slot: 1 + the input's index in the current batch, while its outcome
  // is still to be carried out (0 otherwise).
  std::vector<std::size_t> pending;
  // Of the crashes undetected when the batch started, whether each node of
  // the batch saw it live before its input (batch index x crash).
  std::vector<std::size_t> batch_crashes;
  std::vector<char> live_before;

  // --- Scheduling ---
  void push(Item item) {
    item.seq = seq++;
    queue.push_back(std::move(item));
    std::push_heap(queue.begin(), queue.end(), Later{});
  }

  Item pop() {
    std::pop_heap(queue.begin(), queue.end(), Later{});
    Item item = std::move(queue.back());
    queue.pop_back();
    return item;
  }

  void trace_record(Tag tag, std::uint64_t a = 0, std::uint64_t b = 0) {
    trace.add(static_cast<std::uint64_t>(tag));
    trace.add(nanos(now));
    trace.add(a);
    trace.add(b);
  }

  // --- Clocks ---
  // What the clock of slot `i` reads at true time `t`.
  Instant local(NodeIndex i, Instant t) const {
    const Slot& slot = slots[i];
    if (slot.clock.drift_ppm == 0) return t + slot.clock.offset;
    return t + slot.clock.offset + gain(t - slot.clock_set_at, slot.clock.drift_ppm);
  }
  Instant local_now(NodeIndex i) const { return local(i, now); }

  // The earliest true time, not before now, at which the clock of slot `i`
  // reads `when`: a guess from the rate, then exact by the integer clock.
  Instant true_time(NodeIndex i, Instant when) const {
    const Instant local_at_now = local_now(i);
    if (local_at_now >= when) return now;
    const std::int64_t ppm = slots[i].clock.drift_ppm;
    if (ppm == 0) return now + (when - local_at_now);
    const double rate = 1.0 + static_cast<double>(ppm) / 1e6;
    const auto ahead = static_cast<double>((when - local_at_now).count());
    Instant t = now + Duration(static_cast<Duration::rep>(ahead / rate));
    while (local(i, t) < when) t += Duration(1);
    while (t > now && local(i, t - Duration(1)) >= when) t -= Duration(1);
    return t;
  }

  bool is_up(NodeIndex i) const { return slots[i].node != nullptr; }
  bool is_running(NodeIndex i) const { return is_up(i) && !slots[i].paused_until; }
  const Address& address(NodeIndex i) const {
    return slots[i].config.node_id.gossip_advertise_addr;
  }

  // --- Network ---
  const LinkFaults& link(NodeIndex from, NodeIndex to) const {
    if (links.empty()) return options.network;
    const auto it = links.find({from, to});
    return it == links.end() ? options.network : it->second;
  }

  bool blocked(NodeIndex from, NodeIndex to) const {
    for (const auto& [id, rule] : rules) {
      if (contains(rule.a, from) && contains(rule.b, to)) return true;
      if (!rule.one_way && contains(rule.b, from) && contains(rule.a, to)) return true;
    }
    return false;
  }

  Duration draw(const Latency& latency) {
    auto lo = latency.min.count();
    auto hi = latency.max.count();
    if (hi < lo) std::swap(lo, hi);
    if (lo < 0) lo = 0;
    if (hi < lo) hi = lo;
    auto d = lo + static_cast<Duration::rep>(net.below(static_cast<std::uint64_t>(hi - lo) + 1));
    if (latency.spike_probability > 0 && latency.spike_max.count() > hi &&
        net.chance(latency.spike_probability)) {
      d = hi + static_cast<Duration::rep>(
                   net.below(static_cast<std::uint64_t>(latency.spike_max.count() - hi) + 1));
    }
    return Duration(d);
  }

  // A packet of `size` bytes (without framing) handed to the network.
  void account(NodeIndex from, std::size_t size) {
    ++counters.messages;
    counters.bytes += size;
    counters.max_packet_bytes = std::max<std::uint64_t>(counters.max_packet_bytes, size);
    if (size > slots[from].config.max_payload_size) ++counters.oversized_packets;
  }

  void send_datagram(NodeIndex from, const Address& to_addr, Bytes bytes) {
    account(from, bytes.size());
    const auto it = by_address.find(to_addr);
    if (it == by_address.end()) {
      ++counters.undeliverable;
      trace_record(Tag::kNoRoute, from, to_addr.port);
      return;
    }
    const NodeIndex to = it->second;
    if (blocked(from, to)) {
      ++counters.blocked;
      trace_record(Tag::kBlocked, from, to);
      return;
    }
    const LinkFaults& faults = link(from, to);
    if (faults.loss > 0 && net.chance(faults.loss)) {
      ++counters.lost;
      trace_record(Tag::kLost, from, to);
      return;
    }
    if (faults.duplicate > 0 && net.chance(faults.duplicate)) {
      ++counters.duplicated;
      trace_record(Tag::kDuplicate, from, to);
      Item copy;
      copy.at = now + draw(faults.latency);
      copy.kind = Kind::kDeliver;
      copy.slot = to;
      copy.from = from;
      copy.bytes = bytes;
      push(std::move(copy));
    }
    Item item;
    item.at = now + draw(faults.latency);
    item.kind = Kind::kDeliver;
    item.slot = to;
    item.from = from;
    item.bytes = std::move(bytes);
    push(std::move(item));
  }

  void end_stream(std::uint64_t id) { streams.erase(id); }

  // Carries one frame of stream `id` from `sender` to `receiver`, after
  // `extra` (the connection handshake, for the first frame).
  void send_on_stream(std::uint64_t id, NodeIndex sender, NodeIndex receiver, Bytes frame,
                      Duration extra) {
    account(sender, frame.size() - kFrameHeaderSize);
    if (blocked(sender, receiver)) {
      ++counters.blocked;
      ++counters.streams_cut;
      trace_record(Tag::kBlocked, sender, receiver);
      end_stream(id);
      return;
    }
    const LinkFaults& faults = link(sender, receiver);
    if (faults.loss > 0 && net.chance(faults.loss)) {
      ++counters.lost;
      ++counters.streams_cut;
      trace_record(Tag::kCut, sender, receiver);
      end_stream(id);
      return;
    }
    Item item;
    item.at = now + extra + draw(faults.latency);
    item.kind = Kind::kDeliver;
    item.slot = receiver;
    item.from = sender;
    item.stream = id;
    item.to_initiator = receiver == streams.at(id).initiator;
    item.bytes = std::move(frame);
    push(std::move(item));
  }

  void open_stream(NodeIndex from, const Address& to_addr, Bytes syn) {
    StreamExchange initiating = StreamExchange::initiate(std::move(syn));
    Bytes frame = encode_frame(initiating.next().packet);
    ++counters.streams_opened;
    const auto it = by_address.find(to_addr);
    if (it == by_address.end()) {
      account(from, frame.size() - kFrameHeaderSize);
      ++counters.undeliverable;  // connection refused
      trace_record(Tag::kNoRoute, from, to_addr.port);
      return;
    }
    const NodeIndex to = it->second;
    const std::uint64_t id = next_stream++;
    streams.emplace(id, Stream{from, to, slots[from].incarnation, 0, now + options.stream_timeout,
                               std::move(initiating), std::nullopt});
    // Connecting costs a round trip before the Syn travels.
    const Duration handshake = draw(link(from, to).latency) + draw(link(to, from).latency);
    send_on_stream(id, from, to, std::move(frame), handshake);
  }

  // --- Nodes ---
  void boot(NodeIndex i) {
    Slot& slot = slots[i];
    ++slot.incarnation;
    ++slot.boots;
    slot.crashed = false;
    slot.paused_until.reset();
    slot.held.clear();
    slot.armed.reset();
    std::uint64_t& generation = slot.config.node_id.generation_id;
    if (slot.boots > 1 || !slot.fixed_generation) {
      // Like a monotonic nanosecond clock read at start; strictly newer.
      generation = std::max(nanos(local_now(i)), generation + 1);
    }
    slot.node = std::make_unique<Node>(
        slot.config, local_now(i),
        derive_seed(options.seed, kFirstNodeStream + i, slot.incarnation), slot.initial);
    std::optional<NodeIndex>& holder = workspace_holders[i % workspace_holders.size()];
    if (holder && is_up(*holder)) {
      slot.node->share_workspace(*slots[*holder].node);
    } else {
      holder = i;
    }
    by_id[slot.config.node_id] = i;
    trace_record(Tag::kBoot, i, generation);
    slot.node->handle_timeout(local_now(i));
    drain(i);
  }

  // `taken`: events the node raised before, taken from it already.
  void drain(NodeIndex i, std::span<const TakenEvent> taken = {}) {
    Slot& slot = slots[i];
    Node& node = *slot.node;
    while (auto tx = node.poll_transmit()) {
      if (options.transport == Transport::kUdp) {
        node.handle_datagram_sent(PeerKey::of(tx->to));
        send_datagram(i, tx->to, std::move(tx->payload));
      } else {
        open_stream(i, tx->to, std::move(tx->payload));
      }
    }
    arm(i);
    for (const TakenEvent& t : taken) on_event(i, t.event, &t.digests);
    while (auto ev = node.poll_event()) on_event(i, *ev);
    for (const auto& hook : input_hooks) hook(i);
  }

  // Schedules the node's timer at the true time its clock reaches the
  // deadline it asked for, unless that timer is already scheduled.
  void arm(NodeIndex i) {
    Slot& slot = slots[i];
    const auto t = slot.node->poll_timeout();
    if (!t || t == slot.armed) return;
    slot.armed = t;
    slot.armed_at = true_time(i, *t);
    Item timer;
    timer.at = slot.armed_at;
    timer.wanted = *t;
    timer.kind = Kind::kTimer;
    timer.slot = i;
    timer.incarnation = slot.incarnation;
    push(std::move(timer));
  }

  // `digests`: the event's, when taken on a worker.
  void on_event(NodeIndex observer, const Event& ev, const EventDigests* digests = nullptr) {
    ++counters.events;
    const EventDigests d = digests != nullptr ? *digests : EventDigests::of(ev);
    std::visit(
        [&](const auto& e) {
          using T = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<T, NodeJoined>) {
            trace_record(Tag::kEventJoined, observer, e.node.generation_id);
            trace.add(d.name);
          } else if constexpr (std::is_same_v<T, NodeLeft>) {
            trace_record(Tag::kEventLeft, observer, e.node.generation_id);
            trace.add(d.name);
          } else if constexpr (std::is_same_v<T, ReplicaReset>) {
            trace_record(Tag::kEventReset, observer, e.node.generation_id);
            trace.add(d.name);
          } else {
            trace_record(Tag::kEventKey, observer, e.node.generation_id);
            trace.add(d.name);
            trace.add(d.key);
            trace.add(d.value);
            trace.add(e.new_value.version);
            trace.add(static_cast<std::uint64_t>(e.new_value.status));
          }
        },
        ev);
    if (std::holds_alternative<NodeLeft>(ev) || std::holds_alternative<ReplicaReset>(ev)) {
      if (regressions.size() <= observer) regressions.resize(slots.size(), 0);
      ++regressions[observer];
    }
    for (const auto& hook : event_hooks) hook(observer, ev);
    if (const auto* left = std::get_if<NodeLeft>(&ev)) {
      const auto it = by_id.find(left->node);
      if (it != by_id.end()) {
        const Slot& subject = slots[it->second];
        if (subject.healthy() && subject.node != nullptr && subject.config.node_id == left->node) {
          if (slots[observer].healthy()) ++counters.false_deaths;
          if (slots[observer].health == Health::kOnlyPaused) ++counters.false_deaths_by_paused;
        }
      }
      update_detections(&left->node);
    }
  }

  bool seen_dead_by_all(const NodeId& id) const {
    for (NodeIndex i = 0; i < slots.size(); ++i) {
      if (!is_running(i) || slots[i].node->self_id() == id) continue;
      if (live_as_of_now(i, id)) return false;
    }
    return true;
  }

  // Whether node `i` sees `id` live at this point of the run: a node of the
  // batch whose outcome is still to be carried out has handled its input
  // ahead of it, and is asked as it was before.
  bool live_as_of_now(NodeIndex i, const NodeId& id) const {
    if (i < pending.size() && pending[i] != 0) {
      for (std::size_t c = 0; c < batch_crashes.size(); ++c) {
        if (crashes[batch_crashes[c]].id == id) {
          return live_before[(pending[i] - 1) * batch_crashes.size() + c] != 0;
        }
      }
    }
    return slots[i].node->is_live(id);
  }

  // Records the crashes every survivor now sees dead (only those of `id`
  // when given: the others did not change).
  void update_detections(const NodeId* id = nullptr) {
    std::erase_if(undetected, [&](std::size_t c) {
      if (id != nullptr && crashes[c].id != *id) return false;
      if (!seen_dead_by_all(crashes[c].id)) return false;
      crashes[c].detected_at = now;
      return true;
    });
  }

  // A packet reaches slot `item.slot` (now, or on resume when it was held).
  void receive(Item item) {
    const NodeIndex to = item.slot;
    Slot& slot = slots[to];
    if (!is_up(to)) {
      ++counters.undeliverable;
      trace_record(Tag::kDown, item.from, to);
      if (item.stream != 0) end_stream(item.stream);
      return;
    }
    if (slot.paused_until) {
      if (slot.held.size() >= options.pause_buffer) {
        ++counters.overflowed;
        trace_record(Tag::kOverflow, item.from, to);
        if (item.stream != 0) end_stream(item.stream);
        return;
      }
      slot.held.push_back(std::move(item));
      return;
    }
    if (item.stream == 0 ? deliver_datagram(item) : deliver_frame(item)) drain(to);
  }

  void note_delivery(NodeIndex from, NodeIndex to, Stage stage, std::uint64_t digest) {
    ++counters.delivered;
    trace_record(Tag::kDeliver, from, to);
    trace.add(static_cast<std::uint64_t>(stage));
    trace.add(digest);
  }

  // False when a packet filter drops it.
  bool passes_filters(NodeIndex from, NodeIndex to, ByteView payload) {
    if (filters.empty()) return true;
    const Arrival arrival{from, to, kind_of(payload), payload};
    for (const auto& filter : filters) {
      if (filter(arrival)) continue;
      ++counters.filtered;
      trace_record(Tag::kFiltered, from, to);
      return false;
    }
    return true;
  }

  static MessageKind kind_of(ByteView payload) {
    // A compressed packet is classified by what it holds.
    const std::optional<Bytes> plain = decompress(payload);
    const DecodeResult decoded = decode(plain ? ByteView(*plain) : payload);
    const auto* packet = std::get_if<Packet>(&decoded);
    return packet == nullptr ? MessageKind::kUnreadable
                             : static_cast<MessageKind>(packet->message.index());
  }

  bool deliver_datagram(Item& item) {
    const NodeIndex to = item.slot;
    const NodeIndex from = item.from;
    if (!passes_filters(from, to, item.bytes)) return false;
    note_delivery(from, to, Stage::kDatagram, TraceHash::of(item.bytes));
    Outcome outcome =
        slots[to].node->handle_packet(std::move(item.bytes), local_now(to),
                                      Inbound{Stage::kDatagram, PeerKey::of(address(from))});
    // A datagram reply goes to the source address, whoever holds it now.
    if (outcome.reply) send_datagram(to, address(from), std::move(outcome.reply->payload));
    return true;
  }

  // A frame reaches one end of its stream, whose exchange handles it and
  // says what follows: a frame back, or the end of the connection.
  bool deliver_frame(Item& item) {
    const NodeIndex to = item.slot;
    Slot& slot = slots[to];
    const auto it = streams.find(item.stream);
    if (it == streams.end()) {
      ++counters.undeliverable;
      trace_record(Tag::kDown, item.from, to);
      return false;
    }
    Stream& stream = it->second;
    if (!item.to_initiator && !stream.responding) {
      stream.responder_incarnation = slot.incarnation;
      stream.responding = StreamExchange::respond();
    }
    const std::uint64_t expected =
        item.to_initiator ? stream.initiator_incarnation : stream.responder_incarnation;
    if (slot.incarnation != expected) {
      ++counters.undeliverable;  // the endpoint restarted: the connection was reset
      trace_record(Tag::kDown, item.from, to);
      end_stream(item.stream);
      return false;
    }
    if (now > stream.deadline) {
      ++counters.timed_out;
      trace_record(Tag::kTimedOut, item.from, to);
      end_stream(item.stream);
      return false;
    }
    FrameDecoder decoder(slot.config.max_inbound_payload_size);
    decoder.feed(item.bytes);
    std::optional<Bytes> frame = decoder.next_frame();
    if (!frame) {
      ++counters.undeliverable;  // a frame the receiver refuses closes the connection
      trace_record(Tag::kDown, item.from, to);
      end_stream(item.stream);
      return false;
    }
    if (!passes_filters(item.from, to, *frame)) {
      end_stream(item.stream);
      return false;
    }
    StreamExchange& end = item.to_initiator ? stream.initiating : *stream.responding;
    note_delivery(item.from, to, end.stage(), TraceHash::of(*frame));
    end.on_frame(*slot.node, std::move(*frame), local_now(to));
    StreamExchange::Step step = end.next();
    if (step.action == StreamExchange::Action::kWrite) {
      send_on_stream(item.stream, to, item.from, encode_frame(step.packet), Duration::zero());
    } else {
      end_stream(item.stream);  // the exchange is over
    }
    return true;
  }

  // Whether a timer still stands: a later one replaces it, and resume runs
  // the timer of a paused node.
  bool timer_due(const Item& item) const {
    const Slot& slot = slots[item.slot];
    return slot.incarnation == item.incarnation && slot.node && slot.armed == item.wanted &&
           slot.armed_at == item.at && !slot.paused_until;
  }

  void timer(const Item& item) {
    if (!timer_due(item)) return;
    Slot& slot = slots[item.slot];
    slot.armed.reset();
    trace_record(Tag::kTimer, item.slot, 0);
    slot.node->handle_timeout(local_now(item.slot));
    drain(item.slot);
  }

  void resume(const Item& item) {
    Slot& slot = slots[item.slot];
    if (slot.incarnation != item.incarnation || !slot.node || slot.paused_until != item.at) return;
    slot.paused_until.reset();
    trace_record(Tag::kResume, item.slot, 0);
    std::vector<Item> held = std::move(slot.held);
    slot.held.clear();
    for (Item& h : held) {
      if (!is_running(item.slot)) break;  // a hook may have crashed it
      receive(std::move(h));
    }
    if (!is_running(item.slot)) return;
    slot.armed.reset();
    slot.node->handle_timeout(local_now(item.slot));
    drain(item.slot);
  }

  // --- Batches ---
  // The earliest a packet sent at t arrives, less t: inputs of different
  // nodes closer in time than this cannot cause one another.
  static Duration fastest(const Latency& latency) {
    Duration lo = std::min(latency.min, latency.max);
    return std::max(lo, Duration::zero());
  }
  Duration lookahead() const {
    Duration least = fastest(options.network.latency);
    for (const auto& [link, faults] : links) least = std::min(least, fastest(faults.latency));
    return least;
  }

  // Handles, as a batch, the inputs due by `deadline` from the next one on
  // that cannot affect one another: timers and datagrams of running nodes,
  // one per node, within lookahead() of the first. False when the next
  // thing scheduled is not such an input (step() handles it).
  bool run_batch(Instant deadline) {
    if (!workers || !filters.empty() || !input_hooks.empty()) return false;
    if (pending.size() < slots.size()) pending.resize(slots.size(), 0);
    const Instant first = queue.front().at;
    const Duration ahead = lookahead();
    Instant latest = now;
    bool popped = false;
    batch.clear();
    while (!queue.empty()) {
      const Item& next = queue.front();
      if (next.at > deadline || (next.at != first && next.at - first >= ahead) ||
          pending[next.slot] != 0) {
        break;
      }
      if (next.kind == Kind::kTimer && !timer_due(next)) {
        latest = std::max(latest, next.at);
        pop();  // replaced, or its node paused: nothing happens
        popped = true;
        continue;
      }
      const bool datagram = next.kind == Kind::kDeliver && next.stream == 0;
      if (!(next.kind == Kind::kTimer || (datagram && is_running(next.slot)))) break;
      pending[next.slot] = batch.size() + 1;
      batch.push_back(Input{pop(), 0, Outcome{}});
    }
    if (batch.empty()) {
      now = std::max(now, latest);
      return popped;
    }
    if (batch.size() > 1) counters.batched_inputs += batch.size();
    snapshot_liveness();
    handle_batch();
    for (Input& in : batch) {
      // Timers scheduled by the batch's own outcomes ahead of this input
      // run first, as they would one input at a time.
      while (!queue.empty() && Later{}(in.item, queue.front())) run_interloper();
      now = std::max(now, in.item.at);
      pending[in.item.slot] = 0;
      finish(in);
    }
    now = std::max(now, latest);
    return true;
  }

  // What each node of the batch sees of the undetected crashes, before its
  // input (update_detections asks it so until its outcome is carried out).
  void snapshot_liveness() {
    batch_crashes = undetected;
    live_before.assign(batch.size() * batch_crashes.size(), 0);
    for (std::size_t b = 0; b < batch.size(); ++b) {
      const Node& node = *slots[batch[b].item.slot].node;
      for (std::size_t c = 0; c < batch_crashes.size(); ++c) {
        live_before[b * batch_crashes.size() + c] = node.is_live(crashes[batch_crashes[c]].id);
      }
    }
  }

  // The nodes' part of each input, by group of workspace on the workers.
  void handle_batch() {
    batch_groups.resize(workspace_holders.size());
    for (auto& group : batch_groups) group.clear();
    busy_groups.clear();
    group_cost.assign(batch_groups.size(), 0);
    for (std::size_t b = 0; b < batch.size(); ++b) {
      const std::size_t g = batch[b].item.slot % batch_groups.size();
      auto& group = batch_groups[g];
      if (group.empty()) busy_groups.push_back(&group);
      group.push_back(b);
      group_cost[g] += cost(batch[b].item);
    }
    // The costliest groups first, so that the last ones taken, which the
    // other threads may wait on, are short.
    std::sort(busy_groups.begin(), busy_groups.end(), [&](const auto* a, const auto* b) {
      return group_cost[static_cast<std::size_t>(a - batch_groups.data())] >
             group_cost[static_cast<std::size_t>(b - batch_groups.data())];
    });
    batch_events.resize(batch_groups.size());
    workers->run(busy_groups.size(), [this](std::size_t g) {
      const auto group = static_cast<std::size_t>(busy_groups[g] - batch_groups.data());
      std::vector<TakenEvent>& events = batch_events[group];
      if (events.capacity() > kKeptBatchEvents) {
        std::vector<TakenEvent>().swap(events);
      } else {
        events.clear();
      }
      for (std::size_t b : *busy_groups[g]) {
        Input& in = batch[b];
        handle(in);
        in.events = &events;
        in.events_begin = events.size();
        Node& node = *slots[in.item.slot].node;
        while (auto ev = node.poll_event()) {
          const EventDigests digests = EventDigests::of(*ev);
          events.push_back(TakenEvent{std::move(*ev), digests});
        }
        in.events_end = events.size();
      }
    });
  }

  // Reads nothing another input of the batch writes: its node, the slots'
  // clocks and addresses.
  void handle(Input& in) {
    const NodeIndex i = in.item.slot;
    Node& node = *slots[i].node;
    const Instant local_at = local(i, in.item.at);
    if (in.item.kind == Kind::kTimer) {
      node.handle_timeout(local_at);
      return;
    }
    in.digest = TraceHash::of(in.item.bytes);
    in.outcome = node.handle_packet(std::move(in.item.bytes), local_at,
                                    Inbound{Stage::kDatagram, PeerKey::of(address(in.item.from))});
  }

  // The rest of an input, as timer() and deliver_datagram() do it.
  void finish(Input& in) {
    const NodeIndex i = in.item.slot;
    if (in.item.kind == Kind::kTimer) {
      slots[i].armed.reset();
      trace_record(Tag::kTimer, i, 0);
    } else {
      note_delivery(in.item.from, i, Stage::kDatagram, in.digest);
      if (in.outcome.reply)
        send_datagram(i, address(in.item.from), std::move(in.outcome.reply->payload));
    }
    std::span<const TakenEvent> taken;
    if (in.events != nullptr)
      taken = std::span(*in.events).subspan(in.events_begin, in.events_end - in.events_begin);
    drain(i, taken);
  }

  // Something the batch's outcomes scheduled ahead of one of its inputs:
  // only a timer of a node whose outcome was carried out can be (packets
  // take at least lookahead()); anything else means a hook changed the run.
  void run_interloper() {
    Item item = pop();
    if (item.kind != Kind::kTimer || pending[item.slot] != 0) {
      throw std::logic_error(
          "Simulator: an event hook scheduled or changed something with Options::threads > 1");
    }
    now = std::max(now, item.at);
    timer(item);
  }

  void crash(NodeIndex i) {
    Slot& slot = slots[i];
    if (!slot.node) {
      if (!slot.crashed) {  // not booted yet: cancel the boot
        slot.crashed = true;
        ++slot.incarnation;
        slot.health = Health::kFaulted;
      }
      return;
    }
    crashes.push_back(CrashReport{i, slot.node->self_id(), now, std::nullopt});
    undetected.push_back(crashes.size() - 1);
    trace_record(Tag::kCrash, i, slot.config.node_id.generation_id);
    slot.node.reset();
    slot.crashed = true;
    ++slot.incarnation;
    slot.paused_until.reset();
    slot.held.clear();
    slot.armed.reset();
    slot.health = Health::kFaulted;
    update_detections();
  }

  bool pair_converged(NodeIndex observer, NodeIndex subject) const {
    const Node& o = *slots[observer].node;
    const Node& s = *slots[subject].node;
    const NodeState* replica = o.node_state(s.self_id());
    return replica != nullptr && replica->max_version() == s.cluster_state().self().max_version() &&
           o.is_live(s.self_id());
  }

  struct Expected {
    const NodeId* id;
    std::uint64_t max_version;
    NodeIndex slot;
  };

  // Whether `observer` sees every expected node live with its max_version;
  // walks its known nodes and live set alongside `expected` (in id order),
  // so a thousand-node check costs no searches. Sets `failed` otherwise.
  bool observer_converged(NodeIndex observer, const std::vector<Expected>& expected,
                          NodeIndex& failed) const {
    const Node& node = *slots[observer].node;
    const ClusterState& known = node.cluster_state();
    std::size_t k = 0;
    for (const Expected& e : expected) {
      if (e.slot == observer) continue;
      failed = e.slot;
      // Ids compared in place: decoding a thousand per observer is most of
      // what a probe would cost.
      auto order = std::strong_ordering::less;
      for (; k < known.size(); ++k) {
        order = known.at(k).compare_id(*e.id);
        if (order >= 0) break;
      }
      if (order != 0) return false;
      const NodeState& st = known.at(k);
      if (st.max_version() != e.max_version || !node.is_live(st)) return false;
    }
    return true;
  }

  bool converged() const {
    std::vector<Expected> expected;
    std::vector<std::uint64_t> probing;
    for (NodeIndex i = 0; i < slots.size(); ++i) {
      if (!slots[i].node && !slots[i].crashed) return false;  // still to boot
      if (!is_running(i)) continue;
      const Node& node = *slots[i].node;
      expected.push_back({&node.self_id(), node.cluster_state().self().max_version(), i});
      probing.insert(probing.end(), {i, slots[i].incarnation, expected.back().max_version});
    }
    if (probing != probed) {
      probed = std::move(probing);
      converged_after.assign(slots.size(), 0);
    }
    // The pair that failed last time usually still fails: a cheap first test.
    if (last_unconverged) {
      const auto [o, s] = *last_unconverged;
      if (is_running(o) && is_running(s) && !pair_converged(o, s)) return false;
    }
    std::sort(expected.begin(), expected.end(),
              [](const Expected& a, const Expected& b) { return *a.id < *b.id; });
    // Start with the observer that failed last time, then go round.
    const std::size_t n = expected.size();
    std::size_t first = 0;
    if (last_unconverged) {
      for (std::size_t i = 0; i < n; ++i) {
        if (expected[i].slot == last_unconverged->first) first = i;
      }
    }
    std::vector<NodeIndex> observers;  // to check, in this order
    for (std::size_t step = 0; step < n; ++step) {
      const NodeIndex observer = expected[(first + step) % n].slot;
      if (converged_after[observer] != regressions_of(observer) + 1) observers.push_back(observer);
    }
    const auto [checked, failed] = first_unconverged(observers, expected);
    for (std::size_t i = 0; i < checked; ++i) {
      converged_after[observers[i]] = regressions_of(observers[i]) + 1;
    }
    if (checked < observers.size()) {
      last_unconverged = {observers[checked], failed};
      return false;
    }
    last_unconverged.reset();
    return true;
  }

  std::uint64_t regressions_of(NodeIndex observer) const {
    return observer < regressions.size() ? regressions[observer] : 0;
  }

  // The position in `observers` of the first one not converged (their
  // number if none) and the node it failed on. A probe that finds the
  // cluster converged walks every observer's view: 10^8 replicas at 10,000
  // nodes, so the walks go to the workers, a run of observers each. Runs
  // after one that failed are skipped, not needed: the answer is the one a
  // walk in order gives.
  std::pair<std::size_t, NodeIndex> first_unconverged(const std::vector<NodeIndex>& observers,
                                                      const std::vector<Expected>& expected) const {
    constexpr std::size_t kRun = 16;
    const std::size_t runs = (observers.size() + kRun - 1) / kRun;
    std::atomic<std::size_t> first_failed{runs};
    std::vector<std::pair<std::size_t, NodeIndex>> failures(runs);
    auto check = [&](std::size_t run) {
      if (first_failed.load(std::memory_order_relaxed) < run) return;
      const std::size_t end = std::min(observers.size(), (run + 1) * kRun);
      for (std::size_t i = run * kRun; i < end; ++i) {
        NodeIndex failed = observers[i];
        if (observer_converged(observers[i], expected, failed)) continue;
        failures[run] = {i, failed};
        std::size_t seen = first_failed.load(std::memory_order_relaxed);
        while (run < seen && !first_failed.compare_exchange_weak(seen, run)) {
        }
        return;
      }
    };
    if (workers && runs > 1) {
      workers->run(runs, check);
    } else {
      for (std::size_t run = 0; run < runs && first_failed.load() == runs; ++run) check(run);
    }
    const std::size_t failed_run = first_failed.load();
    if (failed_run == runs) return {observers.size(), 0};
    return failures[failed_run];
  }
};

Simulator::Simulator(Options options) : s_(std::make_unique<State>(std::move(options))) {}
Simulator::~Simulator() = default;
Simulator::Simulator(Simulator&&) noexcept = default;
Simulator& Simulator::operator=(Simulator&&) noexcept = default;

Address Simulator::address_of(NodeIndex index) {
  const std::size_t n = index + 1;
  return Address{"10." + std::to_string((n >> 16) & 255) + "." + std::to_string((n >> 8) & 255) +
                     "." + std::to_string(n & 255),
                 7946};
}

Config Simulator::make_config(NodeIndex index, std::span<const NodeIndex> seeds) {
  Config config;
  config.cluster_id = "sim";
  config.node_id = NodeId{"node-" + std::to_string(index), 0, address_of(index), ""};
  for (NodeIndex s : seeds) config.seeds.push_back(address_of(s));
  return config;
}

NodeIndex Simulator::add_node(Config config, KeyValues initial_key_values) {
  // A generation of 0 is the simulator's to fill in at boot (its own rule).
  Config probe = config;
  if (probe.node_id.generation_id == 0) probe.node_id.generation_id = 1;
  if (auto error = probe.validate()) throw ConfigError(*error);
  const Address addr = config.node_id.gossip_advertise_addr;
  if (s_->by_address.contains(addr)) {
    throw std::invalid_argument("add_node: address " + addr.to_string() + " is taken");
  }
  const NodeIndex i = s_->slots.size();
  Slot slot;
  slot.fixed_generation = config.node_id.generation_id != 0;
  slot.config = std::move(config);
  slot.initial = std::move(initial_key_values);
  s_->slots.push_back(std::move(slot));
  s_->by_address.emplace(addr, i);
  Item boot;
  const auto jitter = s_->options.boot_jitter.count();
  boot.at = s_->now + Duration(jitter > 0 ? static_cast<Duration::rep>(s_->schedule.below(
                                                static_cast<std::uint64_t>(jitter)))
                                          : 0);
  boot.kind = Kind::kBoot;
  boot.slot = i;
  boot.incarnation = 0;
  s_->push(std::move(boot));
  return i;
}

std::size_t Simulator::size() const { return s_->slots.size(); }
Instant Simulator::epoch() const { return s_->options.epoch; }
Instant Simulator::now() const { return s_->now; }

bool Simulator::step() {
  if (s_->queue.empty()) return false;
  Item item = s_->pop();
  if (item.at > s_->now) s_->now = item.at;
  switch (item.kind) {
    case Kind::kBoot: {
      Slot& slot = s_->slots[item.slot];
      if (slot.incarnation == item.incarnation && !slot.node && !slot.crashed) s_->boot(item.slot);
      break;
    }
    case Kind::kTimer:
      s_->timer(item);
      break;
    case Kind::kDeliver:
      s_->receive(std::move(item));
      break;
    case Kind::kResume:
      s_->resume(item);
      break;
    case Kind::kAction: {
      auto node = s_->actions.extract(item.action);
      s_->trace_record(Tag::kAction, item.action, 0);
      node.mapped()(*this);
      break;
    }
  }
  return true;
}

void Simulator::run_until(Instant deadline) {
  while (!s_->queue.empty() && s_->queue.front().at <= deadline) {
    if (!s_->run_batch(deadline)) step();
  }
  if (deadline > s_->now) s_->now = deadline;
}

std::optional<Instant> Simulator::run_until_converged(Instant deadline, Duration probe) {
  if (probe <= Duration::zero())
    throw std::invalid_argument("run_until_converged: probe must be positive");
  for (Instant t = now() + probe;; t += probe) {
    run_until(std::min(t, deadline));
    if (converged()) return now();
    if (t >= deadline) return std::nullopt;
  }
}

void Simulator::at(Instant when, std::function<void(Simulator&)> action) {
  Item item;
  item.at = std::max(when, s_->now);
  item.kind = Kind::kAction;
  item.action = s_->next_action++;
  s_->actions.emplace(item.action, std::move(action));
  s_->push(std::move(item));
}

bool Simulator::is_up(NodeIndex slot) const { return s_->is_up(slot); }
bool Simulator::is_paused(NodeIndex slot) const {
  return s_->is_up(slot) && s_->slots[slot].paused_until.has_value();
}

const Node& Simulator::node(NodeIndex slot) const {
  if (slot >= s_->slots.size() || !s_->slots[slot].node) {
    throw std::logic_error("Simulator::node: slot " + std::to_string(slot) + " is not up");
  }
  return *s_->slots[slot].node;
}

const NodeId& Simulator::node_id(NodeIndex slot) const { return s_->slots.at(slot).config.node_id; }

std::optional<NodeIndex> Simulator::slot_of(const NodeId& id) const {
  const auto it = s_->by_id.find(id);
  if (it == s_->by_id.end()) return std::nullopt;
  return it->second;
}

bool Simulator::is_healthy(NodeIndex slot) const { return s_->slots.at(slot).healthy(); }

void Simulator::update(NodeIndex slot, const std::function<void(Node&)>& mutation) {
  if (slot >= s_->slots.size() || !s_->slots[slot].node) {
    throw std::logic_error("Simulator::update: slot " + std::to_string(slot) + " is not up");
  }
  mutation(*s_->slots[slot].node);
  s_->drain(slot);
}

namespace {
// The bits of a link's faults, for the trace.
std::uint64_t fingerprint(const LinkFaults& f) {
  TraceHash h;
  h.add(static_cast<std::uint64_t>(f.latency.min.count()));
  h.add(static_cast<std::uint64_t>(f.latency.max.count()));
  h.add(static_cast<std::uint64_t>(f.latency.spike_max.count()));
  for (double p : {f.latency.spike_probability, f.loss, f.duplicate}) {
    h.add(static_cast<std::uint64_t>(p * 1e9));
  }
  return h.value();
}
}  // namespace

void Simulator::set_network(const LinkFaults& faults) {
  s_->trace_record(Tag::kLink, UINT64_MAX, fingerprint(faults));
  s_->options.network = faults;
}

void Simulator::set_link(NodeIndex from, NodeIndex to, const LinkFaults& faults) {
  s_->trace_record(Tag::kLink, from << 32 | to, fingerprint(faults));
  s_->links[{from, to}] = faults;
}

void Simulator::clear_link(NodeIndex from, NodeIndex to) {
  s_->trace_record(Tag::kLink, from << 32 | to, 0);
  s_->links.erase({from, to});
}

PartitionId Simulator::partition(std::vector<NodeIndex> side_a, std::vector<NodeIndex> side_b,
                                 bool one_way) {
  for (auto* side : {&side_a, &side_b}) {
    std::sort(side->begin(), side->end());
    side->erase(std::unique(side->begin(), side->end()), side->end());
    for (NodeIndex i : *side) {
      if (i < s_->slots.size()) s_->slots[i].health = Health::kFaulted;
    }
  }
  const PartitionId id = s_->next_rule++;
  s_->trace_record(Tag::kPartition, id, one_way ? 1 : 0);
  s_->rules.emplace(id, Rule{std::move(side_a), std::move(side_b), one_way});
  return id;
}

void Simulator::heal(PartitionId partition) {
  s_->trace_record(Tag::kHeal, partition, 0);
  s_->rules.erase(partition);
}

void Simulator::heal_all() {
  s_->trace_record(Tag::kHeal, 0, 0);
  s_->rules.clear();
}

void Simulator::set_clock(NodeIndex slot, NodeClock clock) {
  if (clock.drift_ppm <= -1'000'000 || clock.drift_ppm >= 1'000'000) {
    throw std::invalid_argument("set_clock: drift_ppm must be within (-1000000, 1000000)");
  }
  Slot& st = s_->slots.at(slot);
  st.clock = clock;
  st.clock_set_at = s_->now;
  s_->trace_record(Tag::kClock, slot, static_cast<std::uint64_t>(clock.offset.count()));
  s_->trace.add(static_cast<std::uint64_t>(clock.drift_ppm));
  if (st.node) {
    st.armed.reset();  // the pending timer fires by the new clock
    s_->arm(slot);
  }
}

NodeClock Simulator::clock(NodeIndex slot) const { return s_->slots.at(slot).clock; }
Instant Simulator::local_now(NodeIndex slot) const {
  if (slot >= s_->slots.size()) throw std::out_of_range("Simulator::local_now: no such slot");
  return s_->local_now(slot);
}

void Simulator::crash(NodeIndex slot) { s_->crash(slot); }

void Simulator::restart(NodeIndex slot) {
  if (s_->is_up(slot)) s_->crash(slot);
  s_->slots[slot].health = Health::kFaulted;
  s_->boot(slot);
}

void Simulator::pause(NodeIndex slot, Duration duration) {
  if (!s_->is_up(slot) || duration <= Duration::zero()) return;
  Slot& st = s_->slots[slot];
  if (st.healthy()) st.health = Health::kOnlyPaused;
  const Instant until = std::max(s_->now + duration, st.paused_until.value_or(s_->now));
  st.paused_until = until;
  s_->trace_record(Tag::kPause, slot, nanos(until));
  Item resume;
  resume.at = until;
  resume.kind = Kind::kResume;
  resume.slot = slot;
  resume.incarnation = st.incarnation;
  s_->push(std::move(resume));
  s_->update_detections();
}

bool Simulator::converged() const { return s_->converged(); }

std::optional<std::string> Simulator::convergence_gap() const {
  if (s_->converged()) return std::nullopt;
  auto name = [](const NodeId& id) { return id.name + "/" + std::to_string(id.generation_id); };
  for (NodeIndex i = 0; i < s_->slots.size(); ++i) {
    if (!s_->slots[i].node && !s_->slots[i].crashed)
      return "slot " + std::to_string(i) + " has not booted";
  }
  if (!s_->last_unconverged) return "unknown";
  const auto [o, subject] = *s_->last_unconverged;
  const Node& observer = *s_->slots[o].node;
  const Node& owner = *s_->slots[subject].node;
  const NodeState* replica = observer.node_state(owner.self_id());
  std::string what = name(observer.self_id()) + " sees " + name(owner.self_id()) + ": ";
  if (replica == nullptr) return what + "unknown";
  what += "max_version " + std::to_string(replica->max_version()) + " of " +
          std::to_string(owner.cluster_state().self().max_version()) + ", heartbeat " +
          std::to_string(replica->heartbeat()) + " of " +
          std::to_string(owner.cluster_state().self().heartbeat());
  if (replica->scheduled_for_deletion()) what += ", scheduled for deletion";
  const auto phi = observer.phi(owner.self_id());
  what += observer.is_live(owner.self_id()) ? ", live" : ", not live";
  what += phi ? " (phi " + std::to_string(*phi) + ")" : " (phi undefined)";
  return what;
}
const std::vector<CrashReport>& Simulator::crashes() const { return s_->crashes; }
bool Simulator::seen_dead_by_all(const NodeId& id) const { return s_->seen_dead_by_all(id); }

bool Simulator::removed_everywhere(const NodeId& id) const {
  for (NodeIndex i = 0; i < s_->slots.size(); ++i) {
    if (!s_->is_running(i) || s_->slots[i].node->self_id() == id) continue;
    if (s_->slots[i].node->node_state(id) != nullptr) return false;
  }
  return true;
}

const Counters& Simulator::counters() const { return s_->counters; }

std::uint64_t Simulator::trace_hash() const {
  // The counters are part of the summary too: two runs that agree on every
  // record but not on a counter differ.
  TraceHash h = s_->trace;
  const Counters& c = s_->counters;
  for (std::uint64_t v :
       {c.messages, c.bytes, c.delivered, c.lost, c.duplicated, c.blocked, c.undeliverable,
        c.timed_out, c.overflowed, c.streams_opened, c.streams_cut, c.max_packet_bytes,
        c.oversized_packets, c.events, c.false_deaths, nanos(s_->now)}) {
    h.add(v);
  }
  return h.value();
}

void Simulator::on_event(std::function<void(NodeIndex, const Event&)> hook) {
  s_->event_hooks.push_back(std::move(hook));
}

void Simulator::on_input(std::function<void(NodeIndex)> hook) {
  s_->input_hooks.push_back(std::move(hook));
}

void Simulator::filter_packets(std::function<bool(const Arrival&)> filter) {
  s_->filters.push_back(std::move(filter));
}

}  // namespace aiocluster::sim
