#include "flags.h"

#include <CLI/CLI.hpp>
#include <charconv>
#include <functional>

namespace aiocluster::agent {

namespace {

// Validators check the text before CLI11 converts it; their messages come
// out as "--flag: message". Their names are empty: the help shows each
// option's type_name instead.
CLI::Validator check(std::function<std::string(const std::string&)> problem) {
  return {[problem = std::move(problem)](std::string& text) { return problem(text); }, ""};
}

CLI::Validator address() {
  return check([](const std::string& text) {
    return Address::parse(text) ? std::string() : "expected HOST:PORT, got '" + text + "'";
  });
}

CLI::Validator key_value() {
  return check([](const std::string& text) {
    const auto eq = text.find('=');
    return eq == std::string::npos || eq == 0 ? "expected KEY=VALUE, got '" + text + "'"
                                              : std::string();
  });
}

CLI::Validator not_empty() {
  return check([](const std::string& text) { return text.empty() ? "must not be empty" : ""; });
}

// Digits only (no sign: strtoull would take "-5" as a huge number).
CLI::Validator integer_at_least(std::uint64_t min) {
  return check([min](const std::string& text) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < min) {
      return "expected an integer >= " + std::to_string(min) + ", got '" + text + "'";
    }
    return std::string();
  });
}

CLI::Validator positive_number() {
  return check([](const std::string& text) {
    double value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size() || !(value > 0)) {
      return "expected a positive number, got '" + text + "'";
    }
    return std::string();
  });
}

CLI::Validator one_of(std::vector<std::string> choices) {
  return check([choices = std::move(choices)](const std::string& text) {
    std::string all;
    for (const auto& choice : choices) {
      if (text == choice) return std::string();
      all += (all.empty() ? "" : " or ") + choice;
    }
    return "expected " + all + ", got '" + text + "'";
  });
}

// CLI11 reports "--flag: what"; other messages (a missing or unexpected
// flag) already name it. Either way, one line.
std::string one_line(const CLI::ParseError& e) {
  std::string text = e.what();
  for (char& c : text) {
    if (c == '\n') c = ' ';
  }
  return text;
}

void check_tls(const Flags& f) {
  const int files = !f.tls_cert.empty() + !f.tls_key.empty() + !f.tls_ca.empty();
  if (files != 0 && files != 3) {
    throw FlagError(std::string(f.tls_cert.empty()  ? "--tls-cert"
                                : f.tls_key.empty() ? "--tls-key"
                                                    : "--tls-ca") +
                    ": TLS needs --tls-cert, --tls-key and --tls-ca together");
  }
  if (files == 3 && f.transport != driver::Transport::kTcp) {
    throw FlagError("--transport: TLS needs tcp");
  }
  if (!f.tls_name.empty() && files == 0) {
    throw FlagError("--tls-name: needs --tls-cert, --tls-key and --tls-ca");
  }
  if (!f.tls_server_hostname.empty() && files == 0) {
    throw FlagError("--tls-server-hostname: needs --tls-cert, --tls-key and --tls-ca");
  }
  if (f.tls_allow_nameless_peers && files == 0) {
    throw FlagError("--tls-allow-nameless-peers: needs --tls-cert, --tls-key and --tls-ca");
  }
}

// What CLI11 fills in as text (or a plain value) before it becomes Flags.
struct Texts {
  std::string listen, advertise, transport = "tcp", http, seal_mode = "required";
  std::vector<std::string> seeds, kv;
  std::uint64_t generation = 0, fd_initial_interval_ms = 0, detection_time_ms = 0;
  double phi_threshold = 0;
  // Options whose absence means "the default": set only when given.
  CLI::Option* has_generation = nullptr;
  CLI::Option* has_phi_threshold = nullptr;
  CLI::Option* has_fd_initial_interval = nullptr;
  CLI::Option* has_detection_time = nullptr;
  CLI::Option* has_seal_mode = nullptr;
};

