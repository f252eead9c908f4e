// aiocluster-node: one cluster member per process, on the Asio driver or
// (--driver libevent) the libevent driver, for demos, operations and
// multi-process tests. Every --report-ms it prints one
// JSON line on stdout with what this node sees; logs go to stderr.
//
//   aiocluster-node --name n1 --listen 127.0.0.1:7000 --seed 127.0.0.1:7001
//       --cluster-id demo --kv role=db --gossip-interval-ms 100
//
// Bad flags: one line on stderr naming the flag, exit status 2. SIGINT and
// SIGTERM stop the node gracefully, exit status 0.
#include <aiocluster/asio/cluster.h>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>
#ifdef AIOCLUSTER_NODE_WITH_LIBEVENT
#include <aiocluster/libevent/cluster.h>
#include <event2/event.h>
#endif

namespace ac = aiocluster;
namespace ad = aiocluster::asio_driver;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kUsage =
    "usage: aiocluster-node --name NAME --listen HOST:PORT [options]\n"
    "  --advertise HOST:PORT      address peers dial (default: --listen)\n"
    "  --seed HOST:PORT           a node to contact when joining (repeatable)\n"
    "  --cluster-id ID            default: aiocluster\n"
    "  --gossip-interval-ms MS    default: 1000\n"
    "  --transport tcp|udp        default: tcp\n"
    "  --kv KEY=VALUE             an initial key of this node (repeatable)\n"
    "  --generation N             N >= 1; default: the wall-clock time in ns at start\n"
    "  --tls-cert FILE --tls-key FILE --tls-ca FILE\n"
    "                             mutual TLS over tcp (all three together)\n"
    "  --tls-name NAME            the name this node's certificate carries\n"
    "  --tls-server-hostname NAME the name every server must prove (default: the\n"
    "                             node's tls_name, else the address dialled)\n"
    "  --tls-allow-nameless-peers let in verified client certificates naming nothing\n"
    "  --duration-s S             run S seconds; 0 (default) = until SIGINT/SIGTERM\n"
    "  --report-ms M              one JSON line every M ms (default: 500)\n"
    "  --phi-threshold X          failure detector threshold (default: 8)\n"
    "  --fd-initial-interval-ms MS  failure detector prior (default: 5 rounds, at most 5000)\n"
    "  --verbose                  log I/O failures on stderr\n"
    "  --driver asio|libevent     the event loop the node runs on (default: asio)\n";

// A flag the user got wrong: reported as one line, exit status 2.
struct FlagError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Flags {
  std::string name;
  std::optional<ac::Address> listen;
  std::optional<ac::Address> advertise;
  std::vector<ac::Address> seeds;
  std::string cluster_id = "aiocluster";
  std::uint64_t gossip_interval_ms = 1000;
  ad::Transport transport = ad::Transport::kTcp;
  ac::KeyValues kv;
  std::optional<std::uint64_t> generation;
  std::string tls_cert, tls_key, tls_ca, tls_name, tls_server_hostname;
  bool tls_allow_nameless_peers = false;
  std::uint64_t duration_s = 0;
  std::uint64_t report_ms = 500;
  std::optional<double> phi_threshold;
  std::optional<std::uint64_t> fd_initial_interval_ms;
  bool verbose = false;
  bool help = false;
  std::string driver = "asio";
};

std::uint64_t parse_uint(std::string_view flag, const std::string& text, std::uint64_t min) {
  std::size_t used = 0;
  std::uint64_t value = 0;
  try {
    if (text.empty() || text[0] == '-') throw std::invalid_argument("sign");
    value = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || value < min) {
    throw FlagError(std::string(flag) + ": expected an integer >= " + std::to_string(min) +
                    ", got '" + text + "'");
  }
  return value;
}

ac::Address parse_address(std::string_view flag, const std::string& text) {
  auto address = ac::Address::parse(text);
  if (!address) throw FlagError(std::string(flag) + ": expected HOST:PORT, got '" + text + "'");
  return *address;
}

