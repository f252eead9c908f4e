#include "driver_common/hook_queue.h"

#include <exception>
#include <type_traits>
#include <variant>

namespace aiocluster::driver::detail {

bool HookQueue::push(Event event) {
  if (events_.size() >= capacity_) {
    ++stats_.dropped;
    return false;
  }
  events_.push_back(std::move(event));
  ++stats_.enqueued;
  return true;
}

std::size_t HookQueue::run(std::size_t max_events,
                           std::optional<std::chrono::steady_clock::time_point> deadline) {
  const bool outer = !running_;
  running_ = true;
  std::size_t ran = 0;
  while (ran < max_events && !events_.empty()) {
    if (deadline && std::chrono::steady_clock::now() >= *deadline) break;
    const Event event = std::move(events_.front());
    events_.pop_front();
    dispatch(event);
    ++stats_.processed;
    ++ran;
  }
  if (live_set_due_ && events_.empty() &&
      !(deadline && std::chrono::steady_clock::now() >= *deadline)) {
    deliver_live_set();
  }
  if (outer) running_ = false;
  return ran;
}

void HookQueue::drop_all() {
  stats_.dropped += events_.size();
  events_.clear();
  live_set_due_ = false;
}

void HookQueue::deliver_live_set() {
  live_set_due_ = false;
  if (live_set_.empty()) return;
  LiveSet live = build_live_set_();
  if (delivered_ == live) return;
  delivered_ = std::move(live);
  // A copy: a hook may make the set move on while the others still run.
  const LiveSet current = *delivered_;
  for (std::size_t i = 0; i < live_set_.size(); ++i) {
    try {
      live_set_[i](current);
    } catch (...) {
      ++stats_.errors;
    }
  }
}

void HookQueue::dispatch(const Event& event) {
  // Each call is guarded on its own: one failing hook does not starve the
  // others of the event. Indexes, not iterators: a hook may add hooks.
  auto guarded = [this](auto&& call) {
    try {
      call();
    } catch (...) {
      ++stats_.errors;
    }
  };
  std::visit(
      [&](const auto& ev) {
        using T = std::decay_t<decltype(ev)>;
        if constexpr (std::is_same_v<T, NodeJoined>) {
          for (std::size_t i = 0; i < join_.size(); ++i) guarded([&] { join_[i](ev.node); });
        } else if constexpr (std::is_same_v<T, NodeLeft>) {
          for (std::size_t i = 0; i < leave_.size(); ++i) guarded([&] { leave_[i](ev.node); });
        } else if constexpr (std::is_same_v<T, ReplicaReset>) {
          for (std::size_t i = 0; i < reset_.size(); ++i) guarded([&] { reset_[i](ev.node); });
        } else {
          for (std::size_t i = 0; i < key_change_.size(); ++i) {
            const KeyWatch& watch = key_change_[i];
            if (!under_prefix(ev, watch.prefix)) continue;
            guarded([&] { watch.hook(ev.node, ev.key, ev.old_value, ev.new_value); });
          }
        }
      },
      event);
}

}  // namespace aiocluster::driver::detail
