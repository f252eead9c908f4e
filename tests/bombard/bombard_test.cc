// The bombardment test (issue 7): three aiocluster-node processes form a
// cluster, then this process floods node 1 (the victim) for ten seconds with
// hostile traffic from one poll(2) loop while it checks, every half second,
// that the victim still answers a fresh gossip Syn with a SynAck and that it
// is still a live member of the cluster. Afterwards the cluster must converge
// again, no forged node may have entered anyone's state, the victim's peak
// resident memory must stay under AIOCLUSTER_BOMBARD_PEAK_RSS_LIMIT_MIB and
// every node must exit cleanly on SIGTERM.
//
// TCP: 1,000 half-open connections held at all times (silent, or a partial
// length prefix), plus connections carrying malformed frames, empty and
// oversized length prefixes, frames cut short, truncated packets and
// well-formed packets out of place or of another cluster.
// UDP: a few thousand datagrams a second of garbage, empty, truncated,
// out-of-place and wrong-cluster packets and valid Syns from a few fixed
// source ports (which the node may rate-limit: their answers are counted,
// never required).
#include <aiocluster/codec.h>
#include <aiocluster/framing.h>
#include <aiocluster/messages.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "agent.h"

namespace {

namespace ac = aiocluster;
using namespace aiocluster::testing;

constexpr auto kBombardment = 10s;
constexpr auto kCheckEvery = 500ms;
// A probe is up to kProbeAttempts fresh connections (datagram sockets), each
// given kProbeTimeout to bring back a SynAck.
constexpr auto kProbeTimeout = 2s;
constexpr int kProbeAttempts = 3;
constexpr std::size_t kHalfOpen = 1000;
// Connections carrying a hostile frame: at most this many at once, opened at
// most this fast, each closed by us after kAttackLifetime if the node has not
// closed it first.
constexpr std::size_t kAttacksInFlight = 32;
constexpr double kAttacksPerSecond = 500;
constexpr auto kAttackLifetime = 1s;
constexpr double kDatagramsPerSecond = 3000;
constexpr std::size_t kFloodSockets = 4;
constexpr std::uint32_t kMaxPayload = 65'507;       // the default max_payload_size
constexpr std::uint32_t kMaxInbound = 1024 * 1024;  // the default max_inbound_payload_size
constexpr std::uint64_t kSeed = 0x5eed'b0b0;

// ---------------------------------------------------------------------------
// Sockets

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

// The attacker's address: another host than the cluster's peers (all of
// 127.0.0.0/8 is loopback), as a real attack comes from elsewhere. The
// drivers cap what one host may hold waiting, so a flood from one host
// pushes out only its own connections.
constexpr std::uint32_t kAttackerHost = 0x7f000002;  // 127.0.0.2
// The hostile frames come from a third host: from the half-open flood's own
// host they would mostly be pushed out, unread, by the flood itself.
constexpr std::uint32_t kFrameAttackerHost = 0x7f000003;  // 127.0.0.3

// A non-blocking socket connecting (TCP: in progress) to 127.0.0.1:port,
// from `source` (host order; 0: the system's choice); empty when the system
// refuses one (counted by the caller).
Fd connect_to(std::uint16_t port, int type, std::uint32_t source = 0) {
  Fd fd(::socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  if (source != 0) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(source);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&from), sizeof from) != 0) {
      fd.reset();
      return fd;
    }
  }
  const sockaddr_in addr = loopback(port);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
      errno != EINPROGRESS) {
    fd.reset();
  }
  return fd;
}

bool connect_failed(int fd) {
  int error = 0;
  socklen_t len = sizeof error;
  return ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0;
}

// Reads what is there; false once the peer has closed (EOF or error).
bool read_some(int fd, ac::Bytes& into) {
  std::uint8_t buf[4096];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      into.insert(into.end(), buf, buf + n);
      continue;
    }
    if (n == 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }
}

// ---------------------------------------------------------------------------
// Packets

ac::Bytes prefix(std::uint32_t length) {
  return {static_cast<std::uint8_t>(length >> 24), static_cast<std::uint8_t>(length >> 16),
          static_cast<std::uint8_t>(length >> 8), static_cast<std::uint8_t>(length)};
}

// The length a frame header at `at` announces (the caller checked 4 bytes are there).
std::uint32_t frame_length(const ac::Bytes& in, std::size_t at) {
  return (std::uint32_t{in[at]} << 24) | (std::uint32_t{in[at + 1]} << 16) |
         (std::uint32_t{in[at + 2]} << 8) | std::uint32_t{in[at + 3]};
}

ac::Bytes packet(const std::string& cluster_id, ac::Message message) {
  return ac::encode(ac::Packet{cluster_id, std::move(message)});
}

