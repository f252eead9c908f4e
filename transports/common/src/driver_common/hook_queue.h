// The bounded queue between a Node's events and the application's hooks.
// It knows no event loop: a driver pushes events after draining the core and
// calls run() from a task it schedules on its loop, so every driver gives
// hooks the same semantics and counters.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <string>

#include "aiocluster/common/hooks.h"
#include "aiocluster/events.h"

namespace aiocluster::driver::detail {

class HookQueue {
 public:
  explicit HookQueue(std::size_t capacity) : capacity_(capacity) {}

  void add_join(NodeHook hook) { join_.push_back(std::move(hook)); }
  void add_leave(NodeHook hook) { leave_.push_back(std::move(hook)); }
  void add_key_change(KeyChangeHook hook, std::string prefix = {}) {
    key_change_.push_back({std::move(prefix), std::move(hook)});
  }
  void add_replica_reset(NodeHook hook) { reset_.push_back(std::move(hook)); }
  // `live_set` builds the set when a live-set hook is due.
  void add_live_set(LiveSetHook hook, std::function<LiveSet()> live_set) {
    live_set_.push_back(std::move(hook));
    build_live_set_ = std::move(live_set);
  }
  bool watches_live_set() const { return !live_set_.empty(); }
  // The live set may have changed: live-set hooks run once the queued
  // events have (coalesced with any change already noted).
  void live_set_changed() { live_set_due_ = true; }

  // False (and counted as dropped) when the queue is full.
  bool push(Event event);
  bool empty() const { return events_.empty() && !live_set_due_; }
  std::size_t size() const { return events_.size(); }
  // True while run() is on the stack (a hook is executing).
  bool running() const { return running_; }

  // Runs at most `max_events` queued events through the hooks, stopping
  // early once `deadline` has passed. Returns how many ran.
  std::size_t run(std::size_t max_events,
                  std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);
  // Counts every queued event as dropped and forgets it.
  void drop_all();

  const HookStats& stats() const { return stats_; }

 private:
  void dispatch(const Event& event);
  void deliver_live_set();

  struct KeyWatch {
    std::string prefix;
    KeyChangeHook hook;
  };

  std::size_t capacity_;
  std::deque<Event> events_;
  // Deques: a hook may register another hook while it runs, and a deque
  // keeps references to its elements valid on push_back.
  std::deque<NodeHook> join_;
  std::deque<NodeHook> leave_;
  std::deque<KeyWatch> key_change_;
  std::deque<NodeHook> reset_;
  std::deque<LiveSetHook> live_set_;
  std::function<LiveSet()> build_live_set_;
  bool live_set_due_ = false;
  std::optional<LiveSet> delivered_;  // the set live-set hooks saw last
  HookStats stats_;
  bool running_ = false;
};

}  // namespace aiocluster::driver::detail
