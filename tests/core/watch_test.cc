// What a Node offers watchers: the live set and its version, an extra
// liveness predicate over a node's key-values, key-prefix matching and the
// ReplicaReset event.
#include <doctest/doctest.h>

#include <algorithm>

#include "harness.h"

using namespace testing;

namespace {

bool ready(const NodeState& st) {
  const auto v = st.find("ready");
  return v && v->visible() && v->value == "true";
}

template <typename E>
std::size_t count_of(const std::vector<Event>& events, const NodeId& id) {
  return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const Event& e) {
    const auto* x = std::get_if<E>(&e);
    return x != nullptr && x->node == id;
  }));
}

}  // namespace

TEST_CASE("the live set: live nodes with their visible key-values, and a version that moves") {
  MemCluster c = MemCluster::ring(3);
  c.run(20s);
  REQUIRE(c.converged());
  const Node& n = *c.nodes[0];
  LiveSet live = n.live_set();
  REQUIRE(live.size() == 3);
  CHECK(live[0].id == n.self_id());
  CHECK(live[1].key_values.at("cluster") == "1");
  const std::uint64_t before = n.live_set_version();
  c.nodes[1]->set("color", "red");
  c.nodes[1]->remove("cluster");
  c.run(5s);
  CHECK(n.live_set_version() > before);
  live = n.live_set();
  CHECK(live[1].key_values.at("color") == "red");
  CHECK_FALSE(live[1].key_values.contains("cluster"));  // deleted: not visible
  // A crash: the set shrinks.
  c.down[2] = true;
  c.run(60s);
  CHECK(n.live_set().size() == 2);
}

TEST_CASE("an extra liveness predicate: not live until it holds, never dead for it") {
  MemCluster c = MemCluster::ring(3, [](Config& config) { config.extra_liveness = ready; });
  c.nodes[1]->set("ready", "true");
  c.run(20s);
  const Node& n = *c.nodes[0];
  const NodeId& one = c.nodes[1]->self_id();
  const NodeId& two = c.nodes[2]->self_id();
  CHECK(n.is_live(one));
  CHECK_FALSE(n.is_live(two));
  const auto dead = n.dead_nodes();
  CHECK(std::find(dead.begin(), dead.end(), two) == dead.end());  // heard: not dead
  CHECK(n.live_nodes().size() == 2);
  std::vector<Event> events = c.drain(0);
  CHECK(count_of<NodeJoined>(events, one) == 1);
  CHECK(count_of<NodeJoined>(events, two) == 0);
  // Ready: joins at the next round. Not ready again: leaves, still not dead.
  c.nodes[2]->set("ready", "true");
  c.run(5s);
  CHECK(n.is_live(two));
  CHECK(count_of<NodeJoined>(c.drain(0), two) == 1);
  c.nodes[2]->set("ready", "false");
  c.run(5s);
  CHECK_FALSE(n.is_live(two));
  CHECK(count_of<NodeLeft>(c.drain(0), two) == 1);
  const auto dead_now = n.dead_nodes();
  CHECK(std::find(dead_now.begin(), dead_now.end(), two) == dead_now.end());
  // Gossip still reaches it: its later keys arrive.
  c.nodes[2]->set("later", "1");
  c.run(5s);
  CHECK(c.value_seen(0, 2, "later") == "1");
}

TEST_CASE("key-prefix matching") {
  const KeyChanged change{NodeId{}, "svc/port", std::nullopt, VersionedValue{}};
  CHECK(under_prefix(change, "svc/"));
  CHECK(under_prefix(change, ""));
  CHECK_FALSE(under_prefix(change, "svc/port/x"));
  CHECK_FALSE(under_prefix(change, "other"));
}

TEST_CASE("a replica that had to be reset is announced by ReplicaReset") {
  MemCluster c = MemCluster::ring(2, [](Config& config) {
    config.marked_for_deletion_grace_period = 3s;
    config.dead_node_grace_period = 24h;
  });
  c.nodes[0]->set("kept", "1");
  c.run(10s);
  REQUIRE(c.value_seen(1, 0, "kept") == "1");
  c.drain(1);
  // Node 1 hears nothing while node 0 writes, deletes and collects.
  c.cut = {{0, 1}, {1, 0}};
  c.nodes[0]->set("gone", "1");
  c.nodes[0]->remove("gone");
  c.nodes[0]->set("late", "1");
  c.run(10s);
  REQUIRE(c.nodes[0]->cluster_state().self().last_gc_version() > 0);
  c.cut.clear();
  c.run(10s);
  CHECK(c.value_seen(1, 0, "late") == "1");
  CHECK(count_of<ReplicaReset>(c.drain(1), c.nodes[0]->self_id()) == 1);
  CHECK(c.nodes[1]->stats().resets_applied == 1);
  // No reset on the other side, nor when nothing was missed.
  CHECK(count_of<ReplicaReset>(c.drain(0), c.nodes[1]->self_id()) == 0);
}
