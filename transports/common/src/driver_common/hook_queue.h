// The bounded queue between a Node's events and the application's hooks.
// It knows no event loop: a driver pushes events after draining the core and
// calls run() from a task it schedules on its loop, so every driver gives
// hooks the same semantics and counters.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>

#include "aiocluster/common/hooks.h"
#include "aiocluster/events.h"

namespace aiocluster::driver::detail {

class HookQueue {
 public:
  explicit HookQueue(std::size_t capacity) : capacity_(capacity) {}

  void add_join(NodeHook hook) { join_.push_back(std::move(hook)); }
  void add_leave(NodeHook hook) { leave_.push_back(std::move(hook)); }
  void add_key_change(KeyChangeHook hook) { key_change_.push_back(std::move(hook)); }

  // False (and counted as dropped) when the queue is full.
  bool push(Event event);
  bool empty() const { return events_.empty(); }
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

  std::size_t capacity_;
  std::deque<Event> events_;
  // Deques: a hook may register another hook while it runs, and a deque
  // keeps references to its elements valid on push_back.
  std::deque<NodeHook> join_;
  std::deque<NodeHook> leave_;
  std::deque<KeyChangeHook> key_change_;
  HookStats stats_;
  bool running_ = false;
};

}  // namespace aiocluster::driver::detail
