// Node: one cluster member as a sans-IO state machine. It never touches a
// socket, a clock or a thread; a driver feeds it bytes and time and carries
// out what it asks.
//
//   aiocluster::Node node(config, now, seed, {{"role", "db"}});
//   // after every input (handle_timeout, handle_packet, a mutation), drain:
//   while (auto tx = node.poll_transmit()) start_exchange(*tx);
//   arm_timer(node.poll_timeout());
//   while (auto ev = node.poll_event()) dispatch(*ev);
//
// Drain order after each input: transmits first, then the next timeout, then
// events. Extra handle_timeout calls are harmless.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aiocluster/cluster_state.h"
#include "aiocluster/config.h"
#include "aiocluster/events.h"
#include "aiocluster/messages.h"
#include "aiocluster/random.h"
#include "aiocluster/sealing.h"
#include "aiocluster/stats.h"
#include "aiocluster/types.h"

namespace aiocluster {

class FailureDetector;    // core internals (src/failure_detector.h,
class SourceRateLimiter;  // src/rate_limiter.h,
class Sealer;             // src/sealer.h)

// A Syn to send: the start of an exchange with `to`. Over a stream, a driver
// runs it through a StreamExchange (aiocluster/exchange.h); over datagrams,
// it sends the payload and reports where with handle_datagram_sent().
struct Transmit {
  Address to;
  Bytes payload;
  // The tls_name of the known node picked at `to`; empty for a seed address
  // or a node without one. A TLS driver verifies the server's certificate
  // against it, else against to.host.
  std::string tls_name;
};

// Where an incoming packet sits in an exchange. Drivers pass kDatagram; the
// stream stages are StreamExchange's to choose (tests and fuzzers inject
// packets at any of them).
enum class Stage : std::uint8_t {
  kDatagram,     // any message on a datagram socket; the core matches it
                 // against the exchanges it has pending with `from`
  kStreamOpen,   // first message on an accepted connection: must be a Syn
  kStreamAck,    // second message on an accepted connection: must be an Ack
  kStreamReply,  // the reply on a connection we opened: SynAck or BadCluster
};

struct Inbound {
  Stage stage = Stage::kDatagram;
  // The datagram's source, as the driver keys it (unused on streams).
  PeerKey from = PeerKey();
  // Names of the peer's verified certificate (mutual TLS), set by the driver.
  // When set, a Syn is accepted only if its digest includes a node whose
  // tls_name is among them (ASCII case-insensitive); otherwise it is dropped
  // and counted in Stats::dropped_tls_name.
  std::optional<std::vector<std::string>> peer_names = std::nullopt;
};

// A packet to send back on the channel the input came from.
struct Reply {
  Bytes payload;
  // A SynAck: the channel stays open for the peer's Ack. Otherwise the
  // exchange is over once this is sent.
  bool awaits_ack = false;
};

// What handle_packet did with one packet.
struct Outcome {
  // What to send back on the channel the packet came in on.
  std::optional<Reply> reply;
  // Why the packet was refused (and counted in Stats); nullopt when it was
  // accepted. A Syn of another cluster is refused and still answered, with
  // a BadCluster.
  std::optional<DropReason> dropped;

  bool accepted() const { return !dropped; }
  // Accepted, and nothing more is expected on its channel once the reply
  // (if any) is sent: the exchange completed.
  bool finished() const { return accepted() && !(reply && reply->awaits_ack); }
};

struct NodeSnapshot {
  NodeId id;
  std::uint64_t heartbeat = 0;
  std::uint64_t max_version = 0;
  std::uint64_t last_gc_version = 0;
  bool live = false;
  std::map<std::string, VersionedValue> key_values;  // every entry, tombstones too
};

struct ClusterSnapshot {
  NodeId self;
  std::vector<NodeSnapshot> nodes;  // in id order
};

using KeyValues = std::vector<std::pair<std::string, std::string>>;

class Node {
 public:
  // Throws ConfigError when `config` is unusable.
  Node(Config config, Instant now, std::uint64_t seed, const KeyValues& initial_key_values = {});
  ~Node();
  // Not copyable: a plain copy would seal under the original's nonces (the
  // same sender and counter with the same key), which AES-GCM forbids. fork()
  // is the copy.
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  Node(Node&&) noexcept;
  Node& operator=(Node&&) noexcept;