Flags parse_flags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      f.help = true;
      continue;
    }
    if (flag == "--verbose") {
      f.verbose = true;
      continue;
    }
    if (flag == "--tls-allow-nameless-peers") {
      f.tls_allow_nameless_peers = true;
      continue;
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw FlagError(flag + ": missing value");
      return argv[++i];
    };
    if (flag == "--name") {
      f.name = value();
      if (f.name.empty()) throw FlagError("--name: must not be empty");
    } else if (flag == "--listen") {
      f.listen = parse_address(flag, value());
    } else if (flag == "--advertise") {
      f.advertise = parse_address(flag, value());
    } else if (flag == "--seed") {
      f.seeds.push_back(parse_address(flag, value()));
    } else if (flag == "--cluster-id") {
      f.cluster_id = value();
      if (f.cluster_id.empty()) throw FlagError("--cluster-id: must not be empty");
    } else if (flag == "--gossip-interval-ms") {
      f.gossip_interval_ms = parse_uint(flag, value(), 1);
    } else if (flag == "--transport") {
      const std::string t = value();
      if (t == "tcp") {
        f.transport = ad::Transport::kTcp;
      } else if (t == "udp") {
        f.transport = ad::Transport::kUdp;
      } else {
        throw FlagError("--transport: expected tcp or udp, got '" + t + "'");
      }
    } else if (flag == "--kv") {
      const std::string kv = value();
      const auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0)
        throw FlagError("--kv: expected KEY=VALUE, got '" + kv + "'");
      f.kv.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else if (flag == "--generation") {
      f.generation = parse_uint(flag, value(), 1);
    } else if (flag == "--tls-cert") {
      f.tls_cert = value();
    } else if (flag == "--tls-key") {
      f.tls_key = value();
    } else if (flag == "--tls-ca") {
      f.tls_ca = value();
    } else if (flag == "--tls-name") {
      f.tls_name = value();
    } else if (flag == "--tls-server-hostname") {
      f.tls_server_hostname = value();
    } else if (flag == "--duration-s") {
      f.duration_s = parse_uint(flag, value(), 0);
    } else if (flag == "--report-ms") {
      f.report_ms = parse_uint(flag, value(), 1);
    } else if (flag == "--phi-threshold") {
      const std::string text = value();
      std::size_t used = 0;
      double x = 0;
      try {
        x = std::stod(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != text.size() || !(x > 0)) {
        throw FlagError("--phi-threshold: expected a positive number, got '" + text + "'");
      }
      f.phi_threshold = x;
    } else if (flag == "--driver") {
      f.driver = value();
      if (f.driver != "asio" && f.driver != "libevent") {
        throw FlagError("--driver: expected asio or libevent, got '" + f.driver + "'");
      }
#ifndef AIOCLUSTER_NODE_WITH_LIBEVENT
      if (f.driver == "libevent") throw FlagError("--driver: this build has no libevent driver");
#endif
    } else if (flag == "--fd-initial-interval-ms") {
      f.fd_initial_interval_ms = parse_uint(flag, value(), 1);
    } else {
      throw FlagError(flag + ": unknown flag (see --help)");
    }
  }
  if (f.help) return f;
  if (f.name.empty()) throw FlagError("--name: required");
  if (!f.listen) throw FlagError("--listen: required");
  const int tls_files = !f.tls_cert.empty() + !f.tls_key.empty() + !f.tls_ca.empty();
  if (tls_files != 0 && tls_files != 3) {
    throw FlagError(std::string(f.tls_cert.empty()  ? "--tls-cert"
                                : f.tls_key.empty() ? "--tls-key"
                                                    : "--tls-ca") +
                    ": TLS needs --tls-cert, --tls-key and --tls-ca together");
  }
  if (tls_files == 3 && f.transport != ad::Transport::kTcp)
    throw FlagError("--transport: TLS needs tcp");
  if (!f.tls_name.empty() && tls_files == 0)
    throw FlagError("--tls-name: needs --tls-cert, --tls-key and --tls-ca");
  if (!f.tls_server_hostname.empty() && tls_files == 0)
    throw FlagError("--tls-server-hostname: needs --tls-cert, --tls-key and --tls-ca");
  if (f.tls_allow_nameless_peers && tls_files == 0)
    throw FlagError("--tls-allow-nameless-peers: needs --tls-cert, --tls-key and --tls-ca");
  return f;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x",
                        static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;  // UTF-8 passes through: the core only carries valid UTF-8
        }
    }
  }
  return out + "\"";
}

