// The calls an embedding application serves our state and metrics with
// (aiocluster/common/metrics.h, state_json.h, members.h), on clusters of the
// simulator: every member state (live, dead, scheduled for deletion), the
// phi cardinality cap, the Prometheus text's shape and escaping, and the
// JSON documents read back by a JSON parser.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "aiocluster/common/members.h"
#include "aiocluster/common/metrics.h"
#include "aiocluster/common/state_json.h"
#include "aiocluster/sim/simulator.h"

namespace ac = aiocluster;
namespace drv = aiocluster::driver;
namespace sim = aiocluster::sim;
using namespace std::chrono_literals;
using Json = nlohmann::json;

namespace {

// Three nodes seeded with the first, dead nodes scheduled for deletion 10 s
// after their death and removed after 20 s.
sim::Simulator three_nodes() {
  sim::Options options;
  options.seed = 14;
  sim::Simulator s(options);
  for (std::size_t i = 0; i < 3; ++i) {
    ac::Config config = sim::Simulator::make_config(i, std::vector<sim::NodeIndex>{0});
    config.dead_node_grace_period = 20s;
    s.add_node(config, {{"role", "role-" + std::to_string(i)}, {"zone", "z"}});
  }
  REQUIRE(s.run_until_converged(s.now() + 60s, 100ms));
  return s;
}

// The samples of a Prometheus text by "name{labels}", after checking that
// every sample follows the HELP and TYPE lines of its family.
std::map<std::string, std::string> samples_of(const std::string& text) {
  std::map<std::string, std::string> out;
  std::set<std::string> helped, typed;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    REQUIRE_FALSE(line.empty());
    std::istringstream words(line);
    std::string first, name;
    words >> first;
    if (first == "#") {
      std::string kind;
      words >> kind >> name;
      (kind == "HELP" ? helped : typed).insert(name);
      continue;
    }
    const auto space = line.rfind(' ');
    const std::string series = line.substr(0, space);
    const std::string family = series.substr(0, series.find('{'));
    CAPTURE(line);
    CHECK(helped.count(family) == 1);
    CHECK(typed.count(family) == 1);
    CHECK(out.emplace(series, line.substr(space + 1)).second);  // each series once
  }
  return out;
}

std::map<std::string, Json> members_by_name(const Json& cluster) {
  std::map<std::string, Json> out;
  for (const auto& m : cluster["members"]) out[m["name"].get<std::string>()] = m;
  return out;
}

}  // namespace

TEST_CASE("prometheus_metrics: every counter, membership gauges and phi per member, capped") {
  sim::Simulator s = three_nodes();
  const ac::Node& node = s.node(0);
  drv::DriverStats driver;
  driver.connections_refused = 17;
  driver.datagrams_in = 123;
  drv::HookStats hooks;
  hooks.dropped = 5;

  const auto samples = samples_of(drv::prometheus_metrics(node, driver, hooks));
  CHECK(samples.at("aiocluster_live_members") == "3");
  CHECK(samples.at("aiocluster_dead_members") == "0");
  CHECK(samples.at("aiocluster_connections_refused_total") == "17");
  CHECK(samples.at("aiocluster_datagrams_received_total") == "123");
  CHECK(samples.at("aiocluster_hook_events_dropped_total") == "5");
  CHECK(samples.at("aiocluster_gossip_rounds_total") == std::to_string(node.stats().rounds));
  CHECK(samples.at("aiocluster_compact_digests_sent_total") ==
        std::to_string(node.stats().compact_digests_out));
  CHECK(samples.at("aiocluster_packets_received_total{type=\"syn\"}") ==
        std::to_string(node.stats().packets_in.syn));
  CHECK(samples.count("aiocluster_packets_dropped_total{reason=\"rate_limited\"}") == 1);
  CHECK(samples.count("aiocluster_node_deltas_rejected_total{reason=\"gap\"}") == 1);
  CHECK(samples.at("aiocluster_member_phi_omitted") == "0");
  int phis = 0;
  for (const auto& [series, value] : samples) {
    if (series.starts_with("aiocluster_member_phi{")) {
      ++phis;
      CHECK(series.find("member=\"node-") != std::string::npos);
      CHECK(std::stod(value) >= 0.0);
    }
  }
  CHECK(phis == 2);  // both peers; self has no phi
  const std::string info = "aiocluster_node_info{node=\"node-0\",generation=\"" +
                           std::to_string(node.self_id().generation_id) + "\",cluster_id=\"sim\"}";
  CHECK(samples.at(info) == "1");

  // Above the cap the per-member series go, and the text says so.
  const auto capped = samples_of(drv::prometheus_metrics(node, driver, hooks, {2}));
  CHECK(capped.at("aiocluster_member_phi_omitted") == "1");
  for (const auto& [series, value] : capped)
    CHECK_FALSE(series.starts_with("aiocluster_member_phi{"));
}

