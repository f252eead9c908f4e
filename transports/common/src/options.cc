#include "aiocluster/common/options.h"

namespace aiocluster::driver {

std::optional<std::string> Options::validate() const {
  if (tls) {
    if (transport != Transport::kTcp) return "tls: TLS runs over transport tcp only";
    if (tls->cert_file.empty()) return "tls.cert_file: must not be empty";
    if (tls->key_file.empty()) return "tls.key_file: must not be empty";
    if (tls->ca_file.empty()) return "tls.ca_file: must not be empty";
  }
  if (connect_timeout <= Duration::zero()) return "connect_timeout: must be positive";
  if (read_timeout <= Duration::zero()) return "read_timeout: must be positive";
  if (write_timeout <= Duration::zero()) return "write_timeout: must be positive";
  if (max_outgoing_exchanges == 0) return "max_outgoing_exchanges: must be at least 1";
  if (max_inbound_connections == 0) return "max_inbound_connections: must be at least 1";
  if (max_waiting_per_host == 0) return "max_waiting_per_host: must be at least 1";
  if (max_pending_datagrams == 0) return "max_pending_datagrams: must be at least 1";
  if (max_large_frame_bytes == 0) return "max_large_frame_bytes: must be at least 1";
  if (hook_queue_capacity == 0) return "hook_queue_capacity: must be at least 1";
  if (hook_drain_timeout < Duration::zero()) return "hook_drain_timeout: must not be negative";
  return std::nullopt;
}

}  // namespace aiocluster::driver
