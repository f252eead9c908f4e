// A user of the installed package: one libevent node on an ephemeral port,
// started and stopped on its own event_base.
#include <aiocluster/libevent/cluster.h>
#include <event2/event.h>

#include <cstdio>

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
    cluster.stop();
    event_base_dispatch(base);  // returns: nothing of the cluster is left on the base
    if (cluster.local_address().port != 0 && cluster.get("k") == "v") status = 0;
  }
  event_base_free(base);
  std::puts(status == 0 ? "libevent consumer ok" : "libevent consumer FAILED");
  return status;
}
