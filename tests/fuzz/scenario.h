// A small cluster wired together in memory on virtual time, and the scenario
// that leaves node 0 holding a well-populated state: converged replicas,
// tombstones, garbage-collected versions, a dead node scheduled for deletion,
// and Syns awaiting replies. The handle_packet fuzz target, its seed
// generator and the hostile-input tests all start from it.
#pragma once

#include <aiocluster/aiocluster.h>

#include <functional>
#include <memory>
#include <vector>

namespace fuzz {

using namespace std::chrono_literals;

inline constexpr const char* kClusterId = "fuzz-cluster";

// Node `index` of the scenario: 127.0.0.1:7000+index, tls_name
// "node-<index>.test", a short GC grace and dead-node grace so the scenario
// reaches those states within minutes of virtual time.
aiocluster::Config scenario_config(int index);

struct MemCluster {
  std::vector<std::unique_ptr<aiocluster::Node>> nodes;
  std::vector<bool> down;  // crashed: neither sends nor answers
  aiocluster::Instant now = aiocluster::Instant{} + std::chrono::hours(1000);
  // Sees every packet carried: (from, to, stage at the receiver, bytes).
  std::function<void(int, int, aiocluster::Stage, aiocluster::ByteView)> observer;

  aiocluster::Node& add(aiocluster::Config config, const aiocluster::KeyValues& kvs = {});
  int index_of(const aiocluster::Address& addr) const;
  // One whole stream exchange: Syn, SynAck (or BadCluster), Ack.
  void exchange(int from, const aiocluster::Transmit& tx);
  // Advances virtual time by `step` and runs every node's due round.
  void step(aiocluster::Duration step = 1s);
  void run(aiocluster::Duration total);
  // Every up node sees every other up node live at its current max_version.
  bool converged() const;
};

// Five nodes; node 0 ends with the populated state described above.
// Deterministic: every call builds the same cluster.
MemCluster build_scenario();

}  // namespace fuzz
