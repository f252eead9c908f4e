// Sealed gossip through the node agent (--keyring, SIGHUP), in separate
// processes over real sockets: agents sharing a keyring form a cluster over
// UDP and TCP while one holding another key is kept out; a key rotation by
// SIGHUP while they run loses no member and no key; unusable keyring files
// are refused at start and ignored (the keys in use kept) on reload.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "agent.h"
#include "keyring_files.h"

using namespace aiocluster::testing;
namespace ac = aiocluster;
using ac::SealKey;

namespace {

const std::set<std::string> kMembers = {"agent1", "agent2", "agent3"};

// The drivers of the three agents: both, when the agent has libevent.
std::string driver_of(int i) {
#ifdef AIOCLUSTER_TEST_WITH_LIBEVENT
  return i == 1 ? "libevent" : "asio";
#else
  (void)i;
  return "asio";
#endif
}

// Agent i+1 of three in a ring (ring_agent_args), sealing with `keyring`.
std::unique_ptr<Agent> member(int i, const std::vector<std::uint16_t>& ports,
                              const std::string& transport, const std::string& keyring,
                              const std::string& label) {
  std::vector<std::string> args = ring_agent_args(i, ports, "sealed-" + transport, transport);
  // A value that compresses well: every delta that brings it is compressed
  // (a delta of a few short keys may not pay, and goes out plain).
  const std::string blob = "blob=" + std::string(600, 'x');
  for (const std::string& extra : {std::string("--keyring"), keyring, std::string("--driver"),
                                   driver_of(i), std::string("--kv"), blob}) {
    args.push_back(extra);
  }
  return std::make_unique<Agent>(
      args, log_dir() + "/" + label + "-agent" + std::to_string(i + 1) + ".err");
}

std::vector<std::string> key_ids(const Agent& agent) {
  return agent.latest()->at("sealing").at("keys").get<std::vector<std::string>>();
}

// Gives `flag` in `args` the value `value`.
void set_flag(std::vector<std::string>& args, const std::string& flag, const std::string& value) {
  const auto it = std::find(args.begin(), args.end(), flag);
  REQUIRE(it + 1 < args.end());
  *(it + 1) = value;
}

void print_logs(const std::vector<std::unique_ptr<Agent>>& agents) {
  for (const auto& a : agents) MESSAGE(a->stderr_text());
}

void sealed_cluster_keeps_out_another_key(const std::string& transport) {
  const SealKey shared = random_key();
  const std::string keys = write_keyring(log_dir() + "/" + transport + "-shared.keys", {shared});
  const std::string other =
      write_keyring(log_dir() + "/" + transport + "-other.keys", {random_key()});
  const std::vector<std::uint16_t> ports = {free_port(), free_port(), free_port()};
  std::vector<std::unique_ptr<Agent>> members;
  for (int i = 0; i < 3; ++i) members.push_back(member(i, ports, transport, keys, transport));
  // The intruder: agent1's flags with its own name, port and key, and
  // every member as a seed.
  std::vector<std::string> args = ring_agent_args(0, ports, "sealed-" + transport, transport);
  set_flag(args, "--name", "intruder");
  set_flag(args, "--listen", "127.0.0.1:" + std::to_string(free_port()));
  set_flag(args, "--kv", "role=role-of-intruder");
  args.insert(args.end(), {"--keyring", other});
  for (const auto port : {ports[0], ports[1]}) {  // ports[2] is agent1's seed
    args.push_back("--seed");
    args.push_back("127.0.0.1:" + std::to_string(port));
  }
  std::vector<std::unique_ptr<Agent>> intruder;
  intruder.push_back(std::make_unique<Agent>(args, log_dir() + "/" + transport + "-intruder.err"));

  const bool formed = poll_until(members, [&] { return converged(members, kMembers); });
  if (!formed) print_logs(members);
  REQUIRE(formed);
  // Every member refuses the intruder's packets (sealed under a key id none
  // of them holds), and none of them ever lists it.
  const bool refused = poll_until(members, [&] {
    intruder[0]->drain();
    for (const auto& m : members) {
      if (report_counter(*m, "dropped_seal_unknown_key") == 0) return false;
    }
    return intruder[0]->latest().has_value();
  });
  if (!refused) print_logs(intruder);
  CHECK(refused);
  for (const auto& m : members) {
    CHECK(names_seen(*m->latest()) == kMembers);
    CHECK(report_counter(*m, "packets_opened") > 0);
    CHECK(report_counter(*m, "packets_sealed") > 0);
    CHECK(report_counter(*m, "dropped_seal_forged") == 0);
    // Compressed, then sealed (proto/README.md section 5), through the driver.
    CHECK(report_counter(*m, "packets_compressed") > 0);
    CHECK(report_counter(*m, "packets_decompressed") > 0);
    CHECK(report_counter(*m, "dropped_decompress_malformed") == 0);
    CHECK(key_ids(*m) == std::vector<std::string>{key_id_hex(shared)});
    CHECK(m->latest()->at("sealing").at("mode") == "required");
  }
  CHECK(converged(members, kMembers));
  CHECK(names_seen(*intruder[0]->latest()) == std::set<std::string>{"intruder"});
  CHECK(report_counter(*intruder[0], "packets_opened") == 0);

  for (auto& m : members) m->signal(SIGTERM);
  intruder[0]->signal(SIGTERM);
  for (auto& m : members) CHECK(m->wait_exit(kPatience) == 0);
  CHECK(intruder[0]->wait_exit(kPatience) == 0);
}

}  // namespace

TEST_CASE("agents sharing a keyring form a cluster over UDP; another key is kept out") {
  sealed_cluster_keeps_out_another_key("udp");
}

