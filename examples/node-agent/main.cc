// aiocluster-node: one cluster member per process, on the Asio driver or
// (--driver libevent) the libevent driver, for demos, operations and
// multi-process tests. Every --report-ms it prints one JSON line on stdout
// with what this node sees (report.h); logs go to stderr. With --http it
// serves the HTTP API, Prometheus metrics and a live dashboard (api.h).
//
//   aiocluster-node --name n1 --listen 127.0.0.1:7000 --seed 127.0.0.1:7001
//       --cluster-id demo --kv role=db --gossip-interval-ms 100 --http 127.0.0.1:8000
//
// Bad flags: one line on stderr naming the flag, exit status 2. SIGINT and
// SIGTERM stop the node gracefully, exit status 0. With --keyring, gossip is
// sealed and SIGHUP reloads the keyring file.
#include <event2/event.h>
#include <event2/thread.h>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <csignal>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "agent_http.h"
#include "aiocluster/asio/cluster.h"
#include "api.h"
#include "asio_loops.h"
#include "event_loop_thread.h"
#include "flags.h"
#include "keyring_file.h"
#include "node_control.h"
#include "report.h"
#ifdef AIOCLUSTER_NODE_WITH_LIBEVENT
#include "aiocluster/libevent/cluster.h"
#endif

namespace ac = aiocluster;
namespace ad = aiocluster::asio_driver;
namespace agent = aiocluster::agent;

