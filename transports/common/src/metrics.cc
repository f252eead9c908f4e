#include "aiocluster/common/metrics.h"

#include <charconv>
#include <cmath>
#include <string>

#include "aiocluster/common/members.h"

namespace aiocluster::driver {

namespace {

void append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    const auto result = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, result.ptr);
  }
}

// Label values escape backslash, double quote and line feed; HELP text
// escapes backslash and line feed.
void append_escaped(std::string& out, std::string_view text, bool quotes) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void core_metrics(PrometheusWriter& w, const Stats& s) {
  const auto by_type = [&](const char* name, const char* help, const MessageCounts& counts) {
    w.family(name, "counter", help);
    w.sample({{"type", "syn"}}, counts.syn);
    w.sample({{"type", "synack"}}, counts.synack);
    w.sample({{"type", "ack"}}, counts.ack);
    w.sample({{"type", "bad_cluster"}}, counts.bad_cluster);
  };
  by_type("aiocluster_packets_received_total", "Packets accepted, by message type.", s.packets_in);
  by_type("aiocluster_packets_sent_total", "Packets sent, by message type.", s.packets_out);
  w.counter("aiocluster_received_bytes_total", "Bytes of accepted packets.", s.bytes_in);
  w.counter("aiocluster_sent_bytes_total", "Bytes of packets sent.", s.bytes_out);
  w.counter("aiocluster_packets_received_above_max_payload_total",
            "Packets accepted although larger than max_payload_size (within "
            "max_inbound_payload_size).",
            s.packets_in_above_max_payload);

  w.family("aiocluster_packets_dropped_total", "counter", "Packets dropped, by reason.");
  w.sample({{"reason", "oversized"}}, s.dropped_oversized);
  w.sample({{"reason", "malformed"}}, s.dropped_malformed);
  w.sample({{"reason", "unknown_message"}}, s.dropped_unknown_message);
  w.sample({{"reason", "wrong_cluster"}}, s.dropped_wrong_cluster);
  w.sample({{"reason", "out_of_place"}}, s.dropped_out_of_place);
  w.sample({{"reason", "tls_name"}}, s.dropped_tls_name);
  w.sample({{"reason", "tls_nameless"}}, s.dropped_tls_nameless);
  w.sample({{"reason", "rate_limited"}}, s.dropped_rate_limited);
  w.sample({{"reason", "unsealed"}}, s.dropped_unsealed);
  w.sample({{"reason", "seal_malformed"}}, s.dropped_seal_malformed);
  w.sample({{"reason", "seal_unknown_key"}}, s.dropped_seal_unknown_key);
  w.sample({{"reason", "seal_forged"}}, s.dropped_seal_forged);
  w.sample({{"reason", "seal_stale"}}, s.dropped_seal_stale);
  w.sample({{"reason", "seal_replayed"}}, s.dropped_seal_replayed);
  w.sample({{"reason", "decompress_oversized"}}, s.dropped_decompress_oversized);
  w.sample({{"reason", "decompress_malformed"}}, s.dropped_decompress_malformed);

  w.counter("aiocluster_node_deltas_applied_total", "Node deltas applied.", s.node_deltas_applied);
  w.counter("aiocluster_resets_applied_total", "Node deltas applied after wiping the replica.",
            s.resets_applied);
  w.family("aiocluster_node_deltas_rejected_total", "counter", "Node deltas rejected, by reason.");
  w.sample({{"reason", "gap"}}, s.rejected_gap);
  w.sample({{"reason", "reset"}}, s.rejected_reset);
  w.sample({{"reason", "stale"}}, s.rejected_stale);
  w.sample({{"reason", "malformed"}}, s.rejected_malformed);
  w.sample({{"reason", "limit"}}, s.rejected_limit);
  w.counter("aiocluster_key_values_applied_total", "Key-values applied from deltas.",
            s.key_values_applied);
  w.counter("aiocluster_key_value_bytes_copied_total",
            "Bytes of applied key-values copied out of their packet rather than kept in it.",
            s.key_value_bytes_copied);
  w.counter("aiocluster_completeness_capped_total",
            "Node deltas that claimed a max_version beyond what they carried.",
            s.completeness_capped);

  w.counter("aiocluster_gossip_rounds_total", "Gossip rounds run.", s.rounds);
  w.counter("aiocluster_local_pauses_total",
            "Gaps between inputs long enough to mean this process did not run.", s.local_pauses);
  w.counter("aiocluster_convictions_deferred_total",
            "Liveness checks that spared a node because this process had paused.",
            s.convictions_deferred);
  w.counter("aiocluster_nodes_refused_total",
            "Digest entries refused beyond max_nodes or max_node_id_size.", s.nodes_refused);
  w.counter("aiocluster_nodes_removed_total", "Dead nodes garbage-collected.", s.nodes_removed);
  w.counter("aiocluster_nodes_revived_total",
            "Nodes scheduled for deletion taken off the schedule by a fresh heartbeat.",
            s.nodes_revived);
  w.counter("aiocluster_tombstones_removed_total", "Tombstones garbage-collected.",
            s.tombstones_removed);
  w.counter("aiocluster_digests_truncated_total", "Digests that did not fit one packet.",
            s.digests_truncated);
  w.counter("aiocluster_exchanges_evicted_total",
            "Datagram exchanges forgotten early at max_pending_exchanges.", s.exchanges_evicted);
  w.counter("aiocluster_compact_digests_sent_total",
            "Compact digests sent (proto/README.md), partial ones included.",
            s.compact_digests_out);
  w.counter("aiocluster_partial_digests_sent_total",
            "Compact digests sent that cover part of the members.", s.partial_digests_out);
  w.counter("aiocluster_compact_digests_received_total", "Compact digests read.",
            s.compact_digests_in);
  w.counter("aiocluster_compact_digests_rejected_total",
            "Malformed compact digests (their packets dropped).", s.compact_digests_rejected);
  w.counter("aiocluster_compact_entries_unresolved_total",
            "Compact digest entries naming no known member, or several.",
            s.compact_entries_unresolved);
  w.counter("aiocluster_aligned_digests_sent_total",
            "Aligned compact digests sent (by position, no hashes).", s.aligned_digests_out);
  w.counter("aiocluster_aligned_digests_received_total", "Aligned compact digests read.",
            s.aligned_digests_in);
  w.counter("aiocluster_aligned_digests_mismatched_total",
            "Aligned compact digests not on our membership (read as covering nothing).",
            s.aligned_digests_mismatched);
  w.counter("aiocluster_packets_sealed_total", "Packets sealed and sent (proto/README.md).",
            s.packets_sealed);
  w.counter("aiocluster_packets_opened_total", "Sealed packets opened and accepted.",
            s.packets_opened);
  w.counter("aiocluster_packets_compressed_total",
            "Packets sent zstd-compressed (proto/README.md).", s.packets_compressed);
  w.counter("aiocluster_packets_decompressed_total", "Compressed packets decoded.",
            s.packets_decompressed);
  w.counter("aiocluster_announcements_malformed_total",
            "Extension announcements that could not be read (ignored).", s.announcements_malformed);
}

