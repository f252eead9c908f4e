// aiocluster-sim: runs a whole cluster in one process on virtual time and
// reports how fast it converges and detects crashes. Every packet is really
// encoded and decoded by the core; the only real clock read is wall_ms.
//
//   aiocluster-sim --nodes 200 --seed 7 --rounds 60 --json
//   aiocluster-sim --nodes 300 --rounds 60 --crash 1@20 --loss 0.1 --json
//   aiocluster-sim --nodes 300 --rounds 120 --pause 10@30:8 --json
#include <aiocluster/random.h>
#include <aiocluster/sim/simulator.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#include <sys/resource.h>
#endif

namespace {

using namespace std::chrono_literals;
using aiocluster::sim::NodeIndex;
using aiocluster::sim::Simulator;

struct CrashPlan {
  std::size_t count = 0;
  double second = 0;
};

struct PausePlan {
  std::size_t count = 0;
  double second = 0;
  double duration = 0;  // seconds
};

struct Args {
  std::size_t nodes = 10;
  std::uint64_t seed = 1;
  std::uint64_t rounds = 60;
  std::uint64_t gossip_interval_ms = 1000;
  std::size_t keys_per_node = 3;
  std::size_t seed_nodes = 3;
  double loss = 0.0;
  double duplicate = 0.0;
  std::uint64_t latency_min_ms = 1;
  std::uint64_t latency_max_ms = 10;
  double spike_probability = 0.0;
  std::uint64_t spike_max_ms = 0;
  std::vector<CrashPlan> crashes;
  std::vector<PausePlan> pauses;
  std::optional<std::uint64_t> detection_time_ms;
  aiocluster::PhiModel phi_model = aiocluster::PhiModel::kLinear;
  bool pause_aware = true;
  std::size_t pause_buffer = aiocluster::sim::Options{}.pause_buffer;
  std::uint64_t clock_skew_ms = 0;
  std::uint64_t clock_drift_ppm = 0;
  aiocluster::sim::Transport transport = aiocluster::sim::Transport::kUdp;
  double legacy_fraction = 0.0;
  std::optional<std::uint64_t> max_payload_size;
  bool keyring_demo = false;
  bool compression = true;
  bool json = false;
  bool progress = false;
  // The machine's cores: the run is the same with any number.
  std::size_t threads = std::max(1U, std::thread::hardware_concurrency());
};

const char* kUsage =
    "usage: aiocluster-sim [options]\n"
    "  --nodes N                cluster size (default 10)\n"
    "  --seed S                 seed of every random draw (default 1)\n"
    "  --rounds R               virtual run time, in gossip intervals (default 60)\n"
    "  --gossip-interval-ms MS  gossip interval (default 1000)\n"
    "  --keys-per-node K        key-values each node owns (default 3)\n"
    "  --seed-nodes N           how many of the first nodes are everyone's seeds (default 3)\n"
    "  --loss P                 packet loss, a fraction (0.1) or a percentage (10%)\n"
    "  --duplicate P            datagram duplication, like --loss\n"
    "  --latency-ms MIN:MAX     one-way latency, uniform (default 1:10)\n"
    "  --spike P:MAX_MS         a fraction P of packets is slow: up to MAX_MS\n"
    "  --crash COUNT@SECOND     crash COUNT random nodes at that virtual second (repeatable)\n"
    "  --pause COUNT@SECOND:DURATION\n"
    "                           pause COUNT random running nodes at that virtual second for\n"
    "                           DURATION seconds, like a long GC (repeatable)\n"
    "  --detection-time-ms MS   failure_detector.detection_time (default: unset, phi 8)\n"
    "  --phi-model linear|normal  the failure detector's phi (default linear)\n"
    "  --no-pause-awareness     count a node's own pauses against its peers (to compare)\n"
    "  --pause-buffer N         packets a paused node's socket holds (default 1024; 0: a\n"
    "                           resumed node runs its timer before hearing anyone)\n"
    "  --transport udp|tcp      datagrams, or three-message exchanges on a connection\n"
    "  --clock-skew-ms MS       each node's clock off by up to MS either way (drawn)\n"
    "  --clock-drift-ppm PPM    each node's clock up to PPM fast or slow (drawn, < 1000000)\n"
    "  --max-payload-size B     every node's max_payload_size (default 65507)\n"
    "  --legacy-fraction F      that share of nodes (spread evenly) runs without our protocol\n"
    "                           extensions (proto/README.md), like Python aiocluster 1.1.0\n"
    "  --no-compression         no node compresses its packets (proto/README.md section 5)\n"
    "  --keyring-demo           every node seals its gossip (proto/README.md section 4) under\n"
    "                           a key drawn from the seed, and rotates it during the run:\n"
    "                           a new key installed everywhere at 1/4 of the rounds, made\n"
    "                           primary at 1/2, the old one removed at 3/4\n"
    "  --json                   print one JSON object on the last line\n"
    "  --progress               print each round's wall time and traffic to stderr\n"
    "  --threads N              threads handling the nodes' packets and timers (default:\n"
    "                           the machine's cores); the run is the same with any number\n";

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "aiocluster-sim: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

std::uint64_t parse_uint(std::string_view flag, std::string_view text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    fail(std::string(flag) + ": expected a non-negative integer, got '" + std::string(text) + "'");
  }
  return v;
}

