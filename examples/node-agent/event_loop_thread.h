// An event_base run by a thread of its own, with a mailbox through which
// other threads hand it work. The agent's HTTP server runs on one when the
// node runs on Asio. libevent must be made thread-aware first
// (evthread_use_pthreads(), before any event_base exists): the mailbox wakes
// the loop with event_active from other threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

struct event;
struct event_base;

namespace aiocluster::agent {

class EventLoopThread {
 public:
  // The base has two priorities (see HttpServer). At most `max_offered`
  // offered tasks wait at once; more are dropped.
  explicit EventLoopThread(std::size_t max_offered);
  // Stops and joins, if still running.
  ~EventLoopThread();
  EventLoopThread(const EventLoopThread&) = delete;
  EventLoopThread& operator=(const EventLoopThread&) = delete;

  // Set up what runs on the base before start(); after it, touch the base
  // only through post().
  event_base* base() const { return base_; }
  void start();

  // From any thread: `work` runs on the loop, in order. After stop() it is
  // dropped.
  void post(std::function<void()> work);
  // The same, unless `max_offered` offered tasks already wait: then false.
  bool offer(std::function<void()> work);
  std::uint64_t dropped() const;

  // From any thread: `last` runs on the loop after what was posted before,
  // then the loop ends. Later posts are dropped.
  void stop(std::function<void()> last);
  // Waits for the thread to end (after stop()).
  void join();

 private:
  struct Task {
    std::function<void()> work;
    bool offered = false;
  };

  static void on_wake(int, short, void* arg);
  // `last`: nothing is taken after this task.
  bool enqueue(Task task, bool last);

  event_base* base_ = nullptr;
  event* wake_ = nullptr;
  std::thread thread_;
  const std::size_t max_offered_;

  mutable std::mutex mutex_;  // guards what follows
  std::deque<Task> tasks_;
  std::size_t offered_waiting_ = 0;
  std::uint64_t dropped_ = 0;
  bool stopping_ = false;
};

}  // namespace aiocluster::agent