void driver_metrics(PrometheusWriter& w, const DriverStats& d) {
  w.counter("aiocluster_exchanges_started_total", "Syns sent: TCP exchanges opened, or datagrams.",
            d.exchanges_started);
  w.counter("aiocluster_exchanges_completed_total", "TCP exchanges that got their reply.",
            d.exchanges_completed);
  w.counter("aiocluster_exchanges_refused_total", "Syns dropped at a cap on outgoing work.",
            d.exchanges_refused);
  w.counter("aiocluster_exchanges_skipped_busy_total",
            "Syns not sent: our previous exchange with that peer was still running.",
            d.exchanges_skipped_busy);
  w.counter("aiocluster_connections_accepted_total", "Gossip connections accepted.",
            d.connections_accepted);
  w.counter("aiocluster_connections_refused_total",
            "Gossip connections closed on accept at max_inbound_connections.",
            d.connections_refused);
  w.counter("aiocluster_connections_evicted_total",
            "Gossip connections closed to make room at max_inbound_connections.",
            d.connections_evicted);
  w.counter("aiocluster_connect_failures_total", "Name resolutions or connects that failed.",
            d.connect_failures);
  w.counter("aiocluster_tls_failures_total", "TLS refused: certificate or name, either side.",
            d.tls_failures);
  w.counter("aiocluster_timeouts_total", "Connect, read or write steps that outlived a timeout.",
            d.timeouts);
  w.counter("aiocluster_framing_errors_total",
            "Frames with a length prefix of zero or above the inbound maximum.", d.framing_errors);
  w.counter("aiocluster_large_frames_refused_total",
            "Frames above max_payload_size refused for want of max_large_frame_bytes.",
            d.large_frames_refused);
  w.counter("aiocluster_io_errors_total", "Other read and write failures, early closes.",
            d.io_errors);
  w.counter("aiocluster_datagrams_received_total", "Datagrams received.", d.datagrams_in);
  w.counter("aiocluster_datagrams_sent_total", "Datagrams sent.", d.datagrams_out);
}

