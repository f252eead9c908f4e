// Quick start on the libevent driver: three cluster members in one process,
// over TCP on one event_base the program owns. Each starts with one key,
// "cluster", and knows a single seed; within a few gossip rounds every member
// sees all three live, with their keys. The same nodes, ports, cluster id and
// keys as the Asio quick start (examples/quickstart).
//
// Usage: aiocluster-quickstart-libevent [SECONDS] [BASE_PORT]   (defaults: 10, 7000)
#include <aiocluster/libevent/cluster.h>
#include <event2/event.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ac = aiocluster;
namespace ld = aiocluster::libevent_driver;
using namespace std::chrono_literals;

namespace {

// "[simple1] live: simple1 simple2 | cluster keys: simple1=1 simple2=2 simple3=3":
// the members this node sees live, and the `cluster` key it holds for every
// member it knows.
std::string view_of(const ld::Cluster& cluster) {
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

bool converged(const std::vector<std::unique_ptr<ld::Cluster>>& nodes) {
  for (const auto& node : nodes) {
    if (node->live_nodes().size() != nodes.size()) return false;
    for (const auto& other : nodes) {
      const std::string expected = other->get("cluster").value_or("");
      if (!ld::Cluster::has_key_value(node->node(), other->self_id().name, "cluster", expected)) {
        return false;
      }
    }
  }
  return true;
}

struct BaseFree {
  void operator()(event_base* base) const { event_base_free(base); }
};
struct EventFree {
  void operator()(event* ev) const { event_free(ev); }
};

// The once-a-second report: what the timer callback needs.
struct Report {
  std::vector<std::unique_ptr<ld::Cluster>>* nodes;
  std::chrono::steady_clock::time_point start;
  int seconds;
  int ticks = 0;
  std::vector<std::string> shown;
  event* timer = nullptr;

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
};

// Once a second, print every node's view when any changed; stop the nodes
// when the time is up, which leaves the base without events.
void on_tick(evutil_socket_t, short, void* arg) {
  auto& r = *static_cast<Report*>(arg);
  auto& nodes = *r.nodes;
  bool changed = false;
  for (std::size_t i = 0; i < nodes.size(); ++i) changed |= view_of(*nodes[i]) != r.shown[i];
  if (changed) {
    std::printf("%5.1fs  views:\n", r.elapsed());
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      r.shown[i] = view_of(*nodes[i]);
      std::printf("        %s\n", r.shown[i].c_str());
    }
  }
  std::fflush(stdout);
  if (++r.ticks >= r.seconds) {
    for (auto& node : nodes) node->stop();
    return;
  }
  const timeval second{1, 0};
  event_add(r.timer, &second);
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 10;
  const int base_port = argc > 2 ? std::atoi(argv[2]) : 7000;
  if (seconds <= 0 || base_port <= 0 || base_port > 65533) {
    std::fprintf(stderr, "usage: aiocluster-quickstart-libevent [SECONDS] [BASE_PORT]\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);  // as every libevent program
  const std::unique_ptr<event_base, BaseFree> base(event_base_new());
  if (!base) {
    std::fprintf(stderr, "aiocluster-quickstart-libevent: event_base_new failed\n");
    return 1;
  }
  std::vector<std::unique_ptr<ld::Cluster>> nodes;
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
      nodes.push_back(std::make_unique<ld::Cluster>(
          base.get(), config, ac::KeyValues{{"cluster", std::to_string(i + 1)}}));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aiocluster-quickstart-libevent: %s\n", e.what());
    return 1;
  }

  Report report{&nodes, std::chrono::steady_clock::now(), seconds, 0,
                std::vector<std::string>(nodes.size())};
  for (auto& node : nodes) {
    const std::string self = node->self_id().name;
    node->on_node_join([self, &report](const ac::NodeId& id) {
      std::printf("%5.1fs  %s sees %s join\n", report.elapsed(), self.c_str(), id.name.c_str());
    });
    node->on_node_leave([self, &report](const ac::NodeId& id) {
      std::printf("%5.1fs  %s sees %s leave\n", report.elapsed(), self.c_str(), id.name.c_str());
    });
    node->start();
  }
  std::printf(
      "three nodes on 127.0.0.1:%d-%d (libevent), cluster id simple-aiocluster, gossip every 1 s, "
      "%d s\n",
      base_port, base_port + 2, seconds);

  const std::unique_ptr<event, EventFree> tick(evtimer_new(base.get(), on_tick, &report));
  report.timer = tick.get();
  const timeval second{1, 0};
  event_add(tick.get(), &second);
  event_base_dispatch(base.get());  // returns once the nodes have stopped

  const bool ok = converged(nodes);
  std::printf("%5.1fs  final views:\n", report.elapsed());
  for (const auto& node : nodes) std::printf("        %s\n", view_of(*node).c_str());
  std::printf(ok ? "converged: every node sees all three live, with their cluster keys\n"
                 : "NOT converged\n");
  return ok ? 0 : 1;
}
