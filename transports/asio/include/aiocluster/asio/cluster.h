// A cluster member over a standalone Asio io_context: it owns the sockets and
// one timer, feeds an aiocluster::Node with bytes and the steady clock, and
// runs the application's hooks on its strand.
//
//   asio::io_context io;
//   aiocluster::Config config;
//   config.cluster_id = "prod";
//   config.node_id = {"node-1", generation, {"10.0.0.1", 7000}, ""};
//   config.seeds = {{"10.0.0.2", 7000}};
//   aiocluster::asio_driver::Cluster cluster(io, config, {{"role", "db"}});
//   cluster.on_node_join([](const aiocluster::NodeId& id) { ... });
//   cluster.start();
//   cluster.async_wait_live(3, 30s, [](std::error_code ec) { ... });
//   io.run();
//
// Threading: every handler of the driver runs on get_executor(), a strand of
// the io_context, so io.run() may be called from several threads. The
// methods of Cluster must be called on that strand (from a hook, a wait's
// completion, a handler bound to it, or the thread of a single-threaded
// io_context) -- except the async_wait_* initiations, which may be called
// from anywhere.
#pragma once

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "aiocluster/asio/hooks.h"
#include "aiocluster/asio/options.h"
#include "aiocluster/common/cluster_base.h"
#include "aiocluster/common/stats.h"
#include "aiocluster/common/waits.h"
#include "aiocluster/config.h"
#include "aiocluster/node.h"
#include "aiocluster/stats.h"
#include "aiocluster/types.h"

namespace aiocluster::asio_driver {

// What the driver saw on its sockets: the counters every driver keeps.
using driver::DriverStats;

namespace detail {

struct ClusterImpl;

// The completion of one pending wait, with the handler's type erased so the
// driver can keep waits of any completion token in one list.
class WaitCompletion {
 public:
  virtual ~WaitCompletion() = default;
  virtual void complete(std::error_code ec) = 0;
};

template <typename Handler, typename Fallback>
class WaitCompletionFor final : public WaitCompletion {
 public:
  WaitCompletionFor(Handler handler, const Fallback& fallback)
      : handler_(std::move(handler)),
        work_(::asio::make_work_guard(::asio::get_associated_executor(handler_, fallback))) {}

  void complete(std::error_code ec) override {
    auto executor = work_.get_executor();
    // The handler runs where it wants to (its associated executor), never
    // inside the driver's own call stack.
    ::asio::post(executor,
                 [handler = std::move(handler_), ec]() mutable { std::move(handler)(ec); });
    work_.reset();
  }

 private:
  Handler handler_;
  ::asio::executor_work_guard<::asio::associated_executor_t<Handler, Fallback>> work_;
};

}  // namespace detail

// The key-values, the view of the cluster, the counters and the hooks are
// those of every driver (driver::ClusterBase): set, remove, set_with_ttl,
// delete_after_ttl, get; live_nodes, dead_nodes, live_set, snapshot, stats,
// driver_stats, hook_stats, node; on_node_join, on_node_leave,
// on_key_change (all keys or under a prefix), on_replica_reset, on_live_set;
// self_id, local_address, running. Waits take any predicate over the Node,
// such as those of aiocluster/common/waits.h (live_set_matches,
// has_key_under).
class Cluster : public driver::ClusterBase {
 public:
  using executor_type = ::asio::strand<::asio::io_context::executor_type>;

  // Binds the socket at once, so that port 0 resolves to the real port
  // before the node's id is fixed, and builds the node. Throws ConfigError
  // for a bad config, std::invalid_argument for bad options, and
  // std::system_error when binding or loading TLS files fails.
  Cluster(::asio::io_context& io, Config config, const KeyValues& initial_key_values = {},
          Options options = {});
  // Stops, if still running.
  ~Cluster();

  // Starts accepting, receiving and gossiping. Call once.
  void start();
  // Graceful stop: the timer is cancelled, every socket closed, pending
  // exchanges abandoned, waits completed with asio::error::operation_aborted,
  // and the hooks already queued run for at most Options::hook_drain_timeout.
  // Once the handlers the closing aborted have run (promptly), nothing of
  // this Cluster is left on the io_context. Idempotent.
  void stop();

  executor_type get_executor() const;

  // --- Waits, as Asio asynchronous operations with signature
  // void(std::error_code): a callback, asio::use_awaitable, asio::use_future...
  // They complete with no error once the condition holds (checked at once and
  // after every input), with asio::error::timed_out after `timeout`, and with
  // asio::error::operation_aborted when the cluster stops. ---

  // Until `predicate(node())` holds.
  template <typename Token>
  auto async_wait(Predicate predicate, Duration timeout, Token&& token) {
    return ::asio::async_initiate<Token, void(std::error_code)>(
        [this](auto handler, Predicate pred, Duration limit) {
          using Handler = std::decay_t<decltype(handler)>;
          add_wait(std::move(pred), limit,
                   std::make_unique<detail::WaitCompletionFor<Handler, executor_type>>(
                       std::move(handler), get_executor()));
        },
        token, std::move(predicate), timeout);
  }

  // Until at least `count` nodes are live, this one included.
  template <typename Token>
  auto async_wait_live(std::size_t count, Duration timeout, Token&& token) {
    return async_wait(driver::live_at_least(count), timeout, std::forward<Token>(token));
  }

  // Until a node named `node_name` shows `key` with `value`.
  template <typename Token>
  auto async_wait_key(std::string node_name, std::string key, std::string value, Duration timeout,
                      Token&& token) {
    return async_wait(driver::has_key_value(std::move(node_name), std::move(key), std::move(value)),
                      timeout, std::forward<Token>(token));
  }

 private:
  void add_wait(Predicate predicate, Duration timeout,
                std::unique_ptr<detail::WaitCompletion> completion);

  // Shared with the handlers in flight, so it outlives the Cluster until
  // the last of them has run.
  std::shared_ptr<detail::ClusterImpl> impl_;
};

}  // namespace aiocluster::asio_driver