std::string json_names(const std::set<std::string>& names) {
  std::string out = "[";
  for (const auto& n : names) out += (out.size() > 1 ? ", " : "") + json_string(n);
  return out + "]";
}

// What the node refused and why, and what its sockets saw: enough to tell
// an attack (or a broken peer) from a quiet network.
std::string json_counters(const ac::Stats& s, const ac::driver::DriverStats& d) {
  const std::pair<const char*, std::uint64_t> counters[] = {
      {"packets_dropped", s.packets_dropped()},
      {"dropped_malformed", s.dropped_malformed},
      {"dropped_wrong_cluster", s.dropped_wrong_cluster},
      {"dropped_out_of_place", s.dropped_out_of_place},
      {"dropped_rate_limited", s.dropped_rate_limited},
      {"dropped_tls_nameless", s.dropped_tls_nameless},
      {"nodes_refused", s.nodes_refused},
      {"packets_in_above_max_payload", s.packets_in_above_max_payload},
      {"completeness_capped", s.completeness_capped},
      {"rejected_deltas", s.rejected_gap + s.rejected_reset + s.rejected_stale +
                              s.rejected_malformed + s.rejected_limit},
      {"connections_accepted", d.connections_accepted},
      {"connections_evicted", d.connections_evicted},
      {"connections_refused", d.connections_refused},
      {"framing_errors", d.framing_errors},
      {"large_frames_refused", d.large_frames_refused},
      {"timeouts", d.timeouts},
      {"io_errors", d.io_errors},
      {"datagrams_in", d.datagrams_in},
  };
  std::string out = "{";
  for (const auto& [name, value] : counters) {
    out += (out.size() > 1 ? ", \"" : "\"") + std::string(name) + "\": " + std::to_string(value);
  }
  return out + "}";
}

// One report line: what this node sees now (a Cluster of either driver).
template <typename Cluster>
std::string report_line(const Cluster& cluster, double t) {
  std::set<std::string> live;
  std::set<std::string> dead;
  for (const auto& id : cluster.live_nodes()) live.insert(id.name);
  for (const auto& id : cluster.dead_nodes()) dead.insert(id.name);
  // Keys per node name; when incarnations share a name, the live one wins,
  // then the newest generation.
  std::map<std::string, std::pair<const ac::NodeId*, const ac::NodeState*>> by_name;
  const ac::Node& node = cluster.node();
  for (const auto& [id, state] : node.cluster_state().nodes()) {
    auto [it, fresh] = by_name.try_emplace(id.name, &id, &state);
    if (fresh) continue;
    const ac::NodeId& held = *it->second.first;
    const bool better = node.is_live(id) != node.is_live(held)
                            ? node.is_live(id)
                            : id.generation_id > held.generation_id;
    if (better) it->second = {&id, &state};
  }
  char t_text[32];
  std::snprintf(t_text, sizeof t_text, "%.3f", t);
  std::string line =
      std::string("{\"t\": ") + t_text + ", \"self\": " + json_string(cluster.self_id().name) +
      ", \"live\": " + json_names(live) + ", \"dead\": " + json_names(dead) + ", \"kv\": {";
  bool first_node = true;
  for (const auto& [name, entry] : by_name) {
    line += (first_node ? "" : ", ") + json_string(name) + ": {";
    first_node = false;
    bool first_key = true;
    entry.second->for_each([&](std::string_view key, const ac::VersionedValue& value) {
      if (!value.visible()) return;
      line += (first_key ? "" : ", ") + json_string(key) + ": " + json_string(value.value);
      first_key = false;
    });
    line += "}";
  }
  return line + "}, \"counters\": " + json_counters(node.stats(), cluster.driver_stats()) + "}";
}

