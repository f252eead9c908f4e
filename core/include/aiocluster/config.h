// Configuration of one node, with the defaults of PROTOCOL.md. A Node
// validates its Config when it is built and throws ConfigError naming the
// offending field; nothing is checked later.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "aiocluster/sealing.h"
#include "aiocluster/types.h"

namespace aiocluster {

using namespace std::chrono_literals;

class NodeState;

// How phi grows with the silence since a node's last heartbeat.
enum class PhiModel : std::uint8_t {
  // PROTOCOL.md section 6: phi = silence / smoothed mean interval. The meaning
  // of the threshold shared with Python aiocluster and chitchat.
  kLinear,
  // The phi accrual paper's form: phi = -log10(P(an interval this long)),
  // intervals taken as normally distributed around the smoothed mean plus
  // acceptable_heartbeat_pause, with at least min_std_deviation. Jitter
  // widens the margin by itself; phi climbs steeply past it.
  kNormal,
};

struct FailureDetectorConfig {
  PhiModel model = PhiModel::kLinear;
  double phi_threshold = 8.0;
  // Intervals a window keeps, at most 65,535 whatever is asked (18 hours of
  // 1 s rounds): windows are small because a node keeps one per known node.
  // An interval takes one byte (see max_interval), else two.
  std::size_t sampling_window_size = 1000;
  // Longer inter-arrival intervals are not recorded. Up to 255/16 (about
  // 16) gossip intervals, windows keep intervals in a byte each, rounded to
  // within 1/32 of a gossip interval (1/50 at the default 10 s and 1 s
  // rounds); longer, in two bytes, to within half of max_interval / 65535
  // (1/128 of a gossip interval at worst: longer intervals are clamped).
  Duration max_interval = 10s;
  // The prior of the mean interval, weighted as kPriorWeight samples. Unset:
  // five gossip intervals, at most 5 s (the protocol's 5 s at 1 s rounds).
  std::optional<Duration> initial_interval;
  // The shortest mean interval phi divides by (linear) or expects (normal).
  // Unset: no floor, or one gossip interval when detection_time is set, whose
  // threshold assumes a beat a round: a node that beats more often (nodes
  // beat when they serve an exchange too) is then not convicted sooner than
  // stated.
  std::optional<Duration> min_mean_interval;

  // About how long after a node stops every node should see it dead. When
  // set, it decides the threshold (linear model) or the acceptable pause
  // (normal model), the prior becomes one gossip interval, and a node turns
  // live at the first heartbeat heard after we learned of it (the protocol
  // waits for two); see resolve(). At least two gossip intervals.
  std::optional<Duration> detection_time;

  // Normal model only. Unset: a quarter of the gossip interval.
  std::optional<Duration> min_std_deviation;
  Duration acceptable_heartbeat_pause = Duration::zero();

  // A gap this long between two inputs of a node means the node itself did
  // not run (a GC pause, a stalled VM): the silence it slept through is not
  // counted against anyone. Unset: three gossip intervals.
  // Duration::max() turns this off.
  std::optional<Duration> local_pause_threshold;

  // Every optional filled in and detection_time turned into the threshold
  // or pause it stands for, given the node's gossip interval.
  FailureDetectorConfig resolve(Duration gossip_interval) const;
};

// Resource limits: what a hostile or broken peer can make us hold.
struct Limits {
  std::size_t max_nodes = 10'000;  // known nodes, self included
  std::size_t max_keys_per_node = 1'000'000;
  std::size_t max_key_size = 4'096;
  std::size_t max_value_size = 60'000;
  std::size_t max_pending_exchanges = 1'024;  // datagram exchanges awaiting a reply
  // Encoded NodeIdPb of any node we track: with max_nodes, bounds what fake
  // digest entries can make us hold.
  std::size_t max_node_id_size = 1'024;
  // Datagram Syns answered per source address. A Syn of a few bytes draws a
  // SynAck of up to max_payload_size, and a UDP source can be forged, so
  // without a limit this node amplifies floods aimed at someone else. A
  // source may send `datagram_syn_burst` at once, then
  // `datagram_syns_per_round` per gossip_interval (peers send us about one
  // per round). TCP needs no limit: its handshake proves the source, and the
  // drivers cap connections.
  std::size_t datagram_syn_burst = 8;
  std::size_t datagram_syns_per_round = 4;
  std::size_t max_rate_limited_sources = 4'096;
};

struct Config {
  std::string cluster_id;
  // generation_id must not be 0: a restarted process that reused its old
  // identity would see its new writes skipped by peers up to the old
  // max_version. The drivers fill an unset (0) generation from the wall
  // clock; a Node built directly needs one set.
  NodeId node_id;
  // Addresses to contact when joining. They may be unreachable, repeated,
  // or this node's own address.
  std::vector<Address> seeds;

  Duration gossip_interval = 1s;
  std::size_t gossip_count = 3;
  // What this node sends: no packet (or TCP frame) it writes is larger.
  std::size_t max_payload_size = 65'507;
  // What it accepts: packets and frames up to this size, at least
  // max_payload_size. Liberal, because Python aiocluster 1.1.0 budgets only
  // the delta of a SynAck, so with a large digest its SynAcks exceed 65,507
  // bytes (1,500 nodes: about 126 KB). Larger packets are dropped
  // (Stats::dropped_oversized); accepted ones above max_payload_size are
  // counted (Stats::packets_in_above_max_payload).
  std::size_t max_inbound_payload_size = 1024 * 1024;
  Duration marked_for_deletion_grace_period = 2h;
  Duration dead_node_grace_period = 24h;
  // How long a datagram exchange waits for its next message.
  Duration exchange_timeout = 3s;
  FailureDetectorConfig failure_detector;
  // An extra condition for another node to count as live, over its replica
  // (e.g. its key "ready" is "true"): live_nodes(), is_live(), the live set
  // and NodeJoined/NodeLeft follow the failure detector AND this. It is
  // judged once a round. Gossip and garbage collection follow the failure
  // detector alone, so a node that is up but not ready is still gossiped
  // with and never removed.
  std::function<bool(const NodeState&)> extra_liveness;
  Limits limits;
  // Our extensions of the protocol (proto/README.md). Each is announced in
  // every packet and used only with a peer that announced it too: nodes with
  // and without them, and Python aiocluster 1.1.0 nodes, form one cluster.
  struct Extensions {
    // Digests by short keyed hashes of the members' ids, about 6 bytes a
    // member instead of 40 or more; partial, and saying so, when even that
    // does not fit a packet.
    bool compact_digest = true;
    // With compact_digest: between nodes holding the same members, digests
    // that list them by position in id order, with no hashes (about 2 to 3
    // bytes a member).
    bool aligned_digest = true;
    // Packets of 128 bytes and more zstd-compressed (proto/README.md section
    // 5) when that makes them smaller; packet budgets count the bytes sent.
    bool compression = true;
  } extensions;
  // Sealed gossip (proto/README.md section 4): with a keyring, packets go
  // out sealed with AES-256-GCM and replays are refused. No keyring: the base
  // protocol, unchanged. Keys and mode change at run time through Node.
  SealingConfig sealing;

  // Why this config is unusable, naming the field; nullopt when it is fine.
  std::optional<std::string> validate() const;
};

class ConfigError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace aiocluster
