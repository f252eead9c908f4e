#include "event_loop_thread.h"

#include <event2/event.h>

#include <stdexcept>

namespace aiocluster::agent {

EventLoopThread::EventLoopThread(std::size_t max_offered) : max_offered_(max_offered) {
  base_ = event_base_new();
  if (base_ == nullptr) throw std::runtime_error("event_base_new failed");
  event_base_priority_init(base_, 2);
  wake_ = event_new(base_, -1, 0, &EventLoopThread::on_wake, this);
  if (wake_ == nullptr) {
    event_base_free(base_);
    throw std::runtime_error("event_new failed");
  }
}

EventLoopThread::~EventLoopThread() {
  if (thread_.joinable()) {
    stop([] {});
    join();
  }
  event_free(wake_);
  event_base_free(base_);
}

void EventLoopThread::start() {
  thread_ = std::thread([this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
}

void EventLoopThread::post(std::function<void()> work) { enqueue({std::move(work), false}, false); }

bool EventLoopThread::offer(std::function<void()> work) {
  return enqueue({std::move(work), true}, false);
}

std::uint64_t EventLoopThread::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

bool EventLoopThread::enqueue(Task task, bool last) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    if (task.offered) {
      if (offered_waiting_ >= max_offered_) {
        ++dropped_;
        return false;
      }
      ++offered_waiting_;
    }
    tasks_.push_back(std::move(task));
    stopping_ = last;
  }
  // Thread-safe once libevent is thread-aware; activations coalesce.
  event_active(wake_, EV_TIMEOUT, 0);
  return true;
}

void EventLoopThread::stop(std::function<void()> last) {
  enqueue({[this, last = std::move(last)] {
             last();
             event_base_loopbreak(base_);
           },
           false},
          true);
}

void EventLoopThread::join() {
  if (thread_.joinable()) thread_.join();
}

void EventLoopThread::on_wake(int, short, void* arg) {
  auto* self = static_cast<EventLoopThread*>(arg);
  std::deque<Task> tasks;
  {
    std::lock_guard lock(self->mutex_);
    tasks.swap(self->tasks_);
    self->offered_waiting_ = 0;
  }
  for (Task& task : tasks) task.work();
}

}  // namespace aiocluster::agent
