// A user of the installed package: one libevent node on an ephemeral port,
// started and stopped on its own event_base, its metrics and state rendered
// by the installed headers alone (no JSON library needed).
#include <aiocluster/common/metrics.h>
#include <aiocluster/common/state_json.h>
#include <aiocluster/libevent/cluster.h>
#include <event2/event.h>

#include <cstdio>
#include <string>

int main() {
  event_base* base = event_base_new();
  if (base == nullptr) return 1;
  int status = 1;
  {
    aiocluster::Config config;
    config.cluster_id = "consumer";
    config.node_id = {"consumer", 1, {"127.0.0.1", 0}, ""};
    aiocluster::libevent_driver::Cluster cluster(base, config, {{"k", "v"}});
    cluster.start();
    namespace drv = aiocluster::driver;
    const std::string metrics =
        drv::prometheus_metrics(cluster.node(), cluster.driver_stats(), cluster.hook_stats());
    const std::string state =
        drv::cluster_json(cluster.node(), cluster.driver_stats(), cluster.hook_stats());
    const bool rendered = metrics.find("\naiocluster_live_members 1\n") != std::string::npos &&
                          state.find("\"live\":1") != std::string::npos;
    cluster.stop();
    event_base_dispatch(base);  // returns: nothing of the cluster is left on the base
    if (cluster.local_address().port != 0 && cluster.get("k") == "v" && rendered) status = 0;
  }
  event_base_free(base);
  std::puts(status == 0 ? "libevent consumer ok" : "libevent consumer FAILED");
  return status;
}
