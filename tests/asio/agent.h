// The node agent under test: aiocluster-node processes (AIOCLUSTER_NODE_BINARY)
// whose JSON report lines are read and polled, and the three-agent scenario
// (converge, kill one, the others report it dead, clean exits) shared by the
// Asio agent tests and the mixed-driver agent tests of tests/libevent.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_pki.h"

extern char** environ;

namespace aiocluster::testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
// The agent's report lines, read with the JSON library the agent writes
// them with. at() throws on a missing key, which a REQUIRE reports.
using Json = nlohmann::json;

inline constexpr auto kPatience = 30s;

// A directory of this test process's own for the agents' stderr files,
// removed when the process exits.
inline const std::string& log_dir() {
  struct Dir {
    Dir() {
      path = (std::filesystem::temp_directory_path() / "aiocluster-agent-test-XXXXXX").string();
      if (::mkdtemp(path.data()) == nullptr) path = std::filesystem::temp_directory_path().string();
    }
    ~Dir() {
      std::error_code ignored;
      if (path != std::filesystem::temp_directory_path().string())
        std::filesystem::remove_all(path, ignored);
    }
    std::string path;
  };
  static const Dir dir;
  return dir.path;
}

// A port free for both TCP and UDP on 127.0.0.1 right now.
inline std::uint16_t free_port() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
    const int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    std::uint16_t port = 0;
    if (::bind(tcp, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(tcp, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
        ::bind(udp, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      port = ntohs(addr.sin_port);
    }
    ::close(tcp);
    ::close(udp);
    if (port != 0) return port;
  }
  FAIL("no free port");
  return 0;
}

// The aiocluster-node under test: AIOCLUSTER_NODE_BINARY, unless the
// environment names another build in AIOCLUSTER_TEST_NODE_BINARY (to run a
// test against an older agent, say).
inline std::string node_binary() {
  const char* other = std::getenv("AIOCLUSTER_TEST_NODE_BINARY");
  return other != nullptr && *other != '\0' ? other : AIOCLUSTER_NODE_BINARY;
}

// One aiocluster-node process (or another program printing the same report
// lines): stdout is read line by line, stderr goes to a file.
class Agent {
 public:
  Agent(std::vector<std::string> args, const std::string& stderr_path)
      : Agent(node_binary(), std::move(args), stderr_path) {}

  // `program` run with `args`.
  Agent(const std::string& program, std::vector<std::string> args, const std::string& stderr_path)
      : stderr_path_(stderr_path) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    args.insert(args.begin(), program);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    REQUIRE(rc == 0);
    out_ = fds[0];
    ::fcntl(out_, F_SETFL, ::fcntl(out_, F_GETFL) | O_NONBLOCK);
    // Room for several report lines of thousands of keys: an agent blocked
    // on a full pipe stops gossiping until the test reads. 1 MiB is the
    // unprivileged maximum; a smaller pipe only makes the test slower.
    ::fcntl(out_, F_SETPIPE_SZ, 1 << 20);
  }

  ~Agent() {
    if (!exited_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    ::close(out_);
  }
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Reads whatever stdout has and parses the newest complete line, which
  // must be valid JSON. Only the newest is parsed: report lines of thousands
  // of keys parse slower in a debug build than the agent prints them, and a
  // reader that falls behind fills the pipe and stalls the agent's loop.
  void drain() {
    char buf[65536];
    while (true) {
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) break;
      pending_.append(buf, static_cast<std::size_t>(n));
    }
    const std::size_t last_nl = pending_.rfind('\n');
    if (last_nl == std::string::npos) return;
    const std::size_t start = last_nl == 0 ? std::string::npos : pending_.rfind('\n', last_nl - 1);
    const std::size_t first = start == std::string::npos ? 0 : start + 1;
    lines_ += static_cast<std::size_t>(std::count(
        pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(last_nl) + 1, '\n'));
    const std::string line = pending_.substr(first, last_nl - first);
    pending_.erase(0, last_nl + 1);
    INFO("line: " << line);
    REQUIRE_NOTHROW(latest_ = Json::parse(line));
  }

  const std::optional<Json>& latest() const { return latest_; }
  std::size_t lines() const { return lines_; }
  void signal(int sig) { ::kill(pid_, sig); }
  pid_t pid() const { return pid_; }

  // The exit status, once the process has exited within `timeout`. Reads
  // its output meanwhile: a process blocked on a full pipe cannot exit.
  std::optional<int> wait_exit(Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      drain();
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        drain();
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(10ms);
    }
    return std::nullopt;
  }

  std::string stderr_text() const {
    std::ifstream in(stderr_path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool exited_ = false;
  std::string stderr_path_;
  std::string pending_;
  std::optional<Json> latest_;
  std::size_t lines_ = 0;
};

inline std::set<std::string> names(const Json& array) {
  std::set<std::string> out;
  for (const auto& v : array) out.insert(v.get<std::string>());
  return out;
}

// Every node name a report line lists: live, dead, or holding keys.
inline std::set<std::string> names_seen(const Json& line) {
  std::set<std::string> seen = names(line.at("live"));
  for (const auto& n : names(line.at("dead"))) seen.insert(n);
  for (const auto& [name, keys] : line.at("kv").items()) seen.insert(name);
  return seen;
}

// A counter of the agent's latest report line.
inline std::uint64_t report_counter(const Agent& agent, const char* name) {
  return agent.latest()->at("counters").at(name).get<std::uint64_t>();
}

// Polls every agent's stdout until `done()` or the patience runs out.
template <typename Done>
bool poll_until(std::vector<std::unique_ptr<Agent>>& agents, Done done) {
  const auto deadline = Clock::now() + kPatience;
  while (Clock::now() < deadline) {
    for (auto& a : agents) a->drain();
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// Every agent's latest line lists all three live, none dead, and every
// node's "role" key.
inline bool converged(const std::vector<std::unique_ptr<Agent>>& agents,
                      const std::set<std::string>& all) {
  for (const auto& a : agents) {
    if (!a->latest()) return false;
    const Json& j = *a->latest();
    if (names(j.at("live")) != all) return false;
    for (const auto& n : all) {
      const Json& kv = j.at("kv");
      auto it = kv.find(n);
      if (it == kv.end()) return false;
      auto role = it->find("role");
      if (role == it->end() || *role != "role-of-" + n) return false;
    }
  }
  return true;
}

struct Run {
  std::string transport;  // tcp, udp
  bool mutual_tls = false;
  // --driver of each agent (asio, libevent); empty: the agent's default.
  std::vector<std::string> drivers = {};
  std::size_t killed = 2;  // the agent killed once they converged
  // The agent run with --no-compact-digest (proto/README.md), if any: the
  // other two use the compact digest between themselves, never with it.
  std::optional<std::size_t> without_compact_digest = std::nullopt;
  // The agent run with --no-aligned-digest, if any: it speaks the compact
  // digest but not its aligned form (proto/README.md 2.3), like our nodes
  // that predate it; the other two (with every extension) use aligned
  // digests between themselves, never with it.
  std::optional<std::size_t> without_aligned_digest = std::nullopt;
};

// The flags of agent i+1 of three on 127.0.0.1 `ports`, each seeded with the
// one before it, gossiping every 100 ms, reporting every 100 ms, with key
// "role" = "role-of-agent<i+1>".
inline std::vector<std::string> ring_agent_args(int i, const std::vector<std::uint16_t>& ports,
                                                const std::string& cluster_id,
                                                const std::string& transport) {
  const auto at = [&](int k) { return std::to_string(ports[static_cast<std::size_t>(k % 3)]); };
  const std::string name = "agent" + std::to_string(i + 1);
  return {"--name",
          name,
          "--listen",
          "127.0.0.1:" + at(i),
          "--seed",
          "127.0.0.1:" + at(i + 2),
          "--cluster-id",
          cluster_id,
          "--transport",
          transport,
          "--gossip-interval-ms",
          "100",
          "--report-ms",
          "100",
          "--kv",
          "role=role-of-" + name};
}

inline void three_agents(const Run& run) {
  std::optional<aiocluster::conformance::TestPki> pki;
  if (run.mutual_tls) pki.emplace();
  const std::string& logs = log_dir();
  std::vector<std::uint16_t> ports = {free_port(), free_port(), free_port()};
  std::vector<std::unique_ptr<Agent>> agents;
  const std::set<std::string> all = {"agent1", "agent2", "agent3"};
  for (int i = 0; i < 3; ++i) {
    const std::string name = "agent" + std::to_string(i + 1);
    std::vector<std::string> args =
        ring_agent_args(i, ports, "agent-test-" + run.transport, run.transport);
    if (!run.drivers.empty()) {
      args.push_back("--driver");
      args.push_back(run.drivers[static_cast<std::size_t>(i)]);
    }
    if (run.without_compact_digest == static_cast<std::size_t>(i)) {
      args.push_back("--no-compact-digest");
    }
    if (run.without_aligned_digest == static_cast<std::size_t>(i)) {
      args.push_back("--no-aligned-digest");
    }
    if (pki) {
      const auto files = pki->issue(name, {name + ".test"});
      for (const auto& extra :
           {std::string("--tls-cert"), files.cert, std::string("--tls-key"), files.key,
            std::string("--tls-ca"), files.ca, std::string("--tls-name"), name + ".test"}) {
        args.push_back(extra);
      }
    }
    agents.push_back(std::make_unique<Agent>(
        args, logs + "/" + run.transport + (run.mutual_tls ? "-tls-" : "-") + name + ".err"));
  }
  const bool ok = poll_until(agents, [&] { return converged(agents, all); });
  if (!ok) {
    for (const auto& a : agents) MESSAGE(a->stderr_text());
  }
  REQUIRE(ok);
  auto counter = [&](std::size_t i, const char* name) {
    return agents[i]->latest()->at("counters").at(name).get<std::uint64_t>();
  };
  if (const auto legacy = run.without_compact_digest) {
    CHECK(poll_until(agents, [&] {
      for (std::size_t i = 0; i < agents.size(); ++i) {
        if (i != *legacy && counter(i, "compact_digests_in") == 0) return false;
      }
      return true;
    }));
    CHECK(counter(*legacy, "compact_digests_out") == 0);
    CHECK(counter(*legacy, "compact_digests_in") == 0);
    for (std::size_t i = 0; i < agents.size(); ++i) CHECK(counter(i, "dropped_malformed") == 0);
  }
  if (const auto older = run.without_aligned_digest) {
    CHECK(poll_until(agents, [&] {
      for (std::size_t i = 0; i < agents.size(); ++i) {
        if (i != *older && counter(i, "aligned_digests_in") == 0) return false;
        if (i == *older && counter(i, "compact_digests_in") == 0) return false;
      }
      return true;
    }));
    CHECK(counter(*older, "aligned_digests_out") == 0);
    CHECK(counter(*older, "aligned_digests_in") == 0);
    for (std::size_t i = 0; i < agents.size(); ++i) {
      CHECK(counter(i, "dropped_malformed") == 0);
      CHECK(counter(i, "compact_digests_rejected") == 0);
    }
  }

  // A killed agent (no goodbye) is reported dead by both others.
  agents[run.killed]->signal(SIGKILL);
  REQUIRE(agents[run.killed]->wait_exit(kPatience).has_value());
  const std::string killed = "agent" + std::to_string(run.killed + 1);
  std::set<std::string> survivors = all;
  survivors.erase(killed);
  std::vector<std::unique_ptr<Agent>> rest;
  for (std::size_t i = 0; i < agents.size(); ++i) {
    if (i != run.killed) rest.push_back(std::move(agents[i]));
  }
  CHECK(poll_until(rest, [&] {
    for (const auto& a : rest) {
      const Json& j = *a->latest();
      if (names(j.at("dead")) != std::set<std::string>{killed}) return false;
      if (names(j.at("live")) != survivors) return false;
    }
    return true;
  }));

  // SIGTERM and SIGINT are clean exits.
  rest[0]->signal(SIGTERM);
  rest[1]->signal(SIGINT);
  CHECK(rest[0]->wait_exit(kPatience) == 0);
  CHECK(rest[1]->wait_exit(kPatience) == 0);
}

}  // namespace aiocluster::testing
