// Multi-process tests of the node agent: three aiocluster-node processes on
// 127.0.0.1 over TCP, UDP and mutual TLS at --gossip-interval-ms 100. Their
// JSON lines must converge, and a killed one must be reported dead by the
// others. Conditions are polled with generous timeouts.
#include "agent.h"

#include <doctest/doctest.h>

using namespace aiocluster::testing;

TEST_CASE("three agents over TCP converge, and a killed one is reported dead") {
  three_agents({"tcp", false});
}

TEST_CASE("three agents over UDP converge, and a killed one is reported dead") {
  three_agents({"udp", false});
}

TEST_CASE("three agents over mutual TLS converge, and a killed one is reported dead") {
  three_agents({"tcp", true});
}

TEST_CASE(
    "the agent's report lines have the documented shape, and --duration-s ends it with status 0") {
  const std::string err = log_dir() + "/shape.err";
  std::vector<std::unique_ptr<Agent>> agents;
  agents.push_back(std::make_unique<Agent>(
      std::vector<std::string>{"--name", "solo \"quoted\"", "--listen", "127.0.0.1:0", "--kv",
                               "a=1", "--kv", "b=line\nbreak", "--duration-s", "1", "--report-ms",
                               "50", "--generation", "7"},
      err));
  REQUIRE(agents[0]->wait_exit(kPatience) == 0);
  REQUIRE(agents[0]->latest());
  CHECK(agents[0]->lines() >= 3);
  const Json& j = *agents[0]->latest();
  CHECK(j.size() == 7);
  CHECK(j.at("sealing").is_null());  // no --keyring
  CHECK(j.at("t").get<double>() > 0);
  CHECK(j.at("self") == "solo \"quoted\"");
  CHECK(names(j.at("live")) == std::set<std::string>{"solo \"quoted\""});
  CHECK(j.at("dead").empty());
  CHECK(j.at("kv").at("solo \"quoted\"").at("a") == "1");
  CHECK(j.at("kv").at("solo \"quoted\"").at("b") == "line\nbreak");
  // A node alone has refused nothing and accepted no connection.
  CHECK(j.at("counters").size() == 36);
  CHECK(j.at("counters").at("packets_compressed") == 0);
  CHECK(j.at("counters").at("dropped_decompress_malformed") == 0);
  CHECK(j.at("counters").at("compact_digests_out") == 0);
  CHECK(j.at("counters").at("aligned_digests_out") == 0);
  CHECK(j.at("counters").at("packets_dropped") == 0);
  CHECK(j.at("counters").at("connections_accepted") == 0);
}

TEST_CASE("bad flags: one line naming the flag, exit status 2") {
  const std::string err = log_dir() + "/flags.err";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--listen", "127.0.0.1:1"}, "--name"},
      {{"--name", "x"}, "--listen"},
      {{"--name", "x", "--listen", "nowhere"}, "--listen"},
      {{"--name", "x", "--listen", "127.0.0.1:1", "--gossip-interval-ms", "fast"},
       "--gossip-interval-ms"},
      {{"--name", "x", "--listen", "127.0.0.1:1", "--transport", "sctp"}, "--transport"},
      {{"--name", "x", "--listen", "127.0.0.1:1", "--kv", "novalue"}, "--kv"},
      {{"--name", "x", "--listen", "127.0.0.1:1", "--seed"}, "--seed"},
      {{"--name", "x", "--listen", "127.0.0.1:1", "--no-such-flag"}, "--no-such-flag"},
      {{"--name", "x", "--listen", "127.0.0.1:1", "--tls-cert", "c.pem"}, "--tls-key"},
      {{"--name", "x", "--listen", "127.0.0.1:1", "--report-ms", "0"}, "--report-ms"},
      {{"--name", "x", "--listen", "127.0.0.1:1", "--generation", "0"}, "--generation"},
      {{"--name", "x", "--listen", "127.0.0.1:1", "--tls-server-hostname", "h"},
       "--tls-server-hostname"},
      {{"--name", "x", "--listen", "127.0.0.1:1", "--tls-allow-nameless-peers"},
       "--tls-allow-nameless-peers"},
  };
  for (const auto& [args, flag] : cases) {
    CAPTURE(flag);
    Agent agent(args, err);
    CHECK(agent.wait_exit(kPatience) == 2);
    const std::string text = agent.stderr_text();
    CHECK(text.find(flag) != std::string::npos);
    CHECK(std::count(text.begin(), text.end(), '\n') == 1);
  }
}