TEST_CASE("member states through death and scheduled deletion, in JSON and metrics") {
  sim::Simulator s = three_nodes();
  const ac::NodeId victim = s.node_id(2);
  s.crash(2);
  const auto crashed = s.now();
  while (!s.seen_dead_by_all(victim) && s.now() < crashed + 60s) s.run_for(100ms);
  REQUIRE(s.seen_dead_by_all(victim));  // and far from scheduled for deletion
  {
    const ac::Node& node = s.node(0);
    CHECK(drv::member_state(node, victim) == drv::MemberState::kDead);
    const Json cluster = Json::parse(drv::cluster_json(node, {}, {}));
    CHECK(cluster["live"] == 2);
    CHECK(cluster["dead"] == 1);
    CHECK(members_by_name(cluster).at("node-2")["state"] == "dead");
    CHECK(members_by_name(cluster).at("node-2")["phi"].is_null());
    CHECK(samples_of(drv::prometheus_metrics(node, {}, {})).at("aiocluster_dead_members") == "1");
  }
  const auto dead_since = s.now();
  bool scheduled = false;
  while (!scheduled && s.now() < dead_since + 30s) {
    s.run_for(100ms);
    scheduled = drv::member_state(s.node(0), victim) == drv::MemberState::kScheduledForDeletion;
  }
  REQUIRE(scheduled);
  const Json cluster = Json::parse(drv::cluster_json(s.node(0), {}, {}));
  CHECK(members_by_name(cluster).at("node-2")["state"] == "scheduled_for_deletion");
  CHECK(drv::to_string(drv::MemberState::kScheduledForDeletion) == "scheduled_for_deletion");

  // A restart is a new incarnation under the same name: the name stands
  // for the live one.
  s.restart(2);
  REQUIRE(s.run_until_converged(s.now() + 60s, 100ms));
  const std::optional<ac::NodeId> named = drv::member_by_name(s.node(0), "node-2");
  REQUIRE(named);
  CHECK(*named == s.node_id(2));
  CHECK(named->generation_id != victim.generation_id);
  CHECK_FALSE(drv::member_by_name(s.node(0), "nobody"));
}