// The node: identity, gossip, TLS, reporting, driver.
void add_node_flags(CLI::App& app, Flags& f, Texts& texts) {
  app.add_option("--name", f.name, "This node's name")
      ->required()
      ->type_name("NAME")
      ->check(not_empty());
  app.add_option("--listen", texts.listen, "Where to bind")
      ->required()
      ->type_name("HOST:PORT")
      ->check(address());
  app.add_option("--advertise", texts.advertise, "The address peers dial (default: --listen)")
      ->type_name("HOST:PORT")
      ->check(address());
  app.add_option("--seed", texts.seeds, "A node to contact when joining (repeatable)")
      ->type_name("HOST:PORT")
      ->check(address())
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  app.add_option("--cluster-id", f.cluster_id, "The cluster's id")
      ->type_name("ID")
      ->capture_default_str()
      ->check(not_empty());
  app.add_option("--gossip-interval-ms", f.gossip_interval_ms, "Time between gossip rounds")
      ->type_name("MS")
      ->capture_default_str()
      ->check(integer_at_least(1));
  app.add_option("--transport", texts.transport, "Gossip over tcp (framed) or udp (datagrams)")
      ->type_name("tcp|udp")
      ->capture_default_str()
      ->check(one_of({"tcp", "udp"}));
  app.add_option("--kv", texts.kv, "An initial key of this node (repeatable)")
      ->type_name("KEY=VALUE")
      ->check(key_value())
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  texts.has_generation =
      app.add_option("--generation", texts.generation,
                     "This incarnation, N >= 1 (default: the wall-clock time in ns at start)")
          ->type_name("N")
          ->check(integer_at_least(1));
  app.add_option("--keyring", f.keyring,
                 "Seal gossip (AES-256-GCM): one base64 32-byte key per line, the first "
                 "seals; reloaded on SIGHUP")
      ->type_name("FILE")
      ->check(not_empty());
  texts.has_seal_mode =
      app.add_option("--seal-mode", texts.seal_mode,
                     "With --keyring: required (refuse plaintext), or for a rollout "
                     "permissive (seal, accept plaintext) or open-only (send plaintext)")
          ->type_name("MODE")
          ->capture_default_str()
          ->check(one_of({"open-only", "permissive", "required"}));
  app.add_option("--tls-cert", f.tls_cert, "Certificate chain (PEM): mutual TLS over tcp")
      ->type_name("FILE");
  app.add_option("--tls-key", f.tls_key, "Its private key (PEM)")->type_name("FILE");
  app.add_option("--tls-ca", f.tls_ca, "CAs that sign the peers' certificates (PEM)")
      ->type_name("FILE");
  app.add_option("--tls-name", f.tls_name, "The name this node's certificate carries")
      ->type_name("NAME");
  app.add_option("--tls-server-hostname", f.tls_server_hostname,
                 "The name every server must prove (default: the node's tls_name, else the "
                 "address dialled)")
      ->type_name("NAME");
  app.add_flag("--tls-allow-nameless-peers", f.tls_allow_nameless_peers,
               "Let in verified client certificates naming nothing");
  app.add_option("--duration-s", f.duration_s, "Run this long; 0: until SIGINT or SIGTERM")
      ->type_name("S")
      ->capture_default_str()
      ->check(integer_at_least(0));
  app.add_option("--report-ms", f.report_ms, "One JSON line on stdout every M ms")
      ->type_name("M")
      ->capture_default_str()
      ->check(integer_at_least(1));
  texts.has_phi_threshold = app.add_option("--phi-threshold", texts.phi_threshold,
                                           "Failure detector threshold (default: 8)")
                                ->type_name("X")
                                ->check(positive_number());
  texts.has_fd_initial_interval =
      app.add_option("--fd-initial-interval-ms", texts.fd_initial_interval_ms,
                     "Failure detector prior (default: 5 rounds, at most 5000; one round "
                     "with --detection-time-ms)")
          ->type_name("MS")
          ->check(integer_at_least(1));
  texts.has_detection_time =
      app.add_option("--detection-time-ms", texts.detection_time_ms,
                     "About how long after a node stops everyone sees it dead; sets the "
                     "threshold (linear) or acceptable pause (normal). At least 2 rounds")
          ->type_name("MS")
          ->check(integer_at_least(1));
  app.add_option("--phi-model", f.phi_model,
                 "Failure detector: phi = silence / mean (linear, the protocol's) or the "
                 "normal-distribution form")
      ->type_name("linear|normal")
      ->capture_default_str()
      ->check(one_of({"linear", "normal"}));
  app.add_flag("--no-compact-digest", f.no_compact_digest,
               "Speak no compact digest (proto/README.md), like Python aiocluster 1.1.0");
  app.add_flag("--no-aligned-digest", f.no_aligned_digest,
               "Speak the compact digest without its aligned form (proto/README.md section "
               "2.3), like our nodes that predate it");
  app.add_option("--compression", f.compression,
                 "zstd-compress packets for peers that announce it (proto/README.md section 5)")
      ->type_name("on|off")
      ->capture_default_str()
      ->check(one_of({"on", "off"}));
  app.add_flag("--verbose", f.verbose, "Log I/O failures on stderr");
  app.add_option("--driver", f.driver, "The event loop the node runs on")
      ->type_name("asio|libevent")
      ->capture_default_str()
      ->check(one_of({"asio", "libevent"}));
}