double parse_seconds(std::string_view flag, std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !(v >= 0) || !std::isfinite(v)) {
    fail(std::string(flag) + ": expected a non-negative number of seconds, got '" + s + "'");
  }
  return v;
}

double parse_fraction(std::string_view flag, std::string_view text) {
  bool percent = !text.empty() && text.back() == '%';
  if (percent) text.remove_suffix(1);
  const std::string s(text);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) {
    fail(std::string(flag) + ": expected a probability, got '" + s + "'");
  }
  if (percent) v /= 100.0;
  if (v < 0.0 || v > 1.0) fail(std::string(flag) + ": must be within [0, 1] (or 0%..100%)");
  return v;
}

// The keys of --keyring-demo, drawn from the seed: generation 0 first, then
// the one it is rotated to.
aiocluster::SealKey demo_key(std::uint64_t seed, std::uint64_t generation) {
  aiocluster::Rng rng(seed ^ 0x6b657973ULL ^ (generation << 32));
  aiocluster::SealKey key{};
  for (std::size_t i = 0; i < key.size(); i += 8) {
    const std::uint64_t word = rng.next();
    for (std::size_t b = 0; b < 8; ++b) key[i + b] = static_cast<std::uint8_t>(word >> (8 * b));
  }
  return key;
}

// A rotation of --keyring-demo on every node up at each step: install the
// new key, make it primary, remove the old one.
void schedule_rotation(Simulator& sim, const Args& args, std::chrono::milliseconds interval) {
  const aiocluster::SealKey old_key = demo_key(args.seed, 0);
  const aiocluster::SealKey new_key = demo_key(args.seed, 1);
  const std::function<void(aiocluster::Node&)> steps[] = {
      [new_key](aiocluster::Node& n) { n.install_key(new_key); },
      [new_key](aiocluster::Node& n) { n.make_primary_key(new_key); },
      [old_key](aiocluster::Node& n) { n.remove_key(old_key); },
  };
  for (std::uint64_t quarter = 1; quarter <= 3; ++quarter) {
    const auto when = sim.epoch() + interval * static_cast<std::int64_t>(args.rounds * quarter / 4);
    sim.at(when, [step = steps[quarter - 1]](Simulator& s) {
      for (NodeIndex i = 0; i < s.size(); ++i) {
        if (s.is_up(i)) s.update(i, step);
      }
    });
  }
}

