// The sealed bombardment (issue 17): three aiocluster-node processes share a
// keyring over UDP, and node 1 (the victim) is flooded with what an attacker
// without the key can send: plaintext Syns whose digests name hundreds of
// phantom nodes (without a keyring, the attack that fills a node's state),
// envelopes naming the cluster's key id with a made-up body (forged),
// envelopes under unknown key ids, short envelopes, garbage, and real
// sealed packets captured on the wire and sent again (replayed). The
// cluster must stay whole, no phantom may appear anywhere, every kind must
// be refused under its own counter, and no replay may be answered.
//
// The replays are real: a fourth agent holding the key (the witness) is
// seeded with a relay socket of this test, which passes each of the
// witness's sealed Syns to the victim once (the victim answers it: a fresh
// packet) and keeps it; once the witness is killed, the kept packets are
// sent again, many times: any answer to them, or the dead witness seen live
// again, fails the test.
#include <aiocluster/codec.h>
#include <aiocluster/messages.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent.h"
#include "keyring_files.h"

namespace {

namespace ac = aiocluster;
using namespace aiocluster::testing;

constexpr auto kAttack = 4s;
constexpr auto kLookEvery = 100ms;
constexpr int kPhantomsPerSyn = 40;
constexpr int kReplaysPerPacket = 5;
constexpr std::size_t kCaptured = 12;
const std::set<std::string> kMembers = {"agent1", "agent2", "agent3"};

// A non-blocking UDP socket bound to an ephemeral port of 127.0.0.1.
class Udp {
 public:
  Udp() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in addr = loopback(0);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~Udp() { ::close(fd_); }
  Udp(const Udp&) = delete;
  Udp& operator=(const Udp&) = delete;

  std::uint16_t port() const { return port_; }
  // Best effort, as an attacker sends: a full buffer drops it.
  void send(const ac::Bytes& bytes, std::uint16_t to) const {
    const sockaddr_in addr = loopback(to);
    (void)::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&addr),
                   sizeof addr);
  }
  // The next datagram waiting and its source port, if any.
  std::optional<std::pair<ac::Bytes, std::uint16_t>> receive() const {
    ac::Bytes buf(65'536);
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t n =
        ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<std::size_t>(n));
    return std::make_pair(std::move(buf), ntohs(from.sin_port));
  }

 private:
  static sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return addr;
  }

  int fd_;
  std::uint16_t port_ = 0;
};

// What the attacker makes, from one seeded generator.
class Forger {
 public:
  Forger(std::string cluster_id, const ac::SealKey& key)
      : cluster_id_(std::move(cluster_id)), key_id_(ac::seal_key_id(key)) {}

  // A plaintext Syn naming phantom nodes.
  ac::Bytes phantom_syn() {
    ac::Digest digest;
    for (int i = 0; i < kPhantomsPerSyn; ++i) {
      const auto n = phantoms_++;
      digest.node_digests.push_back(
          ac::NodeDigest{ac::NodeId{"phantom-" + std::to_string(n), n + 1,
                                    ac::Address{"10.66." + std::to_string(n / 250 % 250) + "." +
                                                    std::to_string(n % 250 + 1),
                                                7000},
                                    ""},
                         5, 0, 3});
    }
    return ac::encode(ac::Packet{cluster_id_, ac::Syn{std::move(digest)}});
  }
  // A well-formed envelope naming `key_id`, stamped now, with a body and tag
  // of random bytes.
  ac::Bytes envelope(std::uint32_t key_id) {
    ac::Bytes out = {0xA7, 1};
    put(out, key_id, 4);
    put(out, rng_(), 8);
    put(out, ++counter_, 4);
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    put(out, static_cast<std::uint64_t>(now_ms), 8);
    append_random(out, 200 + rng_() % 800);
    return out;
  }
  ac::Bytes forged() { return envelope(key_id_); }
  ac::Bytes unknown_key() {
    return envelope(key_id_ + 1 + static_cast<std::uint32_t>(rng_() % 1000));
  }
  // Claims to be sealed, too short for an envelope.
  ac::Bytes short_envelope() {
    ac::Bytes out = {0xA7, 1};
    append_random(out, rng_() % 30);
    return out;
  }
  ac::Bytes garbage() {
    ac::Bytes out;
    append_random(out, 1 + rng_() % 1400);
    if (out[0] == 0xA7) out[0] = 0;
    return out;
  }

 private:
  static void put(ac::Bytes& out, std::uint64_t value, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
  }
  void append_random(ac::Bytes& out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(rng_()));
  }

  std::string cluster_id_;
  std::uint32_t key_id_;
  std::mt19937_64 rng_{0x5eed'5ea1};
  std::uint64_t phantoms_ = 0;
  std::uint32_t counter_ = 0;
};

