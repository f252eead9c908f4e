// A user's program built against the installed package.
#include <aiocluster/aiocluster.h>

#include <chrono>

int main() {
  aiocluster::Config config;
  config.cluster_id = "consumer";
  config.node_id = {"n1", 1, aiocluster::Address{"127.0.0.1", 7000}, ""};
  aiocluster::Node node(config, std::chrono::steady_clock::time_point{}, 1, {{"k", "v"}});
  return node.get("k") == "v" ? 0 : 1;
}