void hook_metrics(PrometheusWriter& w, const HookStats& h) {
  w.counter("aiocluster_hook_events_enqueued_total", "Events accepted into the hook queue.",
            h.enqueued);
  w.counter("aiocluster_hook_events_processed_total", "Events handed to every matching hook.",
            h.processed);
  w.counter("aiocluster_hook_events_dropped_total",
            "Events refused (hook queue full) or left over at stop.", h.dropped);
  w.counter("aiocluster_hook_errors_total", "Hook calls that threw.", h.errors);
}

void member_metrics(PrometheusWriter& w, const Node& node, const MetricsOptions& options) {
  const NodeId& self = node.self_id();
  const std::string generation = std::to_string(self.generation_id);
  w.family("aiocluster_node_info", "gauge", "This node: its name, generation and cluster id.");
  w.sample(
      {{"node", self.name}, {"generation", generation}, {"cluster_id", node.config().cluster_id}},
      std::uint64_t{1});
  w.gauge("aiocluster_live_members", "Members live, this node included.",
          static_cast<double>(node.live_nodes().size()));
  w.gauge("aiocluster_dead_members", "Known members not live (scheduled for deletion included).",
          static_cast<double>(node.dead_nodes().size()));

  const auto& members = node.cluster_state().nodes();
  const bool omitted = members.size() > options.max_phi_members;
  w.gauge("aiocluster_member_phi_omitted",
          "1 when aiocluster_member_phi is left out: more members than max_phi_members.",
          omitted ? 1.0 : 0.0);
  if (omitted) return;
  w.family("aiocluster_member_phi", "gauge",
           "Phi accrual suspicion of each member with enough heartbeats to have one.");
  for (const auto& [id, state] : members) {
    const auto phi = node.phi(id);
    if (!phi) continue;
    w.sample({{"member", id.name}, {"generation", std::to_string(id.generation_id)}}, *phi);
  }
}

}  // namespace

void PrometheusWriter::counter(std::string_view name, std::string_view help, std::uint64_t value) {
  family(name, "counter", help);
  sample({}, value);
}

void PrometheusWriter::gauge(std::string_view name, std::string_view help, double value) {
  family(name, "gauge", help);
  sample({}, value);
}

void PrometheusWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  family_ = name;
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  append_escaped(text_, help, false);
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += type;
  text_ += '\n';
}

void PrometheusWriter::sample(std::initializer_list<Label> labels, std::uint64_t value) {
  sample_prefix(labels);
  text_ += std::to_string(value);
  text_ += '\n';
}

void PrometheusWriter::sample(std::initializer_list<Label> labels, double value) {
  sample_prefix(labels);
  append_number(text_, value);
  text_ += '\n';
}

void PrometheusWriter::sample_prefix(std::initializer_list<Label> labels) {
  text_ += family_;
  if (labels.size() > 0) {
    char separator = '{';
    for (const Label& label : labels) {
      text_ += separator;
      text_ += label.name;
      text_ += "=\"";
      append_escaped(text_, label.value, true);
      text_ += '"';
      separator = ',';
    }
    text_ += '}';
  }
  text_ += ' ';
}

std::string prometheus_metrics(const Node& node, const DriverStats& driver, const HookStats& hooks,
                               const MetricsOptions& options) {
  PrometheusWriter w;
  core_metrics(w, node.stats());
  driver_metrics(w, driver);
  hook_metrics(w, hooks);
  member_metrics(w, node, options);
  return w.text();
}

}  // namespace aiocluster::driver
