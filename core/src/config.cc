#include "aiocluster/config.h"

#include "codec_internal.h"

namespace aiocluster {

std::optional<std::string> Config::validate() const {
  if (cluster_id.empty()) return "cluster_id: must not be empty";
  if (node_id.name.empty()) return "node_id.name: must not be empty";
  if (node_id.gossip_advertise_addr.host.empty()) {
    return "node_id.gossip_advertise_addr.host: must not be empty";
  }
  if (node_id.gossip_advertise_addr.port == 0) {
    return "node_id.gossip_advertise_addr.port: must not be 0";
  }
  if (node_id.generation_id == 0) {
    return "node_id.generation_id: must not be 0; set it to a value unique to this start of the "
           "process, such as the wall-clock time in nanoseconds (the Asio and libevent drivers "
           "fill in 0 that way)";
  }
  for (const auto& seed : seeds) {
    if (seed.host.empty() || seed.port == 0)
      return "seeds: '" + seed.to_string() + "' is not host:port";
  }
  if (gossip_interval <= Duration::zero()) return "gossip_interval: must be positive";
  if (sealing.replay_window <= Duration::zero()) return "sealing.replay_window: must be positive";
  if (sealing.max_replay_senders == 0) return "sealing.max_replay_senders: must be at least 1";
  if (gossip_count == 0) return "gossip_count: must be at least 1";
  // A packet must at least hold a Syn with our own digest entry.
  if (max_payload_size < 512) return "max_payload_size: must be at least 512";
  if (max_payload_size > 16 * 1024 * 1024) return "max_payload_size: must be at most 16 MiB";
  if (max_inbound_payload_size < max_payload_size) {
    return "max_inbound_payload_size: must be at least max_payload_size";
  }
  if (max_inbound_payload_size > 64 * 1024 * 1024) {
    return "max_inbound_payload_size: must be at most 64 MiB";
  }
  if (marked_for_deletion_grace_period <= Duration::zero()) {
    return "marked_for_deletion_grace_period: must be positive";
  }
  if (dead_node_grace_period <= Duration::zero()) return "dead_node_grace_period: must be positive";
  if (exchange_timeout <= Duration::zero()) return "exchange_timeout: must be positive";
  const auto& fd = failure_detector;
  if (!(fd.phi_threshold > 0.0)) return "failure_detector.phi_threshold: must be positive";
  if (fd.sampling_window_size == 0)
    return "failure_detector.sampling_window_size: must be at least 1";
  if (fd.max_interval <= Duration::zero()) return "failure_detector.max_interval: must be positive";
  if (fd.initial_interval && *fd.initial_interval <= Duration::zero()) {
    return "failure_detector.initial_interval: must be positive";
  }
  if (fd.min_mean_interval && *fd.min_mean_interval <= Duration::zero()) {
    return "failure_detector.min_mean_interval: must be positive";
  }
  if (fd.detection_time && *fd.detection_time < 2 * gossip_interval) {
    return "failure_detector.detection_time: must be at least two gossip intervals";
  }
  if (fd.min_std_deviation && *fd.min_std_deviation <= Duration::zero()) {
    return "failure_detector.min_std_deviation: must be positive";
  }
  if (fd.acceptable_heartbeat_pause < Duration::zero()) {
    return "failure_detector.acceptable_heartbeat_pause: must not be negative";
  }
  if (fd.local_pause_threshold && *fd.local_pause_threshold <= gossip_interval) {
    return "failure_detector.local_pause_threshold: must be longer than gossip_interval";
  }
  if (limits.max_nodes < 1) return "limits.max_nodes: must be at least 1";
  if (limits.max_key_size < 1) return "limits.max_key_size: must be at least 1";
  if (limits.max_pending_exchanges < 1) return "limits.max_pending_exchanges: must be at least 1";
  if (limits.datagram_syn_burst < 1) return "limits.datagram_syn_burst: must be at least 1";
  if (limits.datagram_syns_per_round < 1)
    return "limits.datagram_syns_per_round: must be at least 1";
  if (limits.max_rate_limited_sources < 1)
    return "limits.max_rate_limited_sources: must be at least 1";
  if (wire_size::node_id(node_id) > limits.max_node_id_size) {
    return "node_id: larger than limits.max_node_id_size";
  }
  // Protobuf refuses to parse strings that are not UTF-8: peers could not
  // read a single packet of this node.
  if (!is_valid_utf8(cluster_id)) return "cluster_id: must be valid UTF-8";
  if (!is_valid_utf8(node_id.name) || !is_valid_utf8(node_id.gossip_advertise_addr.host) ||
      !is_valid_utf8(node_id.tls_name)) {
    return "node_id: must be valid UTF-8";
  }
  return std::nullopt;
}

}  // namespace aiocluster