TEST_CASE("agents sharing a keyring form a cluster over TCP; another key is kept out") {
  sealed_cluster_keeps_out_another_key("tcp");
}

TEST_CASE("a key rotation by SIGHUP during a run loses no member and no key") {
  const SealKey old_key = random_key();
  const SealKey new_key = random_key();
  const std::vector<std::uint16_t> ports = {free_port(), free_port(), free_port()};
  std::vector<std::string> files;
  std::vector<std::unique_ptr<Agent>> agents;
  for (int i = 0; i < 3; ++i) {
    files.push_back(
        write_keyring(log_dir() + "/rotation-" + std::to_string(i + 1) + ".keys", {old_key}));
    agents.push_back(member(i, ports, "udp", files.back(), "rotation"));
  }
  const bool formed = poll_until(agents, [&] { return converged(agents, kMembers); });
  if (!formed) print_logs(agents);
  REQUIRE(formed);

  // Each step is written to every agent's file and signalled, then awaited
  // on all of them before the next; at every look meanwhile all three are
  // live, none dead, and every node's key is seen by every node.
  std::size_t looks = 0, broken_looks = 0;
  const auto step = [&](const std::vector<SealKey>& keys) {
    std::vector<std::string> ids;
    for (const SealKey& key : keys) ids.push_back(key_id_hex(key));
    for (std::size_t i = 0; i < agents.size(); ++i) {
      write_keyring(files[i], keys);
      agents[i]->signal(SIGHUP);
    }
    const bool done = poll_until(agents, [&] {
      ++looks;
      if (!converged(agents, kMembers)) ++broken_looks;
      for (const auto& a : agents) {
        if (key_ids(*a) != ids) return false;
      }
      return true;
    });
    if (!done) print_logs(agents);
    REQUIRE(done);
  };
  step({old_key, new_key});  // installed everywhere
  step({new_key, old_key});  // primary everywhere
  step({new_key});           // the old one removed everywhere

  // Gossip goes on under the new key alone.
  std::vector<std::uint64_t> opened;
  for (const auto& a : agents) opened.push_back(report_counter(*a, "packets_opened"));
  CHECK(poll_until(agents, [&] {
    ++looks;
    if (!converged(agents, kMembers)) ++broken_looks;
    for (std::size_t i = 0; i < agents.size(); ++i) {
      if (report_counter(*agents[i], "packets_opened") < opened[i] + 20) return false;
    }
    return true;
  }));
  INFO("looks: " << looks);
  CHECK(broken_looks == 0);
  for (const auto& a : agents) {
    CHECK(names(a->latest()->at("dead")).empty());
    // Done in this order, no packet was ever sealed under a key its
    // receiver did not hold.
    CHECK(report_counter(*a, "dropped_seal_unknown_key") == 0);
    CHECK(report_counter(*a, "dropped_seal_forged") == 0);
    CHECK(a->stderr_text().find("keyring reloaded: 1 installed, primary " + key_id_hex(new_key)) !=
          std::string::npos);
  }

  // An unusable file on reload: logged, the keys in use kept, still a member.
  {
    std::ofstream bad(files[0], std::ios::trunc);
    bad << "not base64 at all!\n";
  }
  agents[0]->signal(SIGHUP);
  CHECK(poll_until(agents, [&] {
    return agents[0]->stderr_text().find("keyring not reloaded, keeping the 1 installed") !=
           std::string::npos;
  }));
  for (std::size_t i = 0; i < agents.size(); ++i)
    opened[i] = report_counter(*agents[i], "packets_opened");
  CHECK(poll_until(agents, [&] {
    for (std::size_t i = 0; i < agents.size(); ++i) {
      if (report_counter(*agents[i], "packets_opened") < opened[i] + 10) return false;
    }
    return converged(agents, kMembers);
  }));
  CHECK(key_ids(*agents[0]) == std::vector<std::string>{key_id_hex(new_key)});

  for (auto& a : agents) a->signal(SIGTERM);
  for (auto& a : agents) CHECK(a->wait_exit(kPatience) == 0);
}

TEST_CASE("unusable keyring files: one line naming the file and line, exit status 2") {
  const std::string dir = log_dir();
  const SealKey key = random_key();
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name, std::ios::trunc) << text;
    return dir + "/" + name;
  };
  const std::string good = base64(key.data(), key.size());
  const std::string short_key = base64(key.data(), 31);
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--keyring", dir + "/missing.keys"}, "missing.keys: cannot be read"},
      {{"--keyring", write("empty.keys", "")}, "empty.keys: no key"},
      {{"--keyring", write("comments.keys", "# only a comment\n\n")}, "comments.keys: no key"},
      {{"--keyring", write("short.keys", good + "\n" + short_key + "\n")},
       "short.keys:2: 31 bytes, a key is 32"},
      {{"--keyring", write("garbage.keys", "this is not base64!\n")}, "garbage.keys:1: not base64"},
      {{"--keyring", write("cut.keys", good.substr(0, 43) + "\n")}, "cut.keys:1: not base64"},
      {{"--seal-mode", "permissive"}, "--seal-mode: needs --keyring"},
      {{"--keyring", write("fine.keys", good + "\n"), "--seal-mode", "lax"}, "--seal-mode"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--name", "x", "--listen", "127.0.0.1:0"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    Agent agent(args, dir + "/keyring-flags.err");
    INFO("expected: " << c.message);
    CHECK(agent.wait_exit(kPatience) == 2);
    const std::string err = agent.stderr_text();
    INFO("stderr: " << err);
    CHECK(err.find(c.message) != std::string::npos);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  }
}