ac::Config make_config(const Flags& flags) {
  ac::Config config;
  config.cluster_id = flags.cluster_id;
  // Without --generation, 0: the driver fills it in from the wall clock.
  const std::uint64_t generation = flags.generation.value_or(0);
  config.node_id =
      ac::NodeId{flags.name, generation, flags.advertise.value_or(*flags.listen), flags.tls_name};
  config.seeds = flags.seeds;
  config.gossip_interval = std::chrono::milliseconds(flags.gossip_interval_ms);
  // The detector's prior is "a few rounds": the protocol's 5 s at 1 s rounds,
  // shorter for faster rounds so a dead node shows within seconds.
  config.failure_detector.initial_interval =
      std::chrono::milliseconds(flags.fd_initial_interval_ms.value_or(
          std::min<std::uint64_t>(5 * flags.gossip_interval_ms, 5000)));
  if (flags.phi_threshold) config.failure_detector.phi_threshold = *flags.phi_threshold;
  return config;
}

// The transport options: one type for both drivers.
ad::Options make_options(const Flags& flags) {
  ad::Options options;
  options.transport = flags.transport;
  options.listen = flags.listen;
  if (!flags.tls_cert.empty()) {
    options.tls.emplace();
    options.tls->cert_file = flags.tls_cert;
    options.tls->key_file = flags.tls_key;
    options.tls->ca_file = flags.tls_ca;
    options.tls->server_hostname = flags.tls_server_hostname;
    options.tls->allow_nameless_peers = flags.tls_allow_nameless_peers;
  }
  if (flags.verbose) {
    options.log = [name = flags.name](std::string_view line) {
      std::fprintf(stderr, "[%s] %.*s\n", name.c_str(), static_cast<int>(line.size()), line.data());
    };
  }
  return options;
}

// Builds the cluster with `build` (bad configuration is reported like a bad
// flag), logs its membership changes and starts it. An exit status when it
// cannot run.
template <typename Cluster, typename Build>
std::optional<int> start_cluster(std::optional<Cluster>& cluster, const Flags& flags, Build build) {
  try {
    build();
  } catch (const ac::ConfigError& e) {
    std::fprintf(stderr, "aiocluster-node: %s\n", e.what());
    return 2;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "aiocluster-node: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aiocluster-node: %s\n", e.what());
    return 1;
  }
  const std::string name = flags.name;
  cluster->on_node_join([name](const ac::NodeId& id) {
    std::fprintf(stderr, "[%s] %s joined (%s)\n", name.c_str(), id.name.c_str(),
                 id.gossip_advertise_addr.to_string().c_str());
  });
  cluster->on_node_leave([name](const ac::NodeId& id) {
    std::fprintf(stderr, "[%s] %s left (%s)\n", name.c_str(), id.name.c_str(),
                 id.gossip_advertise_addr.to_string().c_str());
  });
  cluster->start();
  std::fprintf(stderr, "[%s] listening on %s (%s%s, %s), advertising %s, cluster %s\n",
               name.c_str(), cluster->local_address().to_string().c_str(),
               flags.transport == ad::Transport::kTcp ? "tcp" : "udp",
               flags.tls_cert.empty() ? "" : ", mutual TLS", flags.driver.c_str(),
               cluster->self_id().gossip_advertise_addr.to_string().c_str(),
               flags.cluster_id.c_str());
  return std::nullopt;
}