Args parse(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--json") {
      args.json = true;
      continue;
    }
    if (flag == "--progress") {
      args.progress = true;
      continue;
    }
    if (flag == "--no-compression") {
      args.compression = false;
      continue;
    }
    if (flag == "--keyring-demo") {
      args.keyring_demo = true;
      continue;
    }
    if (flag == "--no-pause-awareness") {
      args.pause_aware = false;
      continue;
    }
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) fail(std::string(flag) + ": missing value");
    const std::string_view value = argv[++i];
    if (flag == "--nodes") {
      args.nodes = parse_uint(flag, value);
    } else if (flag == "--seed") {
      args.seed = parse_uint(flag, value);
    } else if (flag == "--rounds") {
      args.rounds = parse_uint(flag, value);
    } else if (flag == "--gossip-interval-ms") {
      args.gossip_interval_ms = parse_uint(flag, value);
    } else if (flag == "--keys-per-node") {
      args.keys_per_node = parse_uint(flag, value);
    } else if (flag == "--seed-nodes") {
      args.seed_nodes = parse_uint(flag, value);
    } else if (flag == "--loss") {
      args.loss = parse_fraction(flag, value);
    } else if (flag == "--max-payload-size") {
      args.max_payload_size = parse_uint(flag, value);
      if (*args.max_payload_size < 512) fail("--max-payload-size: must be at least 512");
    } else if (flag == "--legacy-fraction") {
      args.legacy_fraction = parse_fraction(flag, value);
    } else if (flag == "--duplicate") {
      args.duplicate = parse_fraction(flag, value);
    } else if (flag == "--latency-ms") {
      const auto colon = value.find(':');
      if (colon == std::string_view::npos) fail("--latency-ms: expected MIN:MAX");
      args.latency_min_ms = parse_uint(flag, value.substr(0, colon));
      args.latency_max_ms = parse_uint(flag, value.substr(colon + 1));
      if (args.latency_min_ms > args.latency_max_ms) fail("--latency-ms: MIN must not exceed MAX");
    } else if (flag == "--crash") {
      const auto at = value.find('@');
      if (at == std::string_view::npos) fail("--crash: expected COUNT@SECOND");
      args.crashes.push_back(
          {parse_uint(flag, value.substr(0, at)), parse_seconds(flag, value.substr(at + 1))});
    } else if (flag == "--pause") {
      const auto at = value.find('@');
      const auto colon = value.find(':', at == std::string_view::npos ? 0 : at);
      if (at == std::string_view::npos || colon == std::string_view::npos) {
        fail("--pause: expected COUNT@SECOND:DURATION");
      }
      args.pauses.push_back({parse_uint(flag, value.substr(0, at)),
                             parse_seconds(flag, value.substr(at + 1, colon - at - 1)),
                             parse_seconds(flag, value.substr(colon + 1))});
    } else if (flag == "--spike") {
      const auto colon = value.find(':');
      if (colon == std::string_view::npos) fail("--spike: expected P:MAX_MS");
      args.spike_probability = parse_fraction(flag, value.substr(0, colon));
      args.spike_max_ms = parse_uint(flag, value.substr(colon + 1));
    } else if (flag == "--threads") {
      args.threads = parse_uint(flag, value);
      if (args.threads == 0) fail("--threads: expected at least 1");
    } else if (flag == "--pause-buffer") {
      args.pause_buffer = parse_uint(flag, value);
    } else if (flag == "--detection-time-ms") {
      args.detection_time_ms = parse_uint(flag, value);
    } else if (flag == "--phi-model") {
      if (value == "linear") {
        args.phi_model = aiocluster::PhiModel::kLinear;
      } else if (value == "normal") {
        args.phi_model = aiocluster::PhiModel::kNormal;
      } else {
        fail("--phi-model: expected linear or normal");
      }
    } else if (flag == "--clock-skew-ms") {
      args.clock_skew_ms = parse_uint(flag, value);
      if (args.clock_skew_ms > 1'000'000'000) fail("--clock-skew-ms: at most 1000000000");
    } else if (flag == "--clock-drift-ppm") {
      args.clock_drift_ppm = parse_uint(flag, value);
      if (args.clock_drift_ppm >= 1'000'000) fail("--clock-drift-ppm: must be below 1000000");
    } else if (flag == "--transport") {
      if (value == "udp") {
        args.transport = aiocluster::sim::Transport::kUdp;
      } else if (value == "tcp") {
        args.transport = aiocluster::sim::Transport::kTcp;
      } else {
        fail("--transport: expected udp or tcp");
      }
    } else {
      fail("unknown flag " + std::string(flag));
    }
  }
  if (args.nodes == 0) fail("--nodes: must be at least 1");
  if (args.nodes > 60'000) fail("--nodes: at most 60000");
  if (args.gossip_interval_ms == 0) fail("--gossip-interval-ms: must be positive");
  if (args.rounds == 0) fail("--rounds: must be at least 1");
  if (args.spike_probability > 0 && args.spike_max_ms < args.latency_max_ms) {
    fail("--spike: MAX_MS must be at least the latency's MAX");
  }
  return args;
}

