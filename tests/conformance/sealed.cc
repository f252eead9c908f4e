// Sealed gossip through every driver (proto/README.md section 4): nodes
// sharing a keyring converge over UDP and TCP, the driver pins the wall
// clock sealed packets are stamped with, a node holding another key is kept
// out, and a rotation through the Cluster API (install everywhere, make
// primary everywhere, remove everywhere) loses no packet and no member.
#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>

#include "checks.h"
#include "harness.h"

namespace aiocluster::conformance {

namespace {

SealKey key_of(std::uint8_t byte) {
  SealKey key;
  key.fill(byte);
  return key;
}

// Runs until every node has opened `more` sealed packets since `since`,
// while converged.
bool gossip_on(Loop& loop, const Nodes& nodes, std::uint64_t more) {
  std::vector<std::uint64_t> since;
  for (const auto& n : nodes) since.push_back(n->node().stats().packets_opened);
  return loop.run_until(
      [&] {
        for (std::size_t i = 0; i < nodes.size(); ++i) {
          if (nodes[i]->node().stats().packets_opened < since[i] + more) return false;
        }
        return converged(nodes);
      },
      kPatience);
}

void sealed_rotation(Transport transport, const std::string& name) {
  auto loop = make_loop();
  const SealKey old_key = key_of(1), new_key = key_of(2);
  NodeSpec base;
  base.name = name;
  base.transport = transport;
  base.sealing.keyring = Keyring({old_key});
  Nodes nodes = start_chain(*loop, 3, base);
  INFO(describe(nodes));
  REQUIRE(gossip_on(*loop, nodes, 5));

  // The driver set the wall clock of the node's start from the system clock.
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  for (const auto& n : nodes) {
    const auto wall = n->node().config().sealing.wall_clock_at_start;
    REQUIRE(wall.has_value());
    CHECK(*wall <= now);
    CHECK(now - *wall < std::chrono::minutes(1));
  }

  // Another key, seeded with the first node: refused, never a member.
  NodeSpec outsider_spec = base;
  outsider_spec.name = name + "-outsider";
  outsider_spec.key_values = {{"id", outsider_spec.name}};
  outsider_spec.seeds = {nodes.front()->address()};
  outsider_spec.sealing.keyring = Keyring({key_of(3)});
  auto outsider = loop->start(outsider_spec);
  CHECK(loop->run_until([&] { return nodes.front()->node().stats().dropped_seal_unknown_key >= 3; },
                        kPatience));

  // The rotation, each step on every node before the next.
  for (const auto& n : nodes) n->cluster().install_key(new_key);
  CHECK(gossip_on(*loop, nodes, 5));
  for (const auto& n : nodes) n->cluster().make_primary_key(new_key);
  CHECK(gossip_on(*loop, nodes, 5));
  for (const auto& n : nodes) {
    CHECK_THROWS_AS(n->cluster().remove_key(new_key), std::invalid_argument);
    CHECK(n->cluster().remove_key(old_key));
    CHECK_FALSE(n->cluster().remove_key(old_key));
  }
  CHECK(gossip_on(*loop, nodes, 10));
  for (const auto& n : nodes) {
    CHECK(n->node().config().sealing.keyring.keys() == std::vector<SealKey>{new_key});
    CHECK(known_names(*n).count(outsider_spec.name) == 0);
    CHECK(n->node().stats().dropped_seal_forged == 0);
    CHECK(n->node().stats().dropped_unsealed == 0);
  }
  // Only the outsider's packets were ever sealed under a key not held.
  CHECK(nodes[1]->node().stats().dropped_seal_unknown_key == 0);
  CHECK(nodes[2]->node().stats().dropped_seal_unknown_key == 0);
  CHECK(known_names(*outsider) == std::set<std::string>{outsider_spec.name});

  // set_keyring replaces the whole ring at once (a reloaded file).
  for (const auto& n : nodes) {
    n->cluster().set_keyring(Keyring({key_of(4), new_key}));
    CHECK_THROWS_AS(n->cluster().set_keyring(Keyring{}), std::invalid_argument);
  }
  CHECK(gossip_on(*loop, nodes, 10));
  // A mode change: permissive still seals and opens.
  for (const auto& n : nodes) n->cluster().set_seal_mode(SealMode::kPermissive);
  CHECK(gossip_on(*loop, nodes, 10));
}

}  // namespace

TEST_SUITE("conformance") {
  TEST_CASE("sealed gossip over UDP: shared key, outsider kept out, rotation by the Cluster API") {
    sealed_rotation(Transport::kUdp, "sealed-udp");
  }
  TEST_CASE("sealed gossip over TCP: shared key, outsider kept out, rotation by the Cluster API") {
    sealed_rotation(Transport::kTcp, "sealed-tcp");
  }
}

}  // namespace aiocluster::conformance
