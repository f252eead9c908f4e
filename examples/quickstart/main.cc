// Quick start: three cluster members in one process, over TCP on the Asio
// driver. Each starts with one key, "cluster", and knows a single seed; within
// a few gossip rounds every member sees all three live, with their keys.
//
// Usage: aiocluster-quickstart [SECONDS] [BASE_PORT]   (defaults: 10, 7000)
#include <aiocluster/asio/cluster.h>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ac = aiocluster;
using namespace std::chrono_literals;

namespace {

// "[simple1] live: simple1 simple2 | cluster keys: simple1=1 simple2=2 simple3=3":
// the members this node sees live, and the `cluster` key it holds for every
// member it knows.
std::string view_of(const ac::asio_driver::Cluster& cluster) {
  std::map<std::string, std::string> keys;
  for (const auto& [id, state] : cluster.node().cluster_state().nodes()) {
    if (auto value = state.value("cluster")) keys[id.name] = *value;
  }
  std::string line = "[" + cluster.self_id().name + "] live:";
  for (const auto& id : cluster.live_nodes()) line += " " + id.name;
  line += " | cluster keys:";
  for (const auto& [name, value] : keys) line += " " + name + "=" + value;
  return line;
}

bool converged(const std::vector<std::unique_ptr<ac::asio_driver::Cluster>>& nodes) {
  for (const auto& node : nodes) {
    if (node->live_nodes().size() != nodes.size()) return false;
    for (const auto& other : nodes) {
      const std::string expected = other->get("cluster").value_or("");
      if (!ac::asio_driver::Cluster::has_key_value(node->node(), other->self_id().name, "cluster",
                                                   expected)) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 10;
  const int base_port = argc > 2 ? std::atoi(argv[2]) : 7000;
  if (seconds <= 0 || base_port <= 0 || base_port > 65533) {
    std::fprintf(stderr, "usage: aiocluster-quickstart [SECONDS] [BASE_PORT]\n");
    return 2;
  }
  asio::io_context io;
  std::vector<std::unique_ptr<ac::asio_driver::Cluster>> nodes;
  try {
    for (int i = 0; i < 3; ++i) {
      ac::Config config;
      config.cluster_id = "simple-aiocluster";
      // Generation 0: the driver fills in the wall-clock time in nanoseconds,
      // so a restarted process is a new incarnation to its peers.
      config.node_id =
          ac::NodeId{"simple" + std::to_string(i + 1), /*generation_id=*/0,
                     ac::Address{"127.0.0.1", static_cast<std::uint16_t>(base_port + i)}, ""};
      // A ring of seeds: 1 knows 3, 2 knows 1, 3 knows 2.
      config.seeds = {
          ac::Address{"127.0.0.1", static_cast<std::uint16_t>(base_port + (i + 2) % 3)}};
      config.gossip_interval = 1s;
      nodes.push_back(std::make_unique<ac::asio_driver::Cluster>(
          io, config, ac::KeyValues{{"cluster", std::to_string(i + 1)}}));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aiocluster-quickstart: %s\n", e.what());
    return 1;
  }

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  for (auto& node : nodes) {
    const std::string self = node->self_id().name;
    node->on_node_join([self, &elapsed](const ac::NodeId& id) {
      std::printf("%5.1fs  %s sees %s join\n", elapsed(), self.c_str(), id.name.c_str());
    });
    node->on_node_leave([self, &elapsed](const ac::NodeId& id) {
      std::printf("%5.1fs  %s sees %s leave\n", elapsed(), self.c_str(), id.name.c_str());
    });
    node->start();
  }
  std::printf(
      "three nodes on 127.0.0.1:%d-%d, cluster id simple-aiocluster, gossip every 1 s, %d s\n",
      base_port, base_port + 2, seconds);

  // Once a second, print every node's view when any changed.
  asio::steady_timer tick(io);
  std::vector<std::string> shown(nodes.size());
  int ticks = 0;
  std::function<void()> report = [&] {
    bool changed = false;
    for (std::size_t i = 0; i < nodes.size(); ++i) changed |= view_of(*nodes[i]) != shown[i];
    if (changed) {
      std::printf("%5.1fs  views:\n", elapsed());
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        shown[i] = view_of(*nodes[i]);
        std::printf("        %s\n", shown[i].c_str());
      }
    }
    std::fflush(stdout);
    if (++ticks >= seconds) {
      for (auto& node : nodes) node->stop();
      return;
    }
    tick.expires_after(1s);
    tick.async_wait([&](std::error_code ec) {
      if (!ec) report();
    });
  };
  tick.expires_after(1s);
  tick.async_wait([&](std::error_code ec) {
    if (!ec) report();
  });
  io.run();

  const bool ok = converged(nodes);
  std::printf("%5.1fs  final views:\n", elapsed());
  for (const auto& node : nodes) std::printf("        %s\n", view_of(*node).c_str());
  std::printf(ok ? "converged: every node sees all three live, with their cluster keys\n"
                 : "NOT converged\n");
  return ok ? 0 : 1;
}