// The HTTP API, metrics and dashboard.
void add_http_flags(CLI::App& app, Flags& f, Texts& texts) {
  app.add_option("--http", texts.http,
                 "Serve the HTTP API, /metrics and the dashboard (default: off)")
      ->type_name("HOST:PORT")
      ->check(address());
  app.add_option("--http-max-connections", f.http_max_connections,
                 "HTTP connections open at once; more are closed on accept")
      ->type_name("N")
      ->capture_default_str()
      ->check(integer_at_least(1));
  app.add_option("--http-max-header-bytes", f.http_max_header_bytes,
                 "Request line and headers of one request")
      ->type_name("BYTES")
      ->capture_default_str()
      ->check(integer_at_least(256));
  app.add_option("--http-max-body-bytes", f.http_max_body_bytes, "Body of one request")
      ->type_name("BYTES")
      ->capture_default_str()
      ->check(integer_at_least(0));
  app.add_option("--http-max-event-backlog-bytes", f.http_max_event_backlog_bytes,
                 "Unsent bytes an event stream may pile up before it is cut off")
      ->type_name("BYTES")
      ->capture_default_str()
      ->check(integer_at_least(1));
  app.add_option("--http-cluster-interval-ms", f.http_cluster_interval_ms,
                 "Period of the \"cluster\" event on /v1/events")
      ->type_name("MS")
      ->capture_default_str()
      ->check(integer_at_least(10));
  app.add_option("--metrics-max-phi-members", f.metrics_max_phi_members,
                 "Per-member phi gauges only up to this many known members")
      ->type_name("N")
      ->capture_default_str()
      ->check(integer_at_least(0));
}

// The texts as Flags, with the checks that span several flags.
Flags finish(Flags f, const Texts& texts, bool libevent_built) {
  if (f.driver == "libevent" && !libevent_built) {
    throw FlagError("--driver: this build has no libevent driver");
  }
  f.listen = *Address::parse(texts.listen);
  if (!texts.advertise.empty()) f.advertise = Address::parse(texts.advertise);
  for (const auto& seed : texts.seeds) f.seeds.push_back(*Address::parse(seed));
  for (const auto& pair : texts.kv) {
    const auto eq = pair.find('=');
    f.kv.emplace_back(pair.substr(0, eq), pair.substr(eq + 1));
  }
  f.transport = texts.transport == "udp" ? driver::Transport::kUdp : driver::Transport::kTcp;
  if (*texts.has_generation) f.generation = texts.generation;
  if (*texts.has_phi_threshold) f.phi_threshold = texts.phi_threshold;
  if (*texts.has_fd_initial_interval) f.fd_initial_interval_ms = texts.fd_initial_interval_ms;
  if (*texts.has_detection_time) {
    f.detection_time_ms = texts.detection_time_ms;
    if (*f.detection_time_ms < 2 * f.gossip_interval_ms) {
      throw FlagError("--detection-time-ms: must be at least two --gossip-interval-ms");
    }
  }
  if (!texts.http.empty()) f.http = Address::parse(texts.http);
  if (*texts.has_seal_mode && f.keyring.empty()) throw FlagError("--seal-mode: needs --keyring");
  f.seal_mode = texts.seal_mode == "open-only"    ? SealMode::kOpenOnly
                : texts.seal_mode == "permissive" ? SealMode::kPermissive
                                                  : SealMode::kRequired;
  check_tls(f);
  return f;
}

}  // namespace

Command parse_flags(int argc, const char* const* argv, bool libevent_built) {
  CLI::App app(
      "One aiocluster member per process: a JSON line of what it sees on stdout\n"
      "every --report-ms, logs on stderr, and with --http an HTTP API, Prometheus\n"
      "metrics and a live dashboard.",
      "aiocluster-node");
  app.footer(
      "SIGINT and SIGTERM stop the node gracefully (exit status 0); SIGHUP reloads\n"
      "--keyring. A bad flag or keyring file is reported on one line (exit status 2).");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.get_formatter()->column_width(36);
  Flags f;
  Texts texts;
  add_node_flags(app, f, texts);
  add_http_flags(app, f, texts);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return Command{std::nullopt, app.help()};
  } catch (const CLI::ParseError& e) {
    throw FlagError(one_line(e));
  }
  return Command{finish(std::move(f), texts, libevent_built), {}};
}

}  // namespace aiocluster::agent