// Nodes that exist only in forged packets: none may ever show up in a report.
constexpr std::string_view kGhost = "ghost-";

ac::NodeId ghost(int i) {
  return ac::NodeId{std::string(kGhost) + std::to_string(i), 42, ac::Address{"127.0.0.1", 9}, ""};
}

ac::Digest ghost_digest() {
  ac::Digest d;
  for (int i = 0; i < 4; ++i) d.node_digests.push_back({ghost(i), 100, 0, 3});
  return d;
}

ac::Delta ghost_delta() {
  ac::Delta d;
  for (int i = 0; i < 4; ++i) {
    d.node_deltas.push_back({ghost(i), 0, 0, {{"role", "intruder", 1, ac::KeyStatus::kSet}}, 1});
  }
  return d;
}

// What a reply decodes to, for counting.
enum class Reply { kSynAck, kBadCluster, kOther, kUndecodable };

Reply classify(ac::ByteView bytes, const std::string& cluster_id) {
  const auto result = ac::decode(bytes);
  const auto* p = std::get_if<ac::Packet>(&result);
  if (p == nullptr) return Reply::kUndecodable;
  if (std::holds_alternative<ac::SynAck>(p->message) && p->cluster_id == cluster_id)
    return Reply::kSynAck;
  if (std::holds_alternative<ac::BadCluster>(p->message)) return Reply::kBadCluster;
  return Reply::kOther;
}

// ---------------------------------------------------------------------------
// The victim's memory, from /proc/<pid>/status, in KiB.

std::optional<std::uint64_t> proc_status_kib(pid_t pid, std::string_view field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0 && line.size() > field.size() && line[field.size()] == ':') {
      std::istringstream rest(line.substr(field.size() + 1));
      std::uint64_t kib = 0;
      if (rest >> kib) return kib;
    }
  }
  return std::nullopt;
}

std::string mib(std::uint64_t kib) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(kib) / 1024.0);
  return buf;
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// ---------------------------------------------------------------------------
// The hostile traffic

enum class Attack : std::size_t {
  kGarbageFrame,     // a valid length prefix, then that many random bytes
  kEmptyFrame,       // length prefix 0
  kOversizedPrefix,  // a length above max_inbound_payload_size
  kCutShort,         // prefix says 1000, 10 bytes follow, then we close
  kStalledFrame,     // prefix says max_payload_size, 1 KiB follows, then nothing
  kStalledLarge,     // prefix above max_payload_size (a large frame), 1 KiB, then nothing
  kTruncatedPacket,  // a well-framed prefix of a valid packet
  kAckFirst,         // a valid Ack (forged deltas) opening the connection
  kSynAckFirst,      // a valid SynAck (forged deltas) opening the connection
  kWrongCluster,     // a valid Syn of another cluster: a BadCluster is due
  kCount,
};
constexpr std::array<const char*, static_cast<std::size_t>(Attack::kCount)> kAttackNames = {
    "garbage_frame", "empty_frame",      "oversized_prefix", "cut_short",    "stalled_frame",
    "stalled_large", "truncated_packet", "ack_first",        "synack_first", "wrong_cluster"};

enum class Datagram : std::size_t {
  kGarbage,           // 1..1500 random bytes (1 in 100: max_payload_size)
  kEmpty,             // zero bytes
  kTruncatedPacket,   // a prefix of a valid Syn
  kWrongCluster,      // a valid Syn of another cluster
  kAckOutOfPlace,     // a valid Ack (forged deltas), no exchange open
  kSynAckOutOfPlace,  // a valid SynAck (forged deltas), no Syn sent
  kValidSyn,          // a valid Syn from a flood socket (may be rate-limited)
  kCount,
};
constexpr std::array<const char*, static_cast<std::size_t>(Datagram::kCount)> kDatagramNames = {
    "garbage",          "empty",
    "truncated_packet", "wrong_cluster",
    "ack_out_of_place", "synack_out_of_place",
    "valid_syn"};

struct HalfOpen {
  Fd fd;
  bool connected = false;
  bool partial_prefix = false;  // sends 2 of the 4 prefix bytes once connected
};

struct AttackConn {
  Fd fd;
  Attack kind{};
  ac::Bytes out;
  std::size_t sent = 0;
  bool connected = false;
  Clock::time_point deadline;
  ac::Bytes in;
};

struct Probe {
  Fd fd;
  Clock::time_point probe_started;
  Clock::time_point attempt_started;
  int attempt = 0;
  bool connected = false;
  ac::Bytes out;
  std::size_t sent = 0;
  ac::Bytes in;
};

