// Mixed drivers in one cluster: Asio nodes and libevent nodes in one
// process (an io_context and an event_base run in turns on the test thread)
// gossip over TCP, UDP and mutual TLS, see each other's keys, and see a
// stopped node of the other driver dead.
#include <doctest/doctest.h>
#include <event2/event.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <csignal>
#include <set>

#include "aiocluster/asio/cluster.h"
#include "aiocluster/libevent/cluster.h"
#include "test_pki.h"

namespace ac = aiocluster;
namespace ad = aiocluster::asio_driver;
namespace ld = aiocluster::libevent_driver;
using namespace std::chrono_literals;

namespace {

// Generous: under TSan on a loaded 2-core machine the mutual-TLS cluster took
// more than 20 s to converge; an idle one takes a few seconds.
constexpr ac::Duration kPatience = 60s;

enum class Mode { kTcp, kUdp, kMutualTls };

ac::Config config_for(const std::string& name, std::vector<ac::Address> seeds,
                      const std::string& tls_name) {
  static std::uint64_t generation = 1;
  ac::Config c;
  c.cluster_id = "mixed";
  c.node_id = ac::NodeId{name, generation++, ac::Address{"127.0.0.1", 0}, tls_name};
  c.seeds = std::move(seeds);
  // As the conformance suite: fast rounds, a detector prior of a few rounds.
  c.gossip_interval = 50ms;
  c.failure_detector.initial_interval = 200ms;
  return c;
}

// Both drivers take the same option values.
template <typename Options, typename Transport, typename TlsOptions>
Options options_for(Mode mode, const std::optional<ac::conformance::TlsFiles>& files) {
  Options o;
  o.transport = mode == Mode::kUdp ? Transport::kUdp : Transport::kTcp;
  if (files) o.tls = TlsOptions{files->cert, files->key, files->ca, true, {}, false};
  return o;
}

// One member of either driver, seen through what the test needs.
struct Member {
  std::string name;
  std::unique_ptr<ad::Cluster> asio;
  std::unique_ptr<ld::Cluster> libevent;

  const ac::Node& node() const { return asio ? asio->node() : libevent->node(); }
  ac::Address address() const { return asio ? asio->local_address() : libevent->local_address(); }
  ac::NodeId id() const { return asio ? asio->self_id() : libevent->self_id(); }
  void stop() { asio ? asio->stop() : libevent->stop(); }
};

class Loops {
 public:
  Loops() : base_(event_base_new()) { std::signal(SIGPIPE, SIG_IGN); }
  ~Loops() { event_base_free(base_); }
  Loops(const Loops&) = delete;
  Loops& operator=(const Loops&) = delete;

  asio::io_context& io() { return io_; }
  event_base* base() { return base_; }

  template <typename Done>
  bool run_until(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + kPatience;
    const timeval slice{0, 2000};
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      if (io_.stopped()) io_.restart();
      io_.run_for(2ms);
      event_base_loopexit(base_, &slice);
      event_base_dispatch(base_);
    }
    return done();
  }

 private:
  asio::io_context io_;
  event_base* base_;
};

bool sees_all(const std::vector<Member>& members, const std::vector<std::size_t>& alive) {
  std::set<std::string> names;
  for (const std::size_t i : alive) names.insert(members[i].name);
  for (const std::size_t i : alive) {
    std::set<std::string> live;
    for (const auto& id : members[i].node().live_nodes()) live.insert(id.name);
    if (live != names) return false;
    for (const std::size_t j : alive) {
      if (!ad::Cluster::has_key_value(members[i].node(), members[j].name, "driver",
                                      members[j].asio ? "asio" : "libevent")) {
        return false;
      }
    }
  }
  return true;
}

bool dead_in(const Member& viewer, const ac::NodeId& id) {
  const auto dead = viewer.node().dead_nodes();
  return std::find(dead.begin(), dead.end(), id) != dead.end();
}

void mixed_cluster(Mode mode) {
  std::optional<ac::conformance::TestPki> pki;
  if (mode == Mode::kMutualTls) pki.emplace();
  Loops loops;
  std::vector<Member> members;
  // asio1 <- libevent1 <- asio2 <- libevent2: each seeded with the previous
  // one, so every exchange path crosses drivers at least once.
  for (int i = 0; i < 4; ++i) {
    const bool asio = i % 2 == 0;
    Member m;
    m.name = std::string(asio ? "asio" : "libevent") + std::to_string(i / 2 + 1);
    const std::string tls_name = pki ? m.name + ".test" : "";
    std::optional<ac::conformance::TlsFiles> files;
    if (pki) files = pki->issue(m.name, {tls_name});
    std::vector<ac::Address> seeds;
    if (!members.empty()) seeds.push_back(members.back().address());
    const ac::KeyValues kv = {{"driver", asio ? "asio" : "libevent"}};
    if (asio) {
      m.asio = std::make_unique<ad::Cluster>(
          loops.io(), config_for(m.name, seeds, tls_name), kv,
          options_for<ad::Options, ad::Transport, ad::TlsOptions>(mode, files));
      m.asio->start();
    } else {
      m.libevent = std::make_unique<ld::Cluster>(
          loops.base(), config_for(m.name, seeds, tls_name), kv,
          options_for<ld::Options, ld::Transport, ld::TlsOptions>(mode, files));
      m.libevent->start();
    }
    members.push_back(std::move(m));
  }
  REQUIRE(loops.run_until([&] { return sees_all(members, {0, 1, 2, 3}); }));
  if (pki) {
    for (const auto& m : members) CHECK(m.node().stats().dropped_tls_name == 0);
  }

  // A libevent node stops: the Asio nodes see it dead, and the other way round.
  const ac::NodeId gone_libevent = members[3].id();
  members[3].stop();
  CHECK(loops.run_until(
      [&] { return dead_in(members[0], gone_libevent) && dead_in(members[2], gone_libevent); }));
  const ac::NodeId gone_asio = members[2].id();
  members[2].stop();
  CHECK(loops.run_until([&] { return dead_in(members[1], gone_asio); }));
  CHECK(loops.run_until([&] { return sees_all(members, {0, 1}); }));
  for (auto& m : members) m.stop();
  CHECK(loops.run_until(
      [&] { return event_base_get_num_events(loops.base(), EVENT_BASE_COUNT_ADDED) == 0; }));
}

}  // namespace

TEST_CASE("mixed drivers: Asio and libevent nodes form one cluster over TCP") {
  mixed_cluster(Mode::kTcp);
}

TEST_CASE("mixed drivers: Asio and libevent nodes form one cluster over UDP") {
  mixed_cluster(Mode::kUdp);
}

TEST_CASE("mixed drivers: Asio and libevent nodes form one cluster over mutual TLS") {
  mixed_cluster(Mode::kMutualTls);
}
