// Mixed clusters, one process per node on 127.0.0.1: aiocluster-node agents
// (Asio and libevent drivers) and emulated Python aiocluster 1.1.0 nodes
// (python_peer/python_peer.py, which rebuilds the real 1.1.0 packets of
// fixtures/ byte for byte). Conditions are polled with generous timeouts;
// how long convergence took is printed, never asserted.
//
// AIOCLUSTER_TEST_NODE_BINARY=/path/to/aiocluster-node runs the same tests
// against another build of the agent (an older one, to see a bug again).
#include <doctest/doctest.h>

#include <cstdio>
#include <map>

#include "agent.h"

namespace {

using namespace aiocluster::testing;

constexpr std::size_t kManyKeys = 3000;

std::unique_ptr<Agent> python_node(std::vector<std::string> args, const std::string& err) {
  args.insert(args.begin(), AIOCLUSTER_PYTHON_PEER);
  return std::make_unique<Agent>(AIOCLUSTER_PYTHON3, std::move(args), err);
}

std::string key_of(std::size_t i) {
  char key[16];
  std::snprintf(key, sizeof key, "k%05zu", i);
  return key;
}

// What the emulated peer's --kv-count generates, and the agent's own keys:
// about 40 bytes each.
std::string value_of(const std::string& owner_prefix, std::size_t i) {
  return owner_prefix + "-value-" + key_of(i).substr(1) + "-" + std::string(24, 'x');
}

// How many of `owner`'s kManyKeys keys `observer`'s latest report holds with
// their right values.
std::size_t keys_held(const Agent& observer, const std::string& owner, const std::string& prefix) {
  if (!observer.latest()) return 0;
  const Json& kv = observer.latest()->at("kv");
  const auto it = kv.find(owner);
  if (it == kv.end()) return 0;
  std::size_t held = 0;
  const Json& keys = *it;
  for (std::size_t i = 0; i < kManyKeys; ++i) {
    const auto k = keys.find(key_of(i));
    if (k != keys.end() && *k == value_of(prefix, i)) ++held;
  }
  return held;
}

void every_key_of_the_other(const std::string& driver) {
  const std::string& logs = log_dir();
  const std::uint16_t cpp_port = free_port();
  const std::uint16_t py_port = free_port();
  const std::string cpp = "127.0.0.1:" + std::to_string(cpp_port);
  const std::string py = "127.0.0.1:" + std::to_string(py_port);
  std::vector<std::string> agent_args = {"--name",
                                         "cpp",
                                         "--listen",
                                         cpp,
                                         "--seed",
                                         py,
                                         "--cluster-id",
                                         "interop",
                                         "--gossip-interval-ms",
                                         "100",
                                         "--report-ms",
                                         "200",
                                         "--driver",
                                         driver};
  for (std::size_t i = 0; i < kManyKeys; ++i) {
    agent_args.push_back("--kv");
    agent_args.push_back(key_of(i) + "=" + value_of("cpp", i));
  }
  std::vector<std::unique_ptr<Agent>> nodes;
  const auto started = Clock::now();
  nodes.push_back(std::make_unique<Agent>(agent_args, logs + "/3000-" + driver + "-cpp.err"));
  nodes.push_back(python_node({"--name", "py", "--listen", py, "--seed", cpp, "--cluster-id",
                               "interop", "--gossip-interval-ms", "100", "--report-ms", "200",
                               "--kv-count", std::to_string(kManyKeys)},
                              logs + "/3000-" + driver + "-py.err"));
  Agent& agent = *nodes[0];
  Agent& python = *nodes[1];
  // When each first held every key of the other, in seconds since both started.
  std::optional<double> agent_done;
  std::optional<double> python_done;
  const bool ok = poll_until(nodes, [&] {
    const double now = std::chrono::duration<double>(Clock::now() - started).count();
    if (!agent_done && keys_held(agent, "py", "py") == kManyKeys) agent_done = now;
    if (!python_done && keys_held(python, "cpp", "cpp") == kManyKeys) python_done = now;
    return agent_done && python_done;
  });
  INFO("agent holds " << keys_held(agent, "py", "py") << " of the Python node's keys, which holds "
                      << keys_held(python, "cpp", "cpp") << " of the agent's");
  if (!ok) {
    MESSAGE(agent.stderr_text());
    MESSAGE(python.stderr_text());
  }
  REQUIRE(ok);
  MESSAGE("driver " << driver << ": the agent held all " << kManyKeys
                    << " keys of the Python node after " << *agent_done
                    << " s, the Python node all of the agent's after " << *python_done
                    << " s (processes started together, reports every 200 ms)");
  // The agent read packets larger than it would send, and did not trust the
  // cut deltas' claims.
  const Json& counters = agent.latest()->at("counters");
  CHECK(counters.at("packets_in_above_max_payload").get<std::uint64_t>() > 0);
  CHECK(counters.at("completeness_capped").get<std::uint64_t>() > 0);
  CHECK(counters.at("framing_errors") == 0);
  // Python 1.1.0 never announces the compact digest: none was sent to it.
  CHECK(counters.at("compact_digests_out") == 0);
  for (auto& n : nodes) n->signal(SIGTERM);
  for (auto& n : nodes) CHECK(n->wait_exit(kPatience) == 0);
}

struct Member {
  std::string name;
  std::string kind;  // asio, libevent or python
};

enum class Security {
  kTcp,
  kMutualTls,  // a certificate per node, naming its tls_name and 127.0.0.1
  // One certificate for every node, named cluster.test only: servers are
  // verified against --tls-server-hostname, as Python clusters often do.
  kSharedName,
};

// Members in a ring (each seeded with the one before): they converge, then a
// killed Python node and a killed agent are each reported dead by every
// survivor, and the rest stop cleanly. Two agents speak the compact digest
// (proto/README.md) and use it between themselves; agent-libevent runs
// without it, like the Python nodes.
void mixed_cluster(Security security) {
  const bool mutual_tls = security != Security::kTcp;
  const std::vector<Member> members = {{"agent-asio", "asio"},
                                       {"py-1", "python"},
                                       {"agent-libevent", "libevent"},
                                       {"py-2", "python"},
                                       {"agent-asio-2", "asio"}};
  std::optional<aiocluster::conformance::TestPki> pki;
  std::optional<aiocluster::conformance::TlsFiles> shared;
  if (mutual_tls) pki.emplace();
  if (security == Security::kSharedName) {
    shared = pki->issue_exact("cluster", "cluster.test", {"cluster.test"}, {});
  }
  const std::string& logs = log_dir();
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < members.size(); ++i) ports.push_back(free_port());
  std::vector<std::unique_ptr<Agent>> nodes;
  std::set<std::string> all;
  for (std::size_t i = 0; i < members.size(); ++i) {
    const Member& m = members[i];
    all.insert(m.name);
    std::vector<std::string> args = {
        "--name",
        m.name,
        "--listen",
        "127.0.0.1:" + std::to_string(ports[i]),
        "--seed",
        "127.0.0.1:" + std::to_string(ports[(i + members.size() - 1) % members.size()]),
        "--cluster-id",
        "interop-mixed",
        "--gossip-interval-ms",
        "100",
        "--report-ms",
        "100",
        "--kv",
        "role=role-of-" + m.name};
    if (security == Security::kMutualTls) {
      const auto files = pki->issue(m.name, {m.name + ".test"});
      args.insert(args.end(), {"--tls-cert", files.cert, "--tls-key", files.key, "--tls-ca",
                               files.ca, "--tls-name", m.name + ".test"});
    } else if (security == Security::kSharedName) {
      args.insert(args.end(),
                  {"--tls-cert", shared->cert, "--tls-key", shared->key, "--tls-ca", shared->ca,
                   "--tls-name", "cluster.test", "--tls-server-hostname", "cluster.test"});
    }
    const std::string err =
        logs + "/mixed-" + std::to_string(static_cast<int>(security)) + "-" + m.name + ".err";
    if (m.kind == "python") {
      nodes.push_back(python_node(args, err));
    } else {
      args.push_back("--driver");
      args.push_back(m.kind);
      if (m.name == "agent-libevent") args.push_back("--no-compact-digest");
      nodes.push_back(std::make_unique<Agent>(args, err));
    }
  }
  const bool ok = poll_until(nodes, [&] { return converged(nodes, all); });
  if (!ok) {
    for (const auto& n : nodes) MESSAGE(n->stderr_text());
  }
  REQUIRE(ok);
  // The two agents with the extension used it between themselves; no agent
  // dropped a packet as malformed, nor did the one without it see any.
  CHECK(poll_until(nodes, [&] {
    return nodes[0]->latest()->at("counters").at("compact_digests_in") > 0 &&
           nodes[4]->latest()->at("counters").at("compact_digests_in") > 0;
  }));
  for (std::size_t i : {std::size_t{0}, std::size_t{2}, std::size_t{4}}) {
    const Json& counters = nodes[i]->latest()->at("counters");
    CHECK(counters.at("dropped_malformed") == 0);
    CHECK(counters.at("compact_digests_rejected") == 0);
  }
  CHECK(nodes[2]->latest()->at("counters").at("compact_digests_out") == 0);