template <typename Cluster>
void print_report(const Cluster& cluster, std::chrono::steady_clock::time_point start) {
  const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string line = report_line(cluster, t);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

#ifdef AIOCLUSTER_NODE_WITH_LIBEVENT
// The libevent mode: the agent's own event_base, with timers for the report
// and --duration-s and signal events for SIGINT and SIGTERM.
class LibeventAgent {
 public:
  LibeventAgent(const Flags& flags, const ac::Config& config) : flags_(flags), config_(config) {}
  ~LibeventAgent() {
    events_.clear();  // before the cluster and the base
    cluster_.reset();
    if (base_ != nullptr) event_base_free(base_);
  }
  LibeventAgent(const LibeventAgent&) = delete;
  LibeventAgent& operator=(const LibeventAgent&) = delete;

  int run() {
    base_ = event_base_new();
    if (base_ == nullptr) {
      std::fprintf(stderr, "aiocluster-node: event_base_new failed\n");
      return 1;
    }
    const auto options = make_options(flags_);
    if (auto status = start_cluster(
            cluster_, flags_, [&] { cluster_.emplace(base_, config_, flags_.kv, options); })) {
      return *status;
    }
    start_ = std::chrono::steady_clock::now();
    report_ = add(evtimer_new(base_, &LibeventAgent::on_report, this));
    add_timer(report_, std::chrono::milliseconds(flags_.report_ms));
    for (const int signo : {SIGINT, SIGTERM}) {
      event_add(add(evsignal_new(base_, signo, &LibeventAgent::on_signal, this)), nullptr);
    }
    if (flags_.duration_s > 0) {
      add_timer(add(evtimer_new(base_, &LibeventAgent::on_duration, this)),
                std::chrono::seconds(flags_.duration_s));
    }
    event_base_dispatch(base_);  // returns once shutdown() has removed everything
    return 0;
  }

 private:
  struct EventFree {
    void operator()(event* ev) const { event_free(ev); }
  };

  event* add(event* ev) {
    events_.emplace_back(ev);
    return ev;
  }
  static void add_timer(event* ev, std::chrono::milliseconds after) {
    const timeval tv{static_cast<time_t>(after.count() / 1000),
                     static_cast<suseconds_t>(after.count() % 1000 * 1000)};
    event_add(ev, &tv);
  }

  void shutdown(const char* why) {
    std::fprintf(stderr, "[%s] stopping: %s\n", flags_.name.c_str(), why);
    cluster_->stop();
    for (const auto& ev : events_) event_del(ev.get());
  }

  static void on_report(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<LibeventAgent*>(arg);
    if (!self->cluster_->running()) return;
    print_report(*self->cluster_, self->start_);
    add_timer(self->report_, std::chrono::milliseconds(self->flags_.report_ms));
  }
  static void on_signal(evutil_socket_t signo, short, void* arg) {
    static_cast<LibeventAgent*>(arg)->shutdown(signo == SIGINT ? "SIGINT" : "SIGTERM");
  }
  static void on_duration(evutil_socket_t, short, void* arg) {
    static_cast<LibeventAgent*>(arg)->shutdown("duration elapsed");
  }

  const Flags& flags_;
  const ac::Config& config_;
  event_base* base_ = nullptr;
  std::optional<aiocluster::libevent_driver::Cluster> cluster_;
  std::vector<std::unique_ptr<event, EventFree>> events_;
  event* report_ = nullptr;
  std::chrono::steady_clock::time_point start_;
};
#endif

int run(const Flags& flags) {
  const ac::Config config = make_config(flags);
#ifdef AIOCLUSTER_NODE_WITH_LIBEVENT
  if (flags.driver == "libevent") return LibeventAgent(flags, config).run();
#endif
  asio::io_context io;
  const auto options = make_options(flags);
  std::optional<ad::Cluster> cluster;
  if (auto status =
          start_cluster(cluster, flags, [&] { cluster.emplace(io, config, flags.kv, options); })) {
    return *status;
  }
  const std::string& name = flags.name;

  const auto start = std::chrono::steady_clock::now();
  asio::steady_timer report(io);
  asio::steady_timer deadline(io);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  auto shutdown = [&](const char* why) {
    std::fprintf(stderr, "[%s] stopping: %s\n", name.c_str(), why);
    cluster->stop();
    report.cancel();
    deadline.cancel();
    signals.cancel();
  };
  signals.async_wait([&](std::error_code ec, int signo) {
    if (!ec) shutdown(signo == SIGINT ? "SIGINT" : "SIGTERM");
  });
  if (flags.duration_s > 0) {
    deadline.expires_after(std::chrono::seconds(flags.duration_s));
    deadline.async_wait([&](std::error_code ec) {
      if (!ec) shutdown("duration elapsed");
    });
  }
  std::function<void()> tick = [&] {
    report.expires_after(std::chrono::milliseconds(flags.report_ms));
    report.async_wait([&](std::error_code ec) {
      if (ec || !cluster->running()) return;
      print_report(*cluster, start);
      tick();
    });
  };
  tick();
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  try {
    flags = parse_flags(argc, argv);
  } catch (const FlagError& e) {
    std::fprintf(stderr, "aiocluster-node: %s\n", e.what());
    return 2;
  }
  if (flags.help) {
    std::fwrite(kUsage.data(), 1, kUsage.size(), stdout);
    return 0;
  }
  // A reader that went away must not kill us with SIGPIPE mid-line.
  std::signal(SIGPIPE, SIG_IGN);
  return run(flags);
}