  // A copy of this node in its current state (a snapshot a test or fuzzer
  // restarts from) that seals under a sender id of its own, derived from
  // `seed` and this node's identity. Give every fork of a node its own seed;
  // everything else, gossip choices included, is the original's.
  Node fork(std::uint64_t seed) const;

  // --- Inputs ---
  // Runs what is due: gossip rounds, liveness, garbage collection.
  void handle_timeout(Instant now);
  // Handles one packet; says what to send back on the same channel, whether
  // the exchange is over, or why the packet was dropped. Never throws on bad
  // input: it is dropped and counted in stats().
  Outcome handle_packet(ByteView bytes, Instant now, const Inbound& in);
  // The same, taking the packet's bytes: the key-values it brings may stay
  // where they are instead of being copied.
  Outcome handle_packet(Bytes&& bytes, Instant now, const Inbound& in);
  // A Syn from poll_transmit() went out as a datagram to the peer the driver
  // keys as `to`: a SynAck or BadCluster from `to` within exchange_timeout
  // answers it.
  void handle_datagram_sent(const PeerKey& to);

  // --- Outputs ---
  std::optional<Transmit> poll_transmit();
  std::optional<Instant> poll_timeout() const;
  std::optional<Event> poll_event();

  // --- This node's key-values (PROTOCOL.md section 4). Mutations take the
  // time of the latest input as their local timestamp. ---
  void set(std::string_view key, std::string_view value);
  void remove(std::string_view key);
  void set_with_ttl(std::string_view key, std::string_view value);
  void delete_after_ttl(std::string_view key);
  std::optional<std::string> get(std::string_view key) const;

  // --- Sealed gossip (proto/README.md section 4). Changes take effect with
  // the next packet; config().sealing follows them. ---
  // Installs a key that opens packets. The first key installed on a node
  // without a keyring becomes its primary and turns sealing on.
  void install_key(const SealKey& key);
  // Installs `key` if needed and seals with it from now on.
  void make_primary_key(const SealKey& key);
  // False when not installed; throws std::invalid_argument for the primary.
  bool remove_key(const SealKey& key);
  void set_seal_mode(SealMode mode);
  // Makes `keyring` the installed keys, its primary the one that seals (a
  // reloaded keyring file). Throws std::invalid_argument when it is empty:
  // sealing cannot be turned off on a running node.
  void set_keyring(const Keyring& keyring);
  // Senders whose replay state this node holds (at most
  // sealing.max_replay_senders).
  std::size_t replay_senders() const;

  // Works in `other`'s workspace (the buffers a call into a node fills and
  // is done with: the packet being read, the plans of the packets being
  // written, the zstd contexts) instead of one of its own, which leaves every
  // packet and event as it was: for a driver that runs many nodes on one
  // thread, such as the simulator, where per-node workspaces sized by the
  // membership would grow with the square of the node count. Their
  // ClusterStates then also share one copy of each node id and, copy on
  // write, one frozen block of each replica content without tombstones
  // (src/storage.h): a replica of 3 keys costs about what one without keys
  // does. Nodes sharing a workspace must not be used from different threads
  // at once, nor called into from one another's callbacks
  // (Config::extra_liveness). A fork() gets a workspace of its own.
  void share_workspace(const Node& other);