// All three live everywhere, and nothing else but the killed witness, dead.
bool whole(const std::vector<std::unique_ptr<Agent>>& agents) {
  for (const auto& a : agents) {
    const Json& j = *a->latest();
    if (names(j.at("live")) != kMembers) return false;
    for (const auto& dead : names(j.at("dead"))) {
      if (dead != "witness") return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("sealed bombardment over UDP: forged, replayed and garbage packets") {
  const ac::SealKey key = random_key();
  const std::string keyring = write_keyring(log_dir() + "/sealed-bombard.keys", {key});
  const std::string cluster_id = "sealed-bombard";
  const std::vector<std::uint16_t> ports = {free_port(), free_port(), free_port()};
  const std::uint16_t victim = ports[0];
  std::vector<std::unique_ptr<Agent>> agents;
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> args = ring_agent_args(i, ports, cluster_id, "udp");
    args.insert(args.end(), {"--keyring", keyring});
    agents.push_back(std::make_unique<Agent>(
        args, log_dir() + "/sealed-bombard-agent" + std::to_string(i + 1) + ".err"));
  }
  const bool formed = poll_until(agents, [&] { return converged(agents, kMembers); });
  if (!formed) {
    for (const auto& a : agents) MESSAGE(a->stderr_text());
  }
  REQUIRE(formed);

  // Capture: the witness's sealed Syns pass through the relay to the victim
  // once each, and the victim answers them.
  Udp relay;
  const std::uint16_t witness_port = free_port();
  Agent witness(
      {"--name", "witness", "--listen", "127.0.0.1:" + std::to_string(witness_port), "--seed",
       "127.0.0.1:" + std::to_string(relay.port()), "--cluster-id", cluster_id, "--transport",
       "udp", "--gossip-interval-ms", "50", "--report-ms", "100", "--keyring", keyring},
      log_dir() + "/sealed-bombard-witness.err");
  std::vector<ac::Bytes> captured;
  std::size_t answered = 0;
  const auto capture_deadline = Clock::now() + kPatience;
  while ((captured.size() < kCaptured || answered < kCaptured / 2) &&
         Clock::now() < capture_deadline) {
    while (auto got = relay.receive()) {
      if (got->second == witness_port && captured.size() < kCaptured) {
        REQUIRE(got->first.at(0) == 0xA7);
        relay.send(got->first, victim);
        captured.push_back(std::move(got->first));
      } else if (got->second == victim) {
        ++answered;
      }
    }
    std::this_thread::sleep_for(5ms);
  }
  REQUIRE(captured.size() == kCaptured);
  REQUIRE(answered >= kCaptured / 2);
  witness.signal(SIGKILL);
  REQUIRE(witness.wait_exit(kPatience).has_value());
  // The victim learnt of the witness from its Syns; once it is dead
  // everywhere, a replay that got in would show it live again.
  REQUIRE(poll_until(agents, [&] { return whole(agents); }));
  while (relay.receive()) {
  }

  // The attack, while the cluster is looked at every kLookEvery.
  Udp attacker;
  Forger forger(cluster_id, key);
  std::size_t sent = 0, replays = 0, replies_to_replays = 0, looks = 0, broken_looks = 0;
  const auto end = Clock::now() + kAttack;
  auto next_look = Clock::now();
  while (Clock::now() < end) {
    attacker.send(forger.phantom_syn(), victim);
    attacker.send(forger.forged(), victim);
    attacker.send(forger.unknown_key(), victim);
    attacker.send(forger.short_envelope(), victim);
    attacker.send(forger.garbage(), victim);
    sent += 5;
    if (replays < captured.size() * kReplaysPerPacket) {
      relay.send(captured[replays % captured.size()], victim);
      ++replays;
    }
    while (relay.receive()) ++replies_to_replays;
    if (Clock::now() >= next_look) {
      for (auto& a : agents) a->drain();
      ++looks;
      if (!whole(agents)) ++broken_looks;
      next_look += kLookEvery;
    }
    std::this_thread::sleep_for(2ms);
  }
  // Late answers to the last replays would arrive now.
  std::this_thread::sleep_for(300ms);
  while (relay.receive()) ++replies_to_replays;

  // The victim counted every kind, the cluster is whole, and nobody lists a
  // phantom (the witness, which holds the key, may appear: it is no phantom).
  const bool counted = poll_until(agents, [&] {
    return report_counter(*agents[0], "dropped_seal_replayed") > 0 &&
           report_counter(*agents[0], "dropped_unsealed") > 0 &&
           report_counter(*agents[0], "dropped_seal_forged") > 0 &&
           report_counter(*agents[0], "dropped_seal_unknown_key") > 0 &&
           report_counter(*agents[0], "dropped_seal_malformed") > 0 && whole(agents);
  });
  const Json& v = agents[0]->latest()->at("counters");
  INFO("sent " << sent << ", replays " << replays << ", looks " << looks << ", counters "
               << v.dump());
  MESSAGE("sealed bombardment: sent " << sent << " hostile datagrams and " << replays
                                      << " replays; victim counters " << v.dump());
  CHECK(counted);
  CHECK(replays == captured.size() * kReplaysPerPacket);
  CHECK(replies_to_replays == 0);
  CHECK(broken_looks == 0);
  CHECK(v.at("dropped_seal_replayed").get<std::uint64_t>() <= replays);
  std::set<std::string> allowed = kMembers;
  allowed.insert("witness");
  for (const auto& a : agents) {
    for (const auto& name : names_seen(*a->latest())) CHECK_MESSAGE(allowed.count(name) == 1, name);
  }
  CHECK(converged(agents, kMembers));

  for (auto& a : agents) a->signal(SIGTERM);
  for (auto& a : agents) CHECK(a->wait_exit(kPatience) == 0);
}
