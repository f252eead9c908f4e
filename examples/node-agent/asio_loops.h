// Loops for a node on Asio: the node's loop is the Cluster's strand, the
// HTTP loop an EventLoopThread. Work crosses through asio::post one way and
// the thread's mailbox the other, so nothing of the node is touched off its
// strand and nothing of libevent off its thread.
#pragma once

#include <asio/post.hpp>

#include "aiocluster/asio/cluster.h"
#include "event_loop_thread.h"
#include "loops.h"

namespace aiocluster::agent {

class StrandAndThread final : public Loops {
 public:
  StrandAndThread(asio_driver::Cluster::executor_type strand, EventLoopThread& http)
      : strand_(std::move(strand)), http_(http) {}

  void to_node(std::function<void()> work) override { ::asio::post(strand_, std::move(work)); }
  void to_http(std::function<void()> work) override { http_.post(std::move(work)); }
  bool offer_to_http(std::function<void()> work) override { return http_.offer(std::move(work)); }
  std::uint64_t dropped() const override { return http_.dropped(); }

 private:
  asio_driver::Cluster::executor_type strand_;
  EventLoopThread& http_;
};

}  // namespace aiocluster::agent