TEST_CASE("cluster_json, snapshot_json, member_keys_json, key_json and event_json") {
  sim::Simulator s = three_nodes();
  s.update(1, [](ac::Node& n) {
    n.set("quote\"and\\slash", "line\nbreak \xc3\xa9");
    n.set_with_ttl("lease", "x");
    n.remove("zone");
  });
  REQUIRE(s.run_until_converged(s.now() + 60s, 100ms));
  const ac::Node& node = s.node(0);

  const Json cluster = Json::parse(drv::cluster_json(node, {}, {}));
  CHECK(cluster["self"]["name"] == "node-0");
  CHECK(cluster["self"]["generation"] == std::to_string(node.self_id().generation_id));
  CHECK(cluster["cluster_id"] == "sim");
  CHECK(cluster["phi_threshold"] == 8.0);
  CHECK(cluster["gossip_interval_ms"] == 1000);
  const auto members = members_by_name(cluster);
  REQUIRE(members.size() == 3);
  CHECK(members.at("node-0")["self"] == true);
  CHECK(members.at("node-1")["phi"].is_number());
  CHECK(members.at("node-1")["keys"] == 4);  // role, zone (a tombstone), the quote, lease
  CHECK(members.at("node-1")["address"] == sim::Simulator::address_of(1).to_string());
  CHECK(cluster["stats"]["rounds"] == node.stats().rounds);
  for (const char* sealing :
       {"dropped_unsealed", "dropped_seal_malformed", "dropped_seal_unknown_key",
        "dropped_seal_forged", "dropped_seal_stale", "dropped_seal_replayed", "packets_sealed",
        "packets_opened"}) {
    CHECK(cluster["stats"][sealing] == 0);  // no keyring
  }
  for (const char* compression : {"dropped_decompress_oversized", "dropped_decompress_malformed"}) {
    CHECK(cluster["stats"][compression] == 0);
  }
  CHECK(cluster["stats"].contains("packets_compressed"));
  CHECK(cluster["driver"].contains("exchanges_started"));
  CHECK(cluster["hooks"].contains("processed"));

  const Json snapshot = Json::parse(drv::snapshot_json(node.snapshot()));
  CHECK(snapshot["nodes"].size() == 3);
  const Json& n1 = snapshot["nodes"][1];
  CHECK(n1["id"]["name"] == "node-1");
  CHECK(n1["live"] == true);
  CHECK(n1["key_values"]["quote\"and\\slash"]["value"] == "line\nbreak \xc3\xa9");
  CHECK(n1["key_values"]["lease"]["status"] == "delete_after_ttl");
  CHECK(n1["key_values"]["zone"]["status"] == "deleted");

  const Json keys = Json::parse(drv::member_keys_json(node, s.node_id(1), "l"));
  CHECK(keys["member"]["name"] == "node-1");
  CHECK(keys["state"] == "live");
  CHECK(keys["key_values"].size() == 1);
  CHECK(keys["key_values"]["lease"]["value"] == "x");

  const Json role = Json::parse(drv::key_json(node, "role"));
  CHECK(role["key"] == "role");
  REQUIRE(role["members"].size() == 3);
  CHECK(role["members"][2]["value"] == "role-2");
  CHECK(Json::parse(drv::key_json(node, "missing"))["members"].empty());

  const ac::NodeId id = s.node_id(1);
  CHECK(Json::parse(drv::event_json(ac::NodeJoined{id})) ==
        Json{{"type", "join"},
             {"member",
              {{"name", "node-1"},
               {"generation", std::to_string(id.generation_id)},
               {"address", id.gossip_advertise_addr.to_string()},
               {"tls_name", ""}}}});
  CHECK(Json::parse(drv::event_json(ac::NodeLeft{id}))["type"] == "leave");
  const Json change = Json::parse(drv::event_json(
      ac::KeyChanged{id, "k", std::nullopt, ac::VersionedValue{"v", 7, ac::KeyStatus::kSet}}));
  CHECK(change["type"] == "key");
  CHECK(change["old"].is_null());
  CHECK(change["new"] == Json{{"value", "v"}, {"version", 7}, {"status", "set"}});
}

TEST_CASE("PrometheusWriter escapes label values and help text, and writes special values") {
  drv::PrometheusWriter w;
  w.family("app_thing", "gauge", "Help with a \\ backslash\nand a line feed.");
  w.sample({{"name", "a\"b\\c\nd"}}, 1.5);
  w.sample({{"name", "nan"}}, std::nan(""));
  w.sample({{"name", "inf"}}, HUGE_VAL);
  w.counter("app_events_total", "Events.", std::uint64_t{18446744073709551615u});
  CHECK(w.text() ==
        "# HELP app_thing Help with a \\\\ backslash\\nand a line feed.\n"
        "# TYPE app_thing gauge\n"
        "app_thing{name=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        "app_thing{name=\"nan\"} NaN\n"
        "app_thing{name=\"inf\"} +Inf\n"
        "# HELP app_events_total Events.\n"
        "# TYPE app_events_total counter\n"
        "app_events_total 18446744073709551615\n");
}
