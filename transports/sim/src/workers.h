// Threads that run the jobs of a batch of node inputs at once (internal to
// the simulator): the calling thread takes part, so `threads` counts it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace aiocluster::sim {

class Workers {
 public:
  explicit Workers(std::size_t threads);
  ~Workers();
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  std::size_t threads() const { return threads_.size() + 1; }
  // Calls job(j) once for every j < jobs, spread over the threads, each
  // job on one thread; returns once all are done, rethrowing the first
  // exception a job threw.
  void run(std::size_t jobs, const std::function<void(std::size_t)>& job);

 private:
  void work();
  void take_jobs();

  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  const std::function<void(std::size_t)>* job_ = nullptr;
  std::size_t jobs_ = 0;
  std::atomic<std::size_t> next_{0};
  std::size_t busy_ = 0;          // workers not yet through the current run
  std::uint64_t generation_ = 0;  // of runs, so a worker takes each once
  bool stop_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

}  // namespace aiocluster::sim