std::string json_or_null(const std::optional<std::uint64_t>& v) {
  return v ? std::to_string(*v) : "null";
}

aiocluster::Duration seconds(double s) {
  return std::chrono::duration_cast<aiocluster::Duration>(std::chrono::duration<double>(s));
}

// `count` running nodes drawn from `rng`, at the moment of the fault.
std::vector<NodeIndex> pick_running(const Simulator& sim, aiocluster::Rng& rng, std::size_t count) {
  std::vector<NodeIndex> running;
  for (NodeIndex i = 0; i < sim.size(); ++i) {
    if (sim.is_running(i)) running.push_back(i);
  }
  std::vector<NodeIndex> picked;
  for (std::size_t c = 0; c < count && !running.empty(); ++c) {
    const std::size_t pick = rng.below(running.size());
    picked.push_back(running[pick]);
    running.erase(running.begin() + static_cast<std::ptrdiff_t>(pick));
  }
  return picked;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Hands every replica's memory back to the system at once: destroying
// 10^8 of them one by one took most of a minute at 10,000 nodes.
[[noreturn]] void exit_now() {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
#if defined(__GLIBC__)
  // A large simulation allocates and frees 50 to 150 KB buffers (packets,
  // digests) thousands of times a second; by default glibc hands such memory
  // back to the kernel each time and page-faults it in again. Keep it.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
  const auto wall_start = std::chrono::steady_clock::now();

  const std::chrono::milliseconds interval(args.gossip_interval_ms);
  aiocluster::sim::Options options;
  options.seed = args.seed;
  options.transport = args.transport;
  options.network.loss = args.loss;
  options.network.duplicate = args.duplicate;
  options.network.latency.min = std::chrono::milliseconds(args.latency_min_ms);
  options.network.latency.max = std::chrono::milliseconds(args.latency_max_ms);
  options.network.latency.spike_probability = args.spike_probability;
  options.network.latency.spike_max = std::chrono::milliseconds(args.spike_max_ms);
  options.boot_jitter = interval;
  options.pause_buffer = args.pause_buffer;
  options.threads = args.threads;
  Simulator sim(options);

  std::vector<NodeIndex> seeds;
  for (NodeIndex i = 0; i < std::min(args.seed_nodes, args.nodes); ++i) seeds.push_back(i);
  std::size_t legacy_nodes = 0;
  for (NodeIndex i = 0; i < args.nodes; ++i) {
    aiocluster::Config config = Simulator::make_config(i, seeds);
    config.gossip_interval = interval;
    if (args.max_payload_size) config.max_payload_size = *args.max_payload_size;
    auto& fd = config.failure_detector;
    fd.model = args.phi_model;
    if (args.detection_time_ms)
      fd.detection_time = std::chrono::milliseconds(*args.detection_time_ms);
    if (!args.pause_aware) fd.local_pause_threshold = aiocluster::Duration::max();
    // Node i is legacy when the running share of legacy nodes steps up at it.
    const auto share = [&](NodeIndex k) {
      return static_cast<std::uint64_t>(static_cast<double>(k) * args.legacy_fraction);
    };
    const bool legacy = share(i + 1) > share(i);
    config.extensions.compact_digest = !legacy;
    config.extensions.compression = !legacy && args.compression;
    legacy_nodes += legacy ? 1 : 0;
    aiocluster::KeyValues kvs;
    for (std::size_t k = 0; k < args.keys_per_node; ++k) {
      kvs.emplace_back("key-" + std::to_string(k),
                       "value-" + std::to_string(i) + "-" + std::to_string(k));
    }
    if (args.keyring_demo) config.sealing.keyring = aiocluster::Keyring({demo_key(args.seed, 0)});
    sim.add_node(std::move(config), std::move(kvs));
  }
  if (args.keyring_demo) schedule_rotation(sim, args, interval);

  // Each node's clock is drawn from the seed too, by a generator of its own
  // (no draw at all without skew or drift: a run without them is unchanged).
  if (args.clock_skew_ms > 0 || args.clock_drift_ppm > 0) {
    aiocluster::Rng clock_rng(args.seed ^ 0x636c6f636bULL);
    auto symmetric = [&clock_rng](std::uint64_t bound) {
      return static_cast<std::int64_t>(clock_rng.below(2 * bound + 1)) -
             static_cast<std::int64_t>(bound);
    };
    for (NodeIndex i = 0; i < args.nodes; ++i) {
      const auto skew = std::chrono::milliseconds(symmetric(args.clock_skew_ms));
      sim.set_clock(i, {skew, symmetric(args.clock_drift_ppm)});
    }
  }

  // Which nodes crash or pause is drawn from the seed as well, at the moment
  // of the fault.
  aiocluster::Rng crash_rng(args.seed ^ 0x6372617368ULL);
  for (const CrashPlan& plan : args.crashes) {
    sim.at(sim.epoch() + seconds(plan.second), [plan, &crash_rng](Simulator& s) {
      for (NodeIndex i : pick_running(s, crash_rng, plan.count)) s.crash(i);
    });
  }
  aiocluster::Rng pause_rng(args.seed ^ 0x7061757365ULL);
  for (const PausePlan& plan : args.pauses) {
    sim.at(sim.epoch() + seconds(plan.second), [plan, &pause_rng](Simulator& s) {
      for (NodeIndex i : pick_running(s, pause_rng, plan.count)) s.pause(i, seconds(plan.duration));
    });
  }

  // When each survivor first saw each crashed node leave its live set, so the
  // JSON can tell the typical survivor from the last one (detect_ms is the
  // last; the failure detector's verdict differs per observer).
  std::vector<std::vector<std::optional<aiocluster::Instant>>> left_at;
  sim.on_event([&](NodeIndex observer, const aiocluster::Event& ev) {
    const auto* left = std::get_if<aiocluster::NodeLeft>(&ev);
    if (left == nullptr) return;
    const auto& crashes = sim.crashes();
    left_at.resize(crashes.size());
    for (std::size_t c = 0; c < crashes.size(); ++c) {
      if (crashes[c].id != left->node) continue;
      left_at[c].resize(sim.size());
      if (!left_at[c][observer]) left_at[c][observer] = sim.now();
    }
  });

  // Probe convergence ten times per round until it first holds.
  const auto probe = std::max<aiocluster::Duration>(interval / 10, 1ms);
  std::optional<aiocluster::Instant> converged_at;
  for (std::uint64_t round = 1; round <= args.rounds; ++round) {
    const auto round_start = std::chrono::steady_clock::now();
    const aiocluster::Instant round_end = sim.epoch() + interval * round;
    if (!converged_at) converged_at = sim.run_until_converged(round_end, probe);
    sim.run_until(round_end);
    if (args.progress) {
      const auto& c = sim.counters();
      std::fprintf(stderr,
                   "round %" PRIu64 ": wall %lld ms, messages %" PRIu64 ", bytes %" PRIu64 "%s\n",
                   round,
                   static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::steady_clock::now() - round_start)
                                              .count()),
                   c.messages, c.bytes, converged_at ? ", converged" : "");
    }
  }

  std::optional<std::uint64_t> converged_ms;
  std::optional<std::uint64_t> converged_round;
  if (converged_at) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(*converged_at - sim.epoch());
    converged_ms = static_cast<std::uint64_t>(ms.count());
    converged_round = (*converged_ms + args.gossip_interval_ms - 1) / args.gossip_interval_ms;
  }
  std::optional<std::uint64_t> detect_ms;
  std::size_t undetected = 0;
  for (const auto& crash : sim.crashes()) {
    if (!crash.detected_at) {
      ++undetected;
      continue;
    }
    const auto ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(*crash.detected_at - crash.at)
            .count());
    detect_ms = std::max(detect_ms.value_or(0), ms);
  }
  if (undetected > 0) detect_ms.reset();

  // Per survivor (up and running at the end) and crash: milliseconds from
  // the crash until it saw the node leave; `missing` counts those that
  // still hold it live.
  std::vector<std::uint64_t> survivor_ms;
  std::size_t survivors_missing = 0;
  for (std::size_t c = 0; c < sim.crashes().size(); ++c) {
    const auto& crash = sim.crashes()[c];
    for (NodeIndex i = 0; i < sim.size(); ++i) {
      if (!sim.is_running(i) || sim.node(i).self_id() == crash.id) continue;
      const std::optional<aiocluster::Instant> when =
          c < left_at.size() && i < left_at[c].size() ? left_at[c][i] : std::nullopt;
      if (when) {
        survivor_ms.push_back(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(*when - crash.at).count()));
      } else if (sim.node(i).is_live(crash.id)) {
        ++survivors_missing;
      }
    }
  }
  std::sort(survivor_ms.begin(), survivor_ms.end());
  std::string survivor_json = "null";
  if (!sim.crashes().empty()) {
    const auto at = [&](std::size_t k) {
      return survivor_ms.empty() ? std::string("null") : std::to_string(survivor_ms[k]);
    };
    const std::size_t n = survivor_ms.size();
    survivor_json = "{\"min\":" + at(0) + ",\"median\":" + at(n / 2) +
                    ",\"max\":" + at(n == 0 ? 0 : n - 1) +
                    ",\"missing\":" + std::to_string(survivors_missing) + "}";
  }

  // What the nodes up at the end counted of their own pauses.
  std::uint64_t local_pauses = 0;
  std::uint64_t convictions_deferred = 0;
  for (NodeIndex i = 0; i < sim.size(); ++i) {
    if (!sim.is_up(i)) continue;
    local_pauses += sim.node(i).stats().local_pauses;
    convictions_deferred += sim.node(i).stats().convictions_deferred;
  }
  std::size_t paused = 0;
  for (const PausePlan& plan : args.pauses) paused += plan.count;

  const auto& c = sim.counters();
  const double bytes_per_node_round = static_cast<double>(c.bytes) /
                                      static_cast<double>(args.nodes) /
                                      static_cast<double>(args.rounds);
  char hash[32];
  std::snprintf(hash, sizeof hash, "%016" PRIx64, sim.trace_hash());
  const auto wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - wall_start)
                           .count();

  // Peak resident memory of the whole process (simulator included), and
  // that over the replicas every node holds of every node.
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  const std::uint64_t peak_rss = static_cast<std::uint64_t>(usage.ru_maxrss) * 1024;
  const double replicas = static_cast<double>(args.nodes) * static_cast<double>(args.nodes);
  const double peak_per_replica = replicas > 0 ? static_cast<double>(peak_rss) / replicas : 0.0;
  std::uint64_t compact_out = 0;
  std::uint64_t partial_out = 0;
  std::uint64_t aligned_out = 0;
  std::uint64_t aligned_mismatched = 0;
  std::uint64_t sealed = 0;
  std::uint64_t seal_refused = 0;
  std::uint64_t compressed = 0;
  std::uint64_t exchanges = 0;  // Syns sent
  std::uint64_t truncated = 0;  // base digests cut to fit (PROTOCOL.md section 5)
  for (NodeIndex i = 0; i < sim.size(); ++i) {
    if (!sim.is_up(i)) continue;  // of the nodes up at the end
    const aiocluster::Stats& st = sim.node(i).stats();
    compact_out += st.compact_digests_out;
    partial_out += st.partial_digests_out;
    aligned_out += st.aligned_digests_out;
    aligned_mismatched += st.aligned_digests_mismatched;
    sealed += st.packets_sealed;
    seal_refused += st.seal_refusals();
    compressed += st.packets_compressed;
    exchanges += st.packets_out.syn;
    truncated += st.digests_truncated;
  }
  const double bytes_per_exchange =
      exchanges > 0 ? static_cast<double>(c.bytes) / static_cast<double>(exchanges) : 0.0;

  if (!args.json) {
    std::printf("nodes %zu, seed %" PRIu64 ", %" PRIu64 " rounds of %" PRIu64 " ms, %s, loss %s\n",
                args.nodes, args.seed, args.rounds, args.gossip_interval_ms,
                args.transport == aiocluster::sim::Transport::kUdp ? "udp" : "tcp",
                fixed(args.loss, 3).c_str());
    std::printf("converged: %s\n", converged_at ? ("round " + std::to_string(*converged_round) +
                                                   " (" + std::to_string(*converged_ms) + " ms)")
                                                      .c_str()
                                                : "never");
    if (!sim.crashes().empty()) {
      std::printf(
          "crashes: %zu, detected by all survivors: %s\n", sim.crashes().size(),
          detect_ms ? (std::to_string(*detect_ms) + " ms after the crash").c_str() : "not all");
      std::printf("per survivor (ms after the crash): %s\n", survivor_json.c_str());
    }
    std::printf("false deaths: %" PRIu64 " by healthy nodes, %" PRIu64 " by paused nodes\n",
                c.false_deaths, c.false_deaths_by_paused);
    if (!args.pauses.empty()) {
      std::printf("local pauses noticed: %" PRIu64 ", convictions deferred: %" PRIu64 "\n",
                  local_pauses, convictions_deferred);
    }
    std::printf("messages %" PRIu64 ", bytes %" PRIu64
                " (%.0f per node per round), max packet %" PRIu64 ", lost %" PRIu64 "\n",
                c.messages, c.bytes, bytes_per_node_round, c.max_packet_bytes, c.lost);
    std::printf("legacy nodes %zu, compact digests sent %" PRIu64 " (%" PRIu64 " partial, %" PRIu64
                " aligned, %" PRIu64 " aligned mismatched), base digests cut %" PRIu64 "\n",
                legacy_nodes, compact_out, partial_out, aligned_out, aligned_mismatched, truncated);
    std::printf("exchanges %" PRIu64 " (%.0f bytes each), packets compressed %" PRIu64 "\n",
                exchanges, bytes_per_exchange, compressed);
    if (args.keyring_demo) {
      std::printf("packets sealed %" PRIu64 ", sealed packets refused %" PRIu64 "\n", sealed,
                  seal_refused);
    }
    std::printf("peak RSS %" PRIu64 " bytes, %.0f per replica\n", peak_rss, peak_per_replica);
    std::printf("trace hash %s, wall %lld ms\n", hash, static_cast<long long>(wall_ms));
  }
  if (!args.json) exit_now();
  std::printf(
      "{\"nodes\":%zu,\"seed\":%" PRIu64 ",\"rounds\":%" PRIu64 ",\"gossip_interval_ms\":%" PRIu64
      ",\"transport\":\"%s\",\"loss\":%s,\"converged_round\":%s,\"converged_ms\":%s,"
      "\"crashed\":%zu,\"detect_ms\":%s,\"undetected\":%zu,\"detect_ms_by_survivor\":%s,"
      "\"false_deaths\":%" PRIu64 ",\"false_deaths_by_paused\":%" PRIu64
      ",\"paused\":%zu,\"local_pauses\":%" PRIu64 ",\"convictions_deferred\":%" PRIu64
      ",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64
      ",\"bytes_per_node_per_round\":%s"
      ",\"max_packet_bytes\":%" PRIu64 ",\"oversized_packets\":%" PRIu64 ",\"lost\":%" PRIu64
      ",\"delivered\":%" PRIu64 ",\"legacy_nodes\":%zu,\"compact_digests\":%" PRIu64
      ",\"partial_digests\":%" PRIu64 ",\"aligned_digests\":%" PRIu64
      ",\"aligned_mismatched\":%" PRIu64 ",\"digests_truncated\":%" PRIu64
      ",\"packets_sealed\":%" PRIu64 ",\"seal_refused\":%" PRIu64 ",\"packets_compressed\":%" PRIu64
      ",\"exchanges\":%" PRIu64
      ",\"bytes_per_exchange\":%s"
      ",\"peak_rss_bytes\":%" PRIu64
      ",\"peak_rss_per_replica\":%s,\"trace_hash\":\"%s\",\"wall_ms\":%lld}\n",
      args.nodes, args.seed, args.rounds, args.gossip_interval_ms,
      args.transport == aiocluster::sim::Transport::kUdp ? "udp" : "tcp",
      fixed(args.loss, 4).c_str(), json_or_null(converged_round).c_str(),
      json_or_null(converged_ms).c_str(), sim.crashes().size(),
      sim.crashes().empty() ? "null" : json_or_null(detect_ms).c_str(), undetected,
      survivor_json.c_str(), c.false_deaths, c.false_deaths_by_paused, paused, local_pauses,
      convictions_deferred, c.messages, c.bytes, fixed(bytes_per_node_round, 1).c_str(),
      c.max_packet_bytes, c.oversized_packets, c.lost, c.delivered, legacy_nodes, compact_out,
      partial_out, aligned_out, aligned_mismatched, truncated, sealed, seal_refused, compressed,
      exchanges, fixed(bytes_per_exchange, 1).c_str(), peak_rss, fixed(peak_per_replica, 1).c_str(),
      hash, static_cast<long long>(wall_ms));
  exit_now();
}