  // --- Getters ---
  const NodeId& self_id() const { return cluster_.self_id(); }
  const Config& config() const { return config_; }
  // The failure detector's settings as in effect: config().failure_detector
  // with the defaults that follow from gossip_interval filled in and
  // detection_time turned into a threshold (linear) or a pause (normal).
  const FailureDetectorConfig& failure_detector() const;
  // Live nodes in id order, this node included.
  std::vector<NodeId> live_nodes() const;
  // Known nodes that are not live, in id order. One dead for half of
  // dead_node_grace_period is scheduled for deletion (left out of gossip)
  // and removed after the whole period; if a digest shows it beating again
  // meanwhile, it is taken off the schedule and can turn live (Python
  // aiocluster 1.1.0 does the same), without moving its removal time.
  std::vector<NodeId> dead_nodes() const;
  bool is_live(const NodeId& id) const;
  // The same for a node of cluster_state(), without looking it up.
  bool is_live(const NodeState& known) const {
    return &known == &cluster_.self() ||
           (known.slot() < liveness_.size() && liveness_[known.slot()].reported);
  }
  // The live nodes with their visible key-values, this node included.
  LiveSet live_set() const;
  // Moves whenever the live set may have changed (a node joined or left, a
  // key of some node changed): a watcher compares it with what it last saw
  // instead of building live_set() after every input.
  std::uint64_t live_set_version() const { return live_set_version_; }
  // The replicas, read in place. A NodeState pointer or reference is good
  // until the next call that hands the node an input (a round may move the
  // states so that their memory follows id order): keep ids, not states.
  const ClusterState& cluster_state() const { return cluster_; }
  const NodeState* node_state(const NodeId& id) const { return cluster_.find(id); }
  ClusterSnapshot snapshot() const;
  const Stats& stats() const { return stats_; }
  std::optional<double> phi(const NodeId& id) const;

 private:
  // fork(): a copy of `other` that seals as `sender`.
  Node(const Node& other, std::uint64_t sender);

  void advance_clock(Instant now);
  void run_round();
  // Up to gossip_count peers and more (PROTOCOL.md section 7), each with the
  // generation of the node picked there (0 for a bare seed).
  void select_peers(std::vector<Address>& out, std::vector<const NodeState*>& picked);
  // A peer of a round and the Syn it takes (the form it reads, and whether
  // it announced compression), decided when it was picked.
  struct SynTarget {
    Address to;
    std::string tls_name;
    std::uint8_t form = 0;  // 0: base digest, 1: compact, 2: compact with our fingerprint
    bool compression = false;
  };
  // This round's peers, each with the Syn it takes.
  std::vector<SynTarget> round_targets();
  void send_syns(std::span<SynTarget> targets);
  void send_due_syns();
  void update_liveness();
  struct Liveness;
  void report_liveness(const NodeState& st, Liveness& l);
  void turn_live_if_heard(const NodeState& st);
  struct Scratch;
  struct Workspace;
  Outcome receive(ByteView bytes, Bytes* owned, const Inbound& in);
  Outcome receive_decompressed(ByteView bytes, Bytes* owned, const Inbound& in);
  Outcome receive_plain(ByteView bytes, Bytes* owned, const Inbound& in);
  // Sealed gossip: whether a keyring is installed, the bytes every packet
  // gives up to the envelope, and a packet as it goes out.
  bool sealing() const { return !config_.sealing.keyring.empty(); }
  std::size_t send_limit() const;
  Bytes sealed(Bytes packet);
  void keyring_changed();
  Outcome on_syn(const Inbound& in);
  Outcome on_synack(Bytes* owned, const Inbound& in);
  Outcome on_ack(Bytes* owned, const Inbound& in);
  void report_heartbeats();
  void apply_delta(Bytes* owned);
  void emit_change(const NodeId& node, KeyChange change);
  template <typename... Args>
  void queue_event(Args&&... args);
  void take_events_room();
  // A node joining what we know starts dead until the detector hears it.
  void note_node(const NodeState& st, bool created);