  // Kill a Python node, then an agent: every survivor reports each dead.
  std::set<std::string> dead;
  for (const std::size_t victim : {std::size_t{1}, std::size_t{2}}) {
    CAPTURE(members[victim].name);
    nodes[victim]->signal(SIGKILL);
    REQUIRE(nodes[victim]->wait_exit(kPatience).has_value());
    dead.insert(members[victim].name);
    std::set<std::string> live;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (dead.contains(members[i].name)) continue;
      live.insert(members[i].name);
    }
    CHECK(poll_until(nodes, [&] {
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        if (dead.contains(members[i].name)) continue;
        const Json& j = *nodes[i]->latest();
        if (names(j.at("dead")) != dead || names(j.at("live")) != live) return false;
      }
      return true;
    }));
  }
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (!dead.contains(members[i].name)) nodes[i]->signal(SIGTERM);
  }
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (!dead.contains(members[i].name)) CHECK(nodes[i]->wait_exit(kPatience) == 0);
  }
}

}  // namespace

TEST_CASE("an Asio agent and a Python 1.1.0 node, 3,000 keys each, hold every key of the other") {
  every_key_of_the_other("asio");
}

TEST_CASE(
    "a libevent agent and a Python 1.1.0 node, 3,000 keys each, hold every key of the other") {
  every_key_of_the_other("libevent");
}

TEST_CASE("agents and Python 1.1.0 nodes over TCP converge and report killed ones dead") {
  mixed_cluster(Security::kTcp);
}

TEST_CASE("agents and Python 1.1.0 nodes over mutual TLS converge and report killed ones dead") {
  mixed_cluster(Security::kMutualTls);
}

TEST_CASE(
    "agents and Python 1.1.0 nodes sharing one certificate name (--tls-server-hostname) converge "
    "and report killed ones dead") {
  mixed_cluster(Security::kSharedName);
}