struct Tally {
  std::size_t probes = 0, probes_ok = 0, probe_attempts = 0;
  // Why attempts failed: closed by the node before a whole answer, no answer
  // within kProbeTimeout, an answer other than a SynAck.
  std::size_t attempts_closed = 0, attempts_timed_out = 0, attempts_wrong_answer = 0;
  double slowest_close_s = 0;  // the longest a closed attempt lived
  bool last_probe_ok = false;
  double slowest_probe_s = 0;
  std::size_t half_open_opened = 0, half_open_closed_by_node = 0, half_open_min = kHalfOpen;
  double half_open_held_sum = 0;
  std::size_t loop_turns = 0;
  std::array<std::size_t, static_cast<std::size_t>(Attack::kCount)> attacks{}, closed_by_node{};
  std::array<std::size_t, static_cast<std::size_t>(Datagram::kCount)> datagrams{};
  std::size_t datagrams_refused_locally = 0;
  std::size_t bad_cluster_replies = 0, synack_replies = 0, other_replies = 0;
  std::size_t socket_failures = 0;
};

// The hostile side and the liveness probe, driven by one poll(2) loop.
class Bombardment {
 public:
  Bombardment(bool tcp, std::uint16_t port, std::string cluster_id)
      : tcp_(tcp), port_(port), cluster_id_(std::move(cluster_id)), rng_(kSeed) {
    syn_ = packet(cluster_id_, ac::Syn{});
    ghost_syn_ = packet(cluster_id_, ac::Syn{ghost_digest()});
    wrong_cluster_syn_ = packet("intruder-cluster", ac::Syn{ghost_digest()});
    ack_ = packet(cluster_id_, ac::Ack{ghost_delta()});
    synack_ = packet(cluster_id_, ac::SynAck{ghost_digest(), ghost_delta()});
    if (tcp_) {
      half_open_.resize(kHalfOpen);
      for (std::size_t i = 0; i < kHalfOpen; ++i) {
        half_open_[i].partial_prefix = i % 2 == 1;
        open_half(half_open_[i]);
      }
    } else {
      for (std::size_t i = 0; i < kFloodSockets; ++i) {
        flood_.push_back(connect_to(port_, SOCK_DGRAM, kAttackerHost));
        REQUIRE(flood_.back());
      }
    }
  }

  // One turn of the loop: top up the traffic, wait up to a few ms, handle
  // what happened.
  void turn(Clock::time_point now) {
    ++tally_.loop_turns;
    if (!probe_ && now >= next_probe_) start_probe(now);
    if (tcp_) {
      open_attacks(now);
    } else {
      send_datagrams(now);
    }
    poll_and_handle();
    now = Clock::now();
    expire(now);
    std::size_t held = 0;
    for (const auto& h : half_open_) held += h.fd ? 1 : 0;
    if (tcp_) {
      tally_.half_open_min = std::min(tally_.half_open_min, held);
      tally_.half_open_held_sum += static_cast<double>(held);
    }
  }

  // Stops all traffic; a probe in progress is abandoned uncounted.
  void stop() {
    half_open_.clear();
    attacks_.clear();
    flood_.clear();
    probe_.reset();
  }

  const Tally& tally() const { return tally_; }

 private:
  // --- half-open connections
  void open_half(HalfOpen& h) {
    h.fd = connect_to(port_, SOCK_STREAM, kAttackerHost);
    h.connected = false;
    if (h.fd) {
      ++tally_.half_open_opened;
    } else {
      ++tally_.socket_failures;
    }
  }