  void plan_digest(std::size_t budget);
  // Our extensions (proto/README.md).
  std::uint64_t features() const;
  std::size_t payload_limit() const;
  std::size_t announcement_room() const;
  Bytes announced(Bytes packet) const;
  bool read_extensions();
  void learn_features();
  std::uint8_t& features_of(const NodeState& st);
  bool speaks_compact(const NodeState* st) const;
  bool speaks(const NodeState* st, std::uint64_t feature) const;
  // A SynAck or Ack: its delta planned within `budget` and the packet
  // written by `write`, compressed when the peer speaks it, with the delta
  // grown to what fits in the bytes sent (compression.cc).
  Bytes fitted(std::size_t budget, const std::function<Bytes()>& write);
  std::span<const NodeState* const> keyless_unseen();
  std::uint64_t own_salt();
  Bytes make_syn(bool compact, bool aligned);
  // Our membership fingerprint (proto/README.md section 2.3).
  std::uint64_t fingerprint();
  Bytes make_synack();
  Bytes make_ack();
  Bytes make_bad_cluster();
  Outcome drop(DropReason reason);

  using Pending = std::multimap<PeerKey, Instant>;
  bool take_pending(Pending& pending, const PeerKey& from);
  void add_pending(Pending& pending, const PeerKey& to);
  void expire_pending();

  Config config_;
  Instant now_;
  Rng rng_;
  ClusterState cluster_;
  std::unique_ptr<FailureDetector> detector_;
  Stats stats_;

  std::optional<Instant> next_round_;
  // The Syns of the round still to go, soonest last (see run_round).
  std::vector<std::pair<Instant, SynTarget>> later_syns_;
  // stats_.key_values_applied when the last round ran.
  std::uint64_t key_values_at_round_ = 0;
  // Of every known node but this one, by NodeState::slot(). A byte: when a
  // dead node died is in dead_since_, as most known nodes are live.
  struct Liveness {
    bool live : 1 = false;      // the failure detector hears it
    bool dead : 1 = false;      // known and not live
    bool reported : 1 = false;  // live, and Config::extra_liveness holds
  };
  Liveness& liveness(const NodeState& st);
  const Liveness* liveness_of(const NodeId& id) const;
  std::vector<Liveness> liveness_;
  // When each dead node (Liveness::dead) turned dead, by slot, sorted: an
  // entry for every dead node, and for a round those that stopped being.
  std::vector<std::pair<std::uint32_t, Instant>> dead_since_;
  void set_dead(const NodeState& st, Liveness& l);
  Instant dead_since(const NodeState& st) const;
  void drop_undead();
  std::uint64_t live_set_version_ = 0;

  // What the driver polls, oldest first from the head (vectors reused
  // between polls rather than deques that allocate as they go).
  std::vector<Transmit> transmits_;
  std::size_t transmits_head_ = 0;
  std::vector<Event> events_;
  std::size_t events_head_ = 0;
  // Datagram exchanges awaiting their next message, by peer and deadline:
  // one entry for each message sent, as two addresses (a seed's name and a
  // node's number) may reach the same peer in one round.
  Pending pending_syns_;     // we sent a Syn: expect SynAck
  Pending pending_synacks_;  // we sent a SynAck: expect Ack
  std::unique_ptr<SourceRateLimiter> datagram_syns_;
  // Nonces and replay state of sealed gossip; used while a keyring is installed.
  std::unique_ptr<Sealer> sealer_;
  // The extensions each known node speaks (proto/README.md), by
  // NodeState::slot(): learned from its own announcement, or from the
  // compact digests of nodes that learned it.
  std::vector<std::uint8_t> features_by_slot_;
  // Where the next partial compact digest starts, among the members by hash.
  std::size_t compact_rotation_ = 0;
  // The salt of our compact Syns, drawn afresh every few Syns
  // (proto/README.md), and how many more Syns it serves.
  std::uint64_t compact_salt_ = 0;
  std::uint32_t compact_salt_syns_ = 0;
  // Caches kept between calls (the compact digest's hash tables, our
  // fingerprint, our encoded announcement).
  std::unique_ptr<Scratch> scratch_;
  // The buffers of one call: this node's own unless shared.
  std::shared_ptr<Workspace> work_;
};

}  // namespace aiocluster
