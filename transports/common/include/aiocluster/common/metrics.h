// A node's counters in the Prometheus text exposition format (0.0.4): the
// core's Stats, a driver's DriverStats and HookStats, how many members are
// live and dead, and each member's phi while the cluster is small enough.
// For an application that serves them from its own HTTP endpoint:
//
//   std::string text = aiocluster::driver::prometheus_metrics(
//       cluster.node(), cluster.driver_stats(), cluster.hook_stats());
//   reply(200, "text/plain; version=0.0.4", text);
//
// Call it where the node may be read: on the loop of a libevent Cluster, on
// the strand of an Asio Cluster. The names are listed in the README
// ("Operating a cluster").
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "aiocluster/common/hooks.h"
#include "aiocluster/common/stats.h"
#include "aiocluster/node.h"

namespace aiocluster::driver {

struct MetricsOptions {
  // aiocluster_member_phi has one series per known member while the node
  // knows at most this many; above, it is left out (and
  // aiocluster_member_phi_omitted is 1) so a large cluster cannot flood the
  // monitoring system with series.
  std::size_t max_phi_members = 100;
};

std::string prometheus_metrics(const Node& node, const DriverStats& driver, const HookStats& hooks,
                               const MetricsOptions& options = {});

// Writes metric families: a HELP and a TYPE line, then the samples, with
// label values escaped. prometheus_metrics uses it; an application appends
// its own families with it (names must be unique across the exposition).
class PrometheusWriter {
 public:
  struct Label {
    std::string_view name;
    std::string_view value;
  };

  // A family of one unlabelled sample.
  void counter(std::string_view name, std::string_view help, std::uint64_t value);
  void gauge(std::string_view name, std::string_view help, double value);

  // A family with labelled samples: family(), then sample() for each.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::initializer_list<Label> labels, std::uint64_t value);
  void sample(std::initializer_list<Label> labels, double value);

  const std::string& text() const { return text_; }

 private:
  void sample_prefix(std::initializer_list<Label> labels);

  std::string text_;
  std::string family_;  // the name the samples belong to
};

}  // namespace aiocluster::driver