  // --- hostile frames
  ac::Bytes random_bytes(std::size_t n) {
    ac::Bytes out(n);
    for (auto& b : out) b = static_cast<std::uint8_t>(rng_());
    return out;
  }
  std::size_t uniform(std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng_);
  }
  static ac::Bytes cat(ac::Bytes a, const ac::Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }
  ac::Bytes truncated(const ac::Bytes& valid) {
    return ac::Bytes(valid.begin(),
                     valid.begin() + static_cast<std::ptrdiff_t>(uniform(1, valid.size() - 1)));
  }

  ac::Bytes attack_bytes(Attack kind) {
    switch (kind) {
      case Attack::kGarbageFrame: {
        const std::size_t n = uniform(0, 15) == 0 ? kMaxPayload : uniform(1, 2048);
        return cat(prefix(static_cast<std::uint32_t>(n)), random_bytes(n));
      }
      case Attack::kEmptyFrame:
        return cat(prefix(0), random_bytes(uniform(0, 64)));
      case Attack::kOversizedPrefix: {
        const auto length =
            std::uniform_int_distribution<std::uint32_t>(kMaxInbound + 1, 0xffff'ffffu)(rng_);
        return cat(prefix(uniform(0, 3) == 0 ? kMaxInbound + 1 : length),
                   random_bytes(uniform(0, 64)));
      }
      case Attack::kCutShort:
        return cat(prefix(1000), random_bytes(10));
      case Attack::kStalledFrame:
        return cat(prefix(kMaxPayload), random_bytes(1024));
      case Attack::kStalledLarge:
        return cat(prefix(static_cast<std::uint32_t>(uniform(kMaxPayload + 1, kMaxInbound))),
                   random_bytes(1024));
      case Attack::kTruncatedPacket: {
        const ac::Bytes part = truncated(uniform(0, 1) == 0 ? ghost_syn_ : synack_);
        return ac::encode_frame(part);
      }
      case Attack::kAckFirst:
        return ac::encode_frame(ack_);
      case Attack::kSynAckFirst:
        return ac::encode_frame(synack_);
      case Attack::kWrongCluster:
        return ac::encode_frame(wrong_cluster_syn_);
      case Attack::kCount:
        break;
    }
    FAIL("unknown attack");
    return {};
  }

  void open_attacks(Clock::time_point now) {
    const double due = kAttacksPerSecond * seconds(now - started_);
    while (attacks_.size() < kAttacksInFlight && static_cast<double>(attacks_started_) < due) {
      const auto kind =
          static_cast<Attack>(attacks_started_ % static_cast<std::size_t>(Attack::kCount));
      ++attacks_started_;
      AttackConn a;
      a.fd = connect_to(port_, SOCK_STREAM, kFrameAttackerHost);
      if (!a.fd) {
        ++tally_.socket_failures;
        continue;
      }
      a.kind = kind;
      a.out = attack_bytes(kind);
      a.deadline = now + kAttackLifetime;
      attacks_.push_back(std::move(a));
    }
  }

  // --- datagrams
  void send_datagrams(Clock::time_point now) {
    const double due = kDatagramsPerSecond * seconds(now - started_);
    while (static_cast<double>(datagrams_started_) < due) {
      // Weighted: half garbage, the rest spread over the other kinds.
      const std::size_t roll = datagrams_started_ % 12;
      ++datagrams_started_;
      const Datagram kind = roll < 6     ? Datagram::kGarbage
                            : roll == 6  ? Datagram::kEmpty
                            : roll == 7  ? Datagram::kTruncatedPacket
                            : roll == 8  ? Datagram::kWrongCluster
                            : roll == 9  ? Datagram::kAckOutOfPlace
                            : roll == 10 ? Datagram::kSynAckOutOfPlace
                                         : Datagram::kValidSyn;
      ac::Bytes bytes;
      switch (kind) {
        case Datagram::kGarbage:
          bytes = random_bytes(uniform(0, 99) == 0 ? kMaxPayload : uniform(1, 1500));
          break;
        case Datagram::kEmpty:
          break;
        case Datagram::kTruncatedPacket:
          bytes = truncated(uniform(0, 1) == 0 ? ghost_syn_ : synack_);
          break;
        case Datagram::kWrongCluster:
          bytes = wrong_cluster_syn_;
          break;
        case Datagram::kAckOutOfPlace:
          bytes = ack_;
          break;
        case Datagram::kSynAckOutOfPlace:
          bytes = synack_;
          break;
        case Datagram::kValidSyn:
          bytes = syn_;
          break;
        case Datagram::kCount:
          break;
      }
      const Fd& fd = flood_[datagrams_started_ % flood_.size()];
      if (::send(fd.get(), bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size())) {
        ++tally_.datagrams[static_cast<std::size_t>(kind)];
      } else {
        ++tally_
              .datagrams_refused_locally;  // a full socket buffer, or ICMP from an earlier datagram
      }
    }
  }

  // --- the probe: a valid Syn with an empty digest from a fresh socket
  void start_probe(Clock::time_point now) {
    probe_.emplace();
    probe_->probe_started = now;
    next_probe_ = now + kCheckEvery;
    ++tally_.probes;
    start_attempt(now);
  }

  void start_attempt(Clock::time_point now) {
    Probe& p = *probe_;
    ++p.attempt;
    ++tally_.probe_attempts;
    p.fd = connect_to(port_, tcp_ ? SOCK_STREAM : SOCK_DGRAM);
    p.attempt_started = now;
    p.connected = !tcp_;
    p.out = tcp_ ? ac::encode_frame(syn_) : syn_;
    p.sent = 0;
    p.in.clear();
    if (!p.fd) ++tally_.socket_failures;
  }

  enum class Outcome : std::uint8_t { kSynAck, kClosed, kTimedOut, kWrongAnswer };

  void end_attempt(Outcome outcome, Clock::time_point now) {
    const bool ok = outcome == Outcome::kSynAck;
    if (outcome == Outcome::kClosed) {
      ++tally_.attempts_closed;
      tally_.slowest_close_s =
          std::max(tally_.slowest_close_s, seconds(now - probe_->attempt_started));
    }
    if (outcome == Outcome::kTimedOut) ++tally_.attempts_timed_out;
    if (outcome == Outcome::kWrongAnswer) ++tally_.attempts_wrong_answer;
    if (!ok && probe_->attempt < kProbeAttempts) {
      start_attempt(now);
      return;
    }
    if (ok) {
      ++tally_.probes_ok;
      tally_.slowest_probe_s =
          std::max(tally_.slowest_probe_s, seconds(now - probe_->probe_started));
    }
    tally_.last_probe_ok = ok;
    probe_.reset();
  }

  // Ends the attempt once the probe's input holds a whole frame, the answer.
  bool check_probe_frame(Clock::time_point now) {
    const Probe& p = *probe_;
    if (p.in.size() < ac::kFrameHeaderSize) return false;
    const std::uint32_t length = frame_length(p.in, 0);
    if (p.in.size() - ac::kFrameHeaderSize < length) return false;
    const ac::ByteView payload(p.in.data() + ac::kFrameHeaderSize, length);
    end_attempt(
        classify(payload, cluster_id_) == Reply::kSynAck ? Outcome::kSynAck : Outcome::kWrongAnswer,
        now);
    return true;
  }

  // --- the loop
  enum class Owner : std::uint8_t { kHalfOpen, kAttack, kFlood, kProbe };

  void poll_and_handle() {
    fds_.clear();
    owners_.clear();
    auto add = [&](int fd, short events, Owner owner, std::size_t index) {
      fds_.push_back({fd, events, 0});
      owners_.emplace_back(owner, index);
    };
    for (std::size_t i = 0; i < half_open_.size(); ++i) {
      const auto& h = half_open_[i];
      if (h.fd) add(h.fd.get(), h.connected ? POLLIN : POLLOUT, Owner::kHalfOpen, i);
    }
    for (std::size_t i = 0; i < attacks_.size(); ++i) {
      const auto& a = attacks_[i];
      add(a.fd.get(), static_cast<short>(POLLIN | (a.sent < a.out.size() ? POLLOUT : 0)),
          Owner::kAttack, i);
    }
    for (std::size_t i = 0; i < flood_.size(); ++i) add(flood_[i].get(), POLLIN, Owner::kFlood, i);
    if (probe_ && probe_->fd) {
      add(probe_->fd.get(),
          static_cast<short>(POLLIN | (probe_->sent < probe_->out.size() ? POLLOUT : 0)),
          Owner::kProbe, 0);
    }
    const int ready = ::poll(fds_.data(), fds_.size(), 2);
    if (ready <= 0) return;
    const auto now = Clock::now();
    bool attacks_changed = false;
    for (std::size_t k = 0; k < fds_.size(); ++k) {
      const short revents = fds_[k].revents;
      if (revents == 0) continue;
      const auto [owner, index] = owners_[k];
      switch (owner) {
        case Owner::kHalfOpen:
          on_half_open(half_open_[index], revents);
          break;
        case Owner::kAttack:
          attacks_changed |= on_attack(attacks_[index], revents);
          break;
        case Owner::kFlood:
          on_flood(flood_[index]);
          break;
        case Owner::kProbe:
          if (probe_) on_probe(revents, now);
          break;
      }
    }
    if (attacks_changed) std::erase_if(attacks_, [](const AttackConn& a) { return !a.fd; });
  }

  void on_half_open(HalfOpen& h, short revents) {
    if (!h.connected) {
      if ((revents & (POLLERR | POLLHUP)) != 0 || connect_failed(h.fd.get())) {
        ++tally_.half_open_closed_by_node;
        open_half(h);
        return;
      }
      h.connected = true;
      if (h.partial_prefix) {
        const std::uint8_t two[2] = {0, 0};
        (void)::send(h.fd.get(), two, sizeof two, MSG_NOSIGNAL);
      }
      return;
    }
    ac::Bytes ignored;
    if (!read_some(h.fd.get(), ignored)) {
      ++tally_.half_open_closed_by_node;
      open_half(h);
    }
  }

  // True when the connection is finished (its fd reset).
  bool on_attack(AttackConn& a, short revents) {
    if (!a.connected) {
      if ((revents & POLLOUT) == 0 && (revents & (POLLERR | POLLHUP)) == 0) return false;
      if (connect_failed(a.fd.get())) {
        count_attack(a, true);
        a.fd.reset();
        return true;
      }
      a.connected = true;
    }
    if ((revents & POLLOUT) != 0 && a.sent < a.out.size()) {
      const ssize_t n =
          ::send(a.fd.get(), a.out.data() + a.sent, a.out.size() - a.sent, MSG_NOSIGNAL);
      if (n > 0) a.sent += static_cast<std::size_t>(n);
      if (n > 0 && a.sent == a.out.size() && a.kind == Attack::kCutShort) {
        count_attack(a, false);
        a.fd.reset();
        return true;
      }
    }
    if ((revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
      if (!read_some(a.fd.get(), a.in)) {
        count_attack(a, true);
        a.fd.reset();
        return true;
      }
    }
    return false;
  }

  void count_attack(AttackConn& a, bool closed_by_node) {
    const auto k = static_cast<std::size_t>(a.kind);
    ++tally_.attacks[k];
    if (closed_by_node) ++tally_.closed_by_node[k];
    count_frames(a.in);
  }

  // Replies the node wrote before closing (BadCluster for a wrong cluster).
  void count_frames(const ac::Bytes& in) {
    std::size_t at = 0;
    while (in.size() - at >= ac::kFrameHeaderSize) {
      const std::uint32_t length = frame_length(in, at);
      if (in.size() - at - ac::kFrameHeaderSize < length) break;
      count_reply(
          classify(ac::ByteView(in.data() + at + ac::kFrameHeaderSize, length), cluster_id_));
      at += ac::kFrameHeaderSize + length;
    }
  }

  void count_reply(Reply r) {
    if (r == Reply::kBadCluster) {
      ++tally_.bad_cluster_replies;
    } else if (r == Reply::kSynAck) {
      ++tally_.synack_replies;
    } else {
      ++tally_.other_replies;
    }
  }

  void on_flood(const Fd& fd) {
    std::uint8_t buf[65536];
    while (true) {
      const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n < 0) continue;  // ICMP port unreachable and the like: read on
      count_reply(classify(ac::ByteView(buf, static_cast<std::size_t>(n)), cluster_id_));
    }
  }

  void on_probe(short revents, Clock::time_point now) {
    Probe& p = *probe_;
    if (!p.connected) {
      if (connect_failed(p.fd.get())) {
        end_attempt(Outcome::kClosed, now);
        return;
      }
      p.connected = true;
    }
    if ((revents & POLLOUT) != 0 && p.sent < p.out.size()) {
      const ssize_t n =
          ::send(p.fd.get(), p.out.data() + p.sent, p.out.size() - p.sent, MSG_NOSIGNAL);
      if (n > 0) p.sent += static_cast<std::size_t>(n);
    }
    if ((revents & (POLLIN | POLLERR | POLLHUP)) == 0) return;
    if (tcp_) {
      const bool open = read_some(p.fd.get(), p.in);
      if (!check_probe_frame(now) && !open) end_attempt(Outcome::kClosed, now);
      return;
    }
    std::uint8_t buf[65536];
    while (probe_) {
      const ssize_t n = ::recv(p.fd.get(), buf, sizeof buf, 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n < 0)
        continue;  // an ICMP error: the node may not be listening yet; wait for the timeout
      if (classify(ac::ByteView(buf, static_cast<std::size_t>(n)), cluster_id_) == Reply::kSynAck) {
        end_attempt(Outcome::kSynAck, now);
        return;
      }
    }
  }

  void expire(Clock::time_point now) {
    if (probe_ && now - probe_->attempt_started > kProbeTimeout)
      end_attempt(Outcome::kTimedOut, now);
    bool changed = false;
    for (auto& a : attacks_) {
      if (now >= a.deadline) {
        count_attack(a, false);
        a.fd.reset();
        changed = true;
      }
    }
    if (changed) std::erase_if(attacks_, [](const AttackConn& a) { return !a.fd; });
  }

  bool tcp_;
  std::uint16_t port_;
  std::string cluster_id_;
  std::mt19937_64 rng_;
  Clock::time_point started_ = Clock::now();
  ac::Bytes syn_, ghost_syn_, wrong_cluster_syn_, ack_, synack_;

  std::vector<HalfOpen> half_open_;
  std::vector<AttackConn> attacks_;
  std::size_t attacks_started_ = 0;
  std::vector<Fd> flood_;
  std::size_t datagrams_started_ = 0;
  std::optional<Probe> probe_;
  Clock::time_point next_probe_ = Clock::now();
  Tally tally_;

  std::vector<pollfd> fds_;
  std::vector<std::pair<Owner, std::size_t>> owners_;
};

