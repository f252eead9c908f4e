// Multi-process, mixed drivers: aiocluster-node processes with
// --driver libevent and --driver asio form one cluster over TCP, UDP and
// mutual TLS at --gossip-interval-ms 100, and a killed one (of either
// driver) is reported dead by the others. The scenario is the Asio agent
// tests' (tests/asio/agent.h), with a driver per agent. Over TCP and UDP one
// agent runs without the compact digest (proto/README.md): the other two use
// it between themselves; and one runs the compact digest without its aligned
// form (section 2.3): the other two use aligned digests between themselves.
#include <doctest/doctest.h>

#include "agent.h"

using aiocluster::testing::three_agents;

TEST_CASE(
    "asio and libevent agents over TCP converge, and a killed libevent agent is reported dead") {
  three_agents({"tcp", false, {"asio", "libevent", "libevent"}, 2, 0});
}

TEST_CASE("asio and libevent agents over UDP converge, and a killed asio agent is reported dead") {
  three_agents({"udp", false, {"libevent", "asio", "libevent"}, 1, 2});
}

TEST_CASE(
    "agents with and without the aligned digest converge over TCP, and a killed one is reported "
    "dead") {
  three_agents({.transport = "tcp",
                .drivers = {"libevent", "asio", "libevent"},
                .killed = 1,
                .without_aligned_digest = 0});
}

TEST_CASE(
    "agents with and without the aligned digest converge over UDP, and a killed one is reported "
    "dead") {
  three_agents({.transport = "udp",
                .drivers = {"asio", "libevent", "asio"},
                .killed = 0,
                .without_aligned_digest = 2});
}

TEST_CASE(
    "asio and libevent agents over mutual TLS converge, and a killed libevent agent is reported "
    "dead") {
  three_agents({"tcp", true, {"libevent", "libevent", "asio"}, 0});
}

TEST_CASE("--driver libevent runs the node on the libevent driver; a bad --driver is refused") {
  using aiocluster::testing::Agent;
  using aiocluster::testing::kPatience;
  using aiocluster::testing::log_dir;
  Agent agent({"--name", "solo", "--listen", "127.0.0.1:0", "--driver", "libevent", "--duration-s",
               "1", "--report-ms", "50"},
              log_dir() + "/driver.err");
  REQUIRE(agent.wait_exit(kPatience) == 0);
  CHECK(agent.lines() >= 3);
  CHECK(agent.stderr_text().find("(tcp, libevent)") != std::string::npos);

  Agent bad({"--name", "x", "--listen", "127.0.0.1:0", "--driver", "libuv"},
            log_dir() + "/bad-driver.err");
  CHECK(bad.wait_exit(kPatience) == 2);
  CHECK(bad.stderr_text().find("--driver") != std::string::npos);
}
