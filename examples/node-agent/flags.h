// aiocluster-node's command line: the flags, their defaults and checks,
// parsed by CLI11 (which also writes --help from these definitions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "aiocluster/common/options.h"
#include "aiocluster/node.h"
#include "aiocluster/sealing.h"
#include "aiocluster/types.h"

namespace aiocluster::agent {

struct Flags {
  std::string name;
  Address listen;
  std::optional<Address> advertise;
  std::vector<Address> seeds;
  std::string cluster_id = "aiocluster";
  std::uint64_t gossip_interval_ms = 1000;
  driver::Transport transport = driver::Transport::kTcp;
  KeyValues kv;
  std::optional<std::uint64_t> generation;
  std::string tls_cert, tls_key, tls_ca, tls_name, tls_server_hostname;
  bool tls_allow_nameless_peers = false;
  // Sealed gossip: the keyring file (keyring_file.h), reloaded on SIGHUP,
  // and the rollout mode. Empty: no sealing.
  std::string keyring;
  SealMode seal_mode = SealMode::kRequired;
  std::uint64_t duration_s = 0;
  std::uint64_t report_ms = 500;
  std::optional<double> phi_threshold;
  std::optional<std::uint64_t> fd_initial_interval_ms;
  std::optional<std::uint64_t> detection_time_ms;
  std::string phi_model = "linear";
  bool no_compact_digest = false;
  bool no_aligned_digest = false;
  std::string compression = "on";
  bool verbose = false;
  std::string driver = "asio";

  // The HTTP API, metrics and dashboard: off unless --http is given.
  std::optional<Address> http;
  std::size_t http_max_connections = 64;
  std::size_t http_max_header_bytes = 8 * 1024;
  std::size_t http_max_body_bytes = 64 * 1024;
  std::size_t http_max_event_backlog_bytes = 1024 * 1024;
  std::uint64_t http_cluster_interval_ms = 1000;
  std::size_t metrics_max_phi_members = 100;
};

// A flag the user got wrong: one line naming the flag.
struct FlagError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What the command line asks for: flags to run with, or a text to print
// (--help) and exit with status 0.
struct Command {
  std::optional<Flags> flags;
  std::string help;
};

// Throws FlagError. `libevent_built`: whether --driver libevent is available.
Command parse_flags(int argc, const char* const* argv, bool libevent_built);

}  // namespace aiocluster::agent