// ---------------------------------------------------------------------------
// The scenario

void raise_fd_limit() {
  rlimit limit{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
  limit.rlim_cur = limit.rlim_max;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &limit) == 0);
  // The half-open connections, the attacks, the probe and some slack.
  INFO("RLIMIT_NOFILE hard limit " << limit.rlim_max << " is too low for " << kHalfOpen
                                   << " connections");
  REQUIRE(limit.rlim_max >= kHalfOpen + kAttacksInFlight + 64);
}

bool mentions_ghost(const Json& report) {
  auto ghostly = [](const std::string& name) { return name.rfind(kGhost, 0) == 0; };
  for (const auto& n : names(report.at("live"))) {
    if (ghostly(n)) return true;
  }
  for (const auto& n : names(report.at("dead"))) {
    if (ghostly(n)) return true;
  }
  for (const auto& entry : report.at("kv").items()) {
    if (ghostly(entry.key())) return true;
  }
  return false;
}

void bombard(const std::string& transport, const std::string& victim_driver) {
  const auto wall_start = Clock::now();
  const bool tcp = transport == "tcp";
  const std::string cluster_id = "bombard-" + transport;
  const std::string& logs = log_dir();
  const std::vector<std::uint16_t> ports = {free_port(), free_port(), free_port()};
  const std::set<std::string> all = {"agent1", "agent2", "agent3"};
  std::vector<std::unique_ptr<Agent>> agents;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "agent" + std::to_string(i + 1);
    std::vector<std::string> args = ring_agent_args(i, ports, cluster_id, transport);
    if (i == 0) {
      args.push_back("--driver");
      args.push_back(victim_driver);
    }
    agents.push_back(std::make_unique<Agent>(
        args, logs + "/bombard-" + transport + "-" + victim_driver + "-" + name + ".err"));
  }
  Agent& victim = *agents[0];
  auto dump_logs = [&] {
    for (const auto& a : agents) MESSAGE(a->stderr_text());
  };
  const bool converged_before = poll_until(agents, [&] { return converged(agents, all); });
  if (!converged_before) dump_logs();
  REQUIRE(converged_before);

  // Raised only now: the agents run with the limit they were given.
  raise_fd_limit();
  const auto rss_baseline = proc_status_kib(victim.pid(), "VmRSS");
  const auto hwm_before = proc_status_kib(victim.pid(), "VmHWM");
  REQUIRE(rss_baseline);
  REQUIRE(hwm_before);
  std::uint64_t rss_max_sampled = *rss_baseline;

  // The bombardment, with a membership check every kCheckEvery.
  std::size_t checks = 0, checks_ok = 0;
  std::string first_bad_check;
  std::size_t victim_lines = victim.lines();
  const auto start = Clock::now();
  Bombardment bombardment(tcp, ports[0], cluster_id);
  auto next_check = start + kCheckEvery;
  while (Clock::now() < start + kBombardment) {
    bombardment.turn(Clock::now());
    if (Clock::now() < next_check) continue;
    next_check += kCheckEvery;
    for (auto& a : agents) a->drain();
    ++checks;
    std::string bad;
    if (victim.lines() == victim_lines) bad = "the victim printed no report line";
    victim_lines = victim.lines();
    if (names(victim.latest()->at("live")) != all) bad = "the victim does not list all three live";
    for (std::size_t i = 1; i < agents.size(); ++i) {
      if (names(agents[i]->latest()->at("live")).count("agent1") == 0) {
        bad = "agent" + std::to_string(i + 1) + " does not list agent1 live";
      }
    }
    if (bad.empty()) {
      ++checks_ok;
    } else if (first_bad_check.empty()) {
      first_bad_check = bad + " at t=" + std::to_string(seconds(Clock::now() - start)) + " s";
    }
    if (const auto rss = proc_status_kib(victim.pid(), "VmRSS"))
      rss_max_sampled = std::max(rss_max_sampled, *rss);
  }
  const double bombard_s = seconds(Clock::now() - start);
  bombardment.stop();
  const Tally t = bombardment.tally();

  // Afterwards: the cluster converges again and no forged node got in.
  const bool converged_after = poll_until(agents, [&] { return converged(agents, all); });
  const auto hwm_peak = proc_status_kib(victim.pid(), "VmHWM");
  const auto rss_after = proc_status_kib(victim.pid(), "VmRSS");
  REQUIRE(hwm_peak);
  REQUIRE(rss_after);

  std::ostringstream summary;
  summary << "bombardment " << transport << " (" << victim_driver << " victim), " << bombard_s
          << " s: probes ok " << t.probes_ok << "/" << t.probes << " (attempts " << t.probe_attempts
          << ": closed " << t.attempts_closed << " (within " << t.slowest_close_s
          << " s), timed out " << t.attempts_timed_out << ", wrong answer "
          << t.attempts_wrong_answer << "; slowest " << t.slowest_probe_s << " s, last "
          << (t.last_probe_ok ? "ok" : "FAILED") << "); membership checks " << checks_ok << "/"
          << checks;
  if (tcp) {
    summary << "; half-open opened " << t.half_open_opened << " (closed by the node "
            << t.half_open_closed_by_node << ", open or connecting: min " << t.half_open_min
            << ", mean "
            << static_cast<std::size_t>(t.half_open_held_sum /
                                        static_cast<double>(std::max<std::size_t>(t.loop_turns, 1)))
            << "); frames sent (closed by the node):";
    for (std::size_t k = 0; k < t.attacks.size(); ++k) {
      summary << " " << kAttackNames[k] << "=" << t.attacks[k] << "(" << t.closed_by_node[k] << ")";
    }
  } else {
    std::size_t total = 0;
    for (const auto n : t.datagrams) total += n;
    summary << "; datagrams sent " << total << ":";
    for (std::size_t k = 0; k < t.datagrams.size(); ++k)
      summary << " " << kDatagramNames[k] << "=" << t.datagrams[k];
    summary << ", refused locally " << t.datagrams_refused_locally;
  }
  summary << "; replies bad_cluster=" << t.bad_cluster_replies << " synack=" << t.synack_replies
          << " other=" << t.other_replies << "; socket failures " << t.socket_failures
          << "; victim VmRSS baseline " << mib(*rss_baseline) << ", max sampled "
          << mib(rss_max_sampled) << ", after " << mib(*rss_after) << "; VmHWM before "
          << mib(*hwm_before) << ", peak " << mib(*hwm_peak) << " (bound "
          << AIOCLUSTER_BOMBARD_PEAK_RSS_LIMIT_MIB << " MiB); wall "
          << seconds(Clock::now() - wall_start) << " s";
  MESSAGE(summary.str());

  // Keeps answering gossip: at least 80% of the probes (each up to three
  // attempts of 2 s) got a SynAck, and the last one did.
  CHECK(t.probes >= 10);
  CHECK(t.probes_ok * 5 >= t.probes * 4);
  CHECK(t.last_probe_ok);
  // Stays in its cluster: every check saw it reporting, listing all three
  // live, and listed live by both others.
  INFO("first failed membership check: " << first_bad_check);
  CHECK(checks >= 15);
  CHECK(checks_ok == checks);
  CHECK(converged_after);
  for (const auto& a : agents) {
    REQUIRE(a->latest());
    CHECK_FALSE(mentions_ghost(*a->latest()));
  }
  // The bombardment took place.
  if (tcp) {
    CHECK(t.half_open_opened >= kHalfOpen);
    for (std::size_t k = 0; k < t.attacks.size(); ++k) {
      CAPTURE(kAttackNames[k]);
      // Stalled attacks hold their slot until kAttackLifetime, so how many
      // fit in the bombardment depends on the machine's load (about 40 each
      // on a loaded 2-core machine under ASan, 60 when idle): require only
      // that every kind came again and again.
      CHECK(t.attacks[k] >= 20);
    }
  } else {
    for (std::size_t k = 0; k < t.datagrams.size(); ++k) {
      CAPTURE(kDatagramNames[k]);
      CHECK(t.datagrams[k] >= 500);
    }
  }
  // The victim saw the attack and counted it (its report's counters).
  const Json& counters = victim.latest()->at("counters");
  const auto counter = [&](const char* name) { return counters.at(name).get<std::uint64_t>(); };
  std::string counters_text;
  for (const auto& entry : counters.items()) {
    counters_text += " " + entry.key() + "=" + std::to_string(entry.value().get<std::uint64_t>());
  }
  MESSAGE("victim counters:" << counters_text);
  CHECK(counter("packets_dropped") > 0);
  CHECK(counter("dropped_malformed") > 0);
  CHECK(counter("dropped_wrong_cluster") > 0);
  CHECK(counter("dropped_out_of_place") > 0);
  if (tcp) {
    CHECK(counter("framing_errors") > 0);
    CHECK(counter("connections_evicted") > 0);
  } else {
    CHECK(counter("dropped_rate_limited") > 0);
  }
  // Resident memory stays within its bound.
  CHECK(*hwm_peak <= std::uint64_t{AIOCLUSTER_BOMBARD_PEAK_RSS_LIMIT_MIB} * 1024);

  // Every node still stops cleanly.
  for (auto& a : agents) a->signal(SIGTERM);
  for (std::size_t i = 0; i < agents.size(); ++i) {
    CAPTURE(i);
    CHECK(agents[i]->wait_exit(kPatience) == 0);
  }
  // Sanitizer builds: the agents' reports (UBSan's are not fatal by default).
  for (const auto& a : agents) {
    const std::string err = a->stderr_text();
    CHECK(err.find("runtime error:") == std::string::npos);
    CHECK(err.find("Sanitizer") == std::string::npos);
  }
  if (!converged_after || checks_ok != checks || !t.last_probe_ok) dump_logs();
}

}  // namespace

TEST_CASE("bombardment over TCP") { bombard("tcp", "asio"); }

TEST_CASE("bombardment over UDP") { bombard("udp", "asio"); }

#ifdef AIOCLUSTER_BOMBARD_WITH_LIBEVENT
TEST_CASE("bombardment over TCP with a libevent victim") { bombard("tcp", "libevent"); }
#endif