namespace {

#ifdef AIOCLUSTER_NODE_WITH_LIBEVENT
constexpr bool kLibeventBuilt = true;
#else
constexpr bool kLibeventBuilt = false;
#endif

// Node events waiting for the HTTP thread beyond this are dropped (and
// counted): a flood of key changes cannot grow the agent's memory.
constexpr std::size_t kMaxEventsInFlight = 10'000;

ac::Config make_config(const agent::Flags& flags) {
  ac::Config config;
  config.cluster_id = flags.cluster_id;
  // Without --generation, 0: the driver fills it in from the wall clock.
  const std::uint64_t generation = flags.generation.value_or(0);
  config.node_id =
      ac::NodeId{flags.name, generation, flags.advertise.value_or(flags.listen), flags.tls_name};
  config.seeds = flags.seeds;
  config.gossip_interval = std::chrono::milliseconds(flags.gossip_interval_ms);
  // Unset, the core derives the prior from the gossip interval.
  if (flags.fd_initial_interval_ms) {
    config.failure_detector.initial_interval =
        std::chrono::milliseconds(*flags.fd_initial_interval_ms);
  }
  if (flags.detection_time_ms) {
    config.failure_detector.detection_time = std::chrono::milliseconds(*flags.detection_time_ms);
  }
  if (flags.phi_model == "normal") config.failure_detector.model = ac::PhiModel::kNormal;
  config.extensions.compact_digest = !flags.no_compact_digest;
  config.extensions.aligned_digest = !flags.no_aligned_digest;
  config.extensions.compression = flags.compression == "on";
  if (flags.phi_threshold) config.failure_detector.phi_threshold = *flags.phi_threshold;
  if (!flags.keyring.empty()) {  // may throw KeyringFileError
    config.sealing.keyring = agent::read_keyring_file(flags.keyring);
    config.sealing.mode = flags.seal_mode;
  }
  return config;
}

// SIGHUP: the keyring file again, in one step, so the node never holds a
// keyring in between. A rotation is three reloads on every node (the new key
// added, then moved first, then the old one deleted), each done everywhere
// before the next. A file that cannot be used is logged and the keys in use
// are kept.
void reload_keyring(ac::driver::ClusterBase& cluster, const agent::Flags& flags) {
  const char* name = flags.name.c_str();
  if (flags.keyring.empty()) {
    std::fprintf(stderr, "[%s] SIGHUP: no --keyring to reload\n", name);
    return;
  }
  try {
    const ac::Keyring keyring = agent::read_keyring_file(flags.keyring);
    cluster.set_keyring(keyring);
    std::fprintf(stderr, "[%s] keyring reloaded: %zu installed, primary %s\n", name,
                 keyring.keys().size(), agent::key_id_hex(*keyring.primary()).c_str());
  } catch (const agent::KeyringFileError& e) {
    std::fprintf(stderr, "[%s] keyring not reloaded, keeping the %zu installed: %s\n", name,
                 cluster.node().config().sealing.keyring.keys().size(), e.what());
  }
}

// The transport options: one type for both drivers.
ad::Options make_options(const agent::Flags& flags) {
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

agent::AgentHttpOptions http_options(const agent::Flags& flags) {
  agent::HttpLimits limits;
  limits.max_connections = flags.http_max_connections;
  limits.max_header_bytes = flags.http_max_header_bytes;
  limits.max_body_bytes = flags.http_max_body_bytes;
  limits.max_event_backlog_bytes = flags.http_max_event_backlog_bytes;
  return {*flags.http, limits, std::chrono::milliseconds(flags.http_cluster_interval_ms)};
}

agent::ApiOptions api_options(const agent::Flags& flags) {
  agent::ApiOptions options;
  options.metrics.max_phi_members = flags.metrics_max_phi_members;
  return options;
}

// Runs `build` (which may throw), reporting a failure like the agent's other
// start-up errors: status 2 for bad configuration, 1 otherwise.
template <typename Build>
std::optional<int> try_build(Build build) {
  try {
    build();
  } catch (const std::invalid_argument& e) {  // ConfigError included
    std::fprintf(stderr, "aiocluster-node: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aiocluster-node: %s\n", e.what());
    return 1;
  }
  return std::nullopt;
}

// Logs the cluster's membership changes and starts it.
template <typename Cluster>
void start_cluster(Cluster& cluster, const agent::Flags& flags) {
  const std::string name = flags.name;
  cluster.on_node_join([name](const ac::NodeId& id) {
    std::fprintf(stderr, "[%s] %s joined (%s)\n", name.c_str(), id.name.c_str(),
                 id.gossip_advertise_addr.to_string().c_str());
  });
  cluster.on_node_leave([name](const ac::NodeId& id) {
    std::fprintf(stderr, "[%s] %s left (%s)\n", name.c_str(), id.name.c_str(),
                 id.gossip_advertise_addr.to_string().c_str());
  });
  cluster.start();
  std::fprintf(stderr, "[%s] listening on %s (%s%s, %s), advertising %s, cluster %s\n",
               name.c_str(), cluster.local_address().to_string().c_str(),
               flags.transport == ad::Transport::kTcp ? "tcp" : "udp",
               flags.tls_cert.empty() ? "" : ", mutual TLS", flags.driver.c_str(),
               cluster.self_id().gossip_advertise_addr.to_string().c_str(),
               flags.cluster_id.c_str());
}

void announce_http(const agent::Flags& flags, const agent::AgentHttp& http) {
  const std::string address = http.local_address().to_string();
  std::fprintf(stderr, "[%s] http on %s (dashboard: http://%s/)\n", flags.name.c_str(),
               address.c_str(), address.c_str());
}

void print_report(const agent::NodeControl& node, std::chrono::steady_clock::time_point start) {
  const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string line = agent::report_line(node, t);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

#ifdef AIOCLUSTER_NODE_WITH_LIBEVENT
namespace le = aiocluster::libevent_driver;

// The libevent mode: the agent's own event_base carries the node, the HTTP
// server, timers for the report and --duration-s, and signal events for
// SIGINT and SIGTERM.
class LibeventAgent {
 public:
  LibeventAgent(const agent::Flags& flags, const ac::Config& config)
      : flags_(flags), config_(config) {}
  ~LibeventAgent() {
    events_.clear();  // before the cluster and the base
    http_.reset();
    api_.reset();
    control_.reset();
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
    // The HTTP server needs a priority above the default one (http_server.h).
    event_base_priority_init(base_, 2);
    if (auto status = try_build([&] {
          cluster_.emplace(base_, config_, flags_.kv, make_options(flags_));
          control_.emplace(*cluster_);
          api_.emplace(*control_, loops_, api_options(flags_));
          if (flags_.http) http_.emplace(base_, http_options(flags_), *api_, loops_);
        })) {
      return *status;
    }
    if (http_) agent::stream_events(*cluster_, *http_);
    start_cluster(*cluster_, flags_);
    if (http_) announce_http(flags_, *http_);
    start_ = std::chrono::steady_clock::now();
    report_ = add(evtimer_new(base_, &LibeventAgent::on_report, this));
    add_timer(report_, std::chrono::milliseconds(flags_.report_ms));
    for (const int signo : {SIGINT, SIGTERM, SIGHUP}) {
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
    if (http_) http_->close();
    for (const auto& ev : events_) event_del(ev.get());
  }

  static void on_report(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<LibeventAgent*>(arg);
    if (!self->cluster_->running()) return;
    print_report(*self->control_, self->start_);
    add_timer(self->report_, std::chrono::milliseconds(self->flags_.report_ms));
  }
  static void on_signal(evutil_socket_t signo, short, void* arg) {
    auto* self = static_cast<LibeventAgent*>(arg);
    if (signo == SIGHUP) return reload_keyring(*self->cluster_, self->flags_);
    self->shutdown(signo == SIGINT ? "SIGINT" : "SIGTERM");
  }
  static void on_duration(evutil_socket_t, short, void* arg) {
    static_cast<LibeventAgent*>(arg)->shutdown("duration elapsed");
  }

  const agent::Flags& flags_;
  const ac::Config& config_;
  event_base* base_ = nullptr;
  agent::OneLoop loops_;
  std::optional<le::Cluster> cluster_;
  std::optional<agent::ClusterControl<le::Cluster>> control_;
  std::optional<agent::Api> api_;
  std::optional<agent::AgentHttp> http_;
  std::vector<std::unique_ptr<event, EventFree>> events_;
  event* report_ = nullptr;
  std::chrono::steady_clock::time_point start_;
};
#endif

// The Asio mode: the node on an io_context run by this thread; with --http,
// the HTTP server on a thread of its own (asio_loops.h).
int run_asio(const agent::Flags& flags, const ac::Config& config) {
  asio::io_context io;
  std::optional<ad::Cluster> cluster;
  std::optional<agent::ClusterControl<ad::Cluster>> control;
  std::optional<agent::EventLoopThread> http_thread;
  std::optional<agent::StrandAndThread> loops;
  std::optional<agent::Api> api;
  std::optional<agent::AgentHttp> http;
  if (auto status = try_build([&] {
        cluster.emplace(io, config, flags.kv, make_options(flags));
        control.emplace(*cluster);
        if (!flags.http) return;
        // The HTTP thread is woken from the strand's (event_active on its
        // base): libevent must take locks, set before any event_base exists.
        evthread_use_pthreads();
        http_thread.emplace(kMaxEventsInFlight);
        loops.emplace(cluster->get_executor(), *http_thread);
        api.emplace(*control, *loops, api_options(flags));
        http.emplace(http_thread->base(), http_options(flags), *api, *loops);
      })) {
    return *status;
  }
  if (http) agent::stream_events(*cluster, *http);
  start_cluster(*cluster, flags);
  if (http) {
    announce_http(flags, *http);
    http_thread->start();
  }

  const auto start = std::chrono::steady_clock::now();
  asio::steady_timer report(io);
  asio::steady_timer deadline(io);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::signal_set hangups(io, SIGHUP);
  auto shutdown = [&](const char* why) {
    std::fprintf(stderr, "[%s] stopping: %s\n", flags.name.c_str(), why);
    cluster->stop();
    report.cancel();
    deadline.cancel();
    signals.cancel();
    hangups.cancel();
    if (http_thread) http_thread->stop([&http] { http->close(); });
  };
  signals.async_wait([&](std::error_code ec, int signo) {
    if (!ec) shutdown(signo == SIGINT ? "SIGINT" : "SIGTERM");
  });
  std::function<void()> await_hangup = [&] {
    hangups.async_wait([&](std::error_code ec, int) {
      if (ec) return;
      reload_keyring(*cluster, flags);
      await_hangup();
    });
  };
  await_hangup();
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
      print_report(*control, start);
      tick();
    });
  };
  tick();
  io.run();
  // What the HTTP thread posted to the strand after run() returned is
  // dropped with the io_context, never run.
  if (http_thread) http_thread->join();
  return 0;
}

int run(const agent::Flags& flags) {
  ac::Config config;
  try {
    config = make_config(flags);
  } catch (const agent::KeyringFileError& e) {
    std::fprintf(stderr, "aiocluster-node: --keyring: %s\n", e.what());
    return 2;
  }
#ifdef AIOCLUSTER_NODE_WITH_LIBEVENT
  if (flags.driver == "libevent") return LibeventAgent(flags, config).run();
#endif
  return run_asio(flags, config);
}

}  // namespace

int main(int argc, char** argv) {
  agent::Command command;
  try {
    command = agent::parse_flags(argc, argv, kLibeventBuilt);
  } catch (const agent::FlagError& e) {
    std::fprintf(stderr, "aiocluster-node: %s\n", e.what());
    return 2;
  }
  if (!command.flags) {
    std::fwrite(command.help.data(), 1, command.help.size(), stdout);
    return 0;
  }
  // A reader that went away must not kill us with SIGPIPE mid-line.
  std::signal(SIGPIPE, SIG_IGN);
  return run(*command.flags);
}
