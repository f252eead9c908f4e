// What every driver does besides moving bytes, written once. DriverCore owns
// the Node and feeds it what the driver received -- its timer, a datagram, a
// frame of a stream exchange, a mutation -- with the steady clock; after each
// input it drains the node in the documented order: transmits to the driver,
// the next deadline to the driver's one timer, events into the hook queue;
// then it ends the waits whose condition holds. A driver implements Loop for
// the few things that need its event loop, and keeps only sockets.
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>

#include "aiocluster/common/options.h"
#include "aiocluster/common/stats.h"
#include "aiocluster/config.h"
#include "aiocluster/exchange.h"
#include "aiocluster/node.h"
#include "aiocluster/types.h"
#include "driver_common/frame_reader.h"
#include "driver_common/hook_queue.h"
#include "driver_common/waiting_connections.h"

namespace aiocluster::driver::detail {

class ExchangeChannel;

// What a driver keeps for all its stream connections.
struct Channels {
  explicit Channels(const Options& options)
      : large_frames(options.max_large_frame_bytes), waiting(options.max_waiting_per_host) {}

  LargeFrameBudget large_frames;                // outlives the connections' readers
  WaitingConnections<ExchangeChannel> waiting;  // responders before their Syn
  std::size_t outgoing = 0;
  std::size_t inbound = 0;
  // Targets of our outgoing exchanges still running: one at a time each.
  std::set<Address> busy_targets;
};

enum class WaitEnd : std::uint8_t {
  kReady,     // the condition holds
  kTimedOut,  // its timeout passed first
  kStopped,   // the cluster stopped first
};

// How a wait ended, as a callback's std::error_code: none, timed_out or
// operation_canceled (std::errc).
std::error_code error_code(WaitEnd how);

// One pending wait: its condition and deadline, with the driver's
// completion in a subclass. DriverCore decides when it ends; its deadline
// shares the driver's one timer with the node's.
class Wait {
 public:
  explicit Wait(std::function<bool(const Node&)> condition) : condition_(std::move(condition)) {}
  virtual ~Wait() = default;
  Wait(const Wait&) = delete;
  Wait& operator=(const Wait&) = delete;

 private:
  friend class DriverCore;
  // Delivers `how` to the waiter (never inside the caller's stack). Called
  // once.
  virtual void end(WaitEnd how) = 0;

  std::function<bool(const Node&)> condition_;
  Instant deadline_;
  bool ended_ = false;
};

class DriverCore {
 public:
  // What DriverCore asks of the driver's event loop.
  class Loop {
   public:
    // A Syn to carry (within Options::max_outgoing_exchanges, to a target
    // with none of ours running): open a connection and run a
    // StreamExchange over it, or send it as a datagram
    // and report where with datagram_sent().
    virtual void start_exchange(Transmit tx) = 0;
    // Arms the driver's one timer at `deadline` (the node's next round or a
    // wait's timeout), replacing the previous one (none: cancel it). When it
    // fires, the driver calls handle_timeout().
    virtual void arm_timer(std::optional<Instant> deadline) = 0;
    // Calls run_hooks() from the loop soon, never from inside this call.
    virtual void post_hooks() = 0;
    // start(): accept connections or receive datagrams on the bound socket.
    virtual void listen() = 0;
    // stop(): close every socket, timer and connection.
    virtual void close_all() = 0;

   protected:
    ~Loop() = default;
  };

  // Checks `options` (std::invalid_argument) and `config` (ConfigError) and
  // fills an unset generation, before the driver binds anything.
  static void check(Config& config, const Options& options);

  DriverCore(Options options, Loop& loop);

  // Builds the node once the driver is bound at `bound` (numeric); an
  // advertise port of 0 becomes the bound port.
  void build(Config config, const KeyValues& initial_key_values, Address bound);

  // The first time, before stop(): the loop listens, the first round runs.
  void start();
  // The first time: the loop closes everything, every wait ends (kStopped)
  // and the queued hooks run for at most Options::hook_drain_timeout, the
  // rest dropped. True when that drain is done; false when a hook is on the
  // stack (that run finishes it) or it was stopped before.
  bool stop();

  // --- Inputs, each followed by the drain. ---
  void handle_timeout();
  // A datagram from `from`; `reply` sends an answer back to it.
  void handle_datagram(ByteView bytes, const PeerKey& from,
                       const std::function<void(Bytes)>& reply);
  // A Syn went out as a datagram to `to` (a Transmit's target, resolved).
  void datagram_sent(const PeerKey& to);
  // The payload of a frame a stream exchange asked to read.
  void handle_frame(StreamExchange& exchange, Bytes payload);
  // A mutation of the node's own key-values.
  template <typename Mutation>
  void mutate(Mutation&& mutation) {
    mutation(*node_);
    after_input();
  }

  // A connection accepted from `host`: true to keep it, false to close it
  // (at max_inbound_connections or stopped); may evict a waiting one.
  bool admit(const std::string& host);

  // The hooks' task, from the loop (Loop::post_hooks).
  void run_hooks();
  HookQueue& hooks() { return hooks_; }
  // Adds a live-set hook; it first sees the set as it is now.
  void watch_live_set(LiveSetHook hook);

  // Keeps `wait` until its condition holds, `timeout` passes, or stop; ends
  // it at once when already true or stopped.
  void add_wait(const std::shared_ptr<Wait>& wait, Duration timeout);

  static Instant clock() { return std::chrono::steady_clock::now(); }
  Node& node() { return *node_; }
  const Node& node() const { return *node_; }
  const Options& options() const { return options_; }
  DriverStats& stats() { return stats_; }
  const DriverStats& stats() const { return stats_; }
  bool started() const { return started_; }
  bool stopped() const { return stopped_; }
  const Address& bound() const { return bound_; }
  Channels& channels() { return channels_; }
  void log(std::string_view line) const {
    if (options_.log) options_.log(line);
  }

 private:
  void after_input();
  void arm_timer();
  void schedule_hooks();
  void end_wait(Wait& wait, WaitEnd how);

  Options options_;
  Loop& loop_;
  std::optional<Node> node_;
  Address bound_;
  bool started_ = false;
  bool stopped_ = false;
  std::optional<Instant> armed_for_;
  DriverStats stats_;
  Channels channels_;
  HookQueue hooks_;
  bool hooks_posted_ = false;
  std::uint64_t live_set_seen_ = 0;  // Node::live_set_version() at the last drain
  std::optional<std::chrono::steady_clock::time_point> hook_deadline_;  // set by stop
  std::list<std::shared_ptr<Wait>> waits_;
};

}  // namespace aiocluster::driver::detail
