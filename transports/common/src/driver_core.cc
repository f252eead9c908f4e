#include "driver_common/driver_core.h"

#include "driver_common/exchange_channel.h"
#include "driver_common/net.h"

namespace aiocluster::driver::detail {

std::error_code error_code(WaitEnd how) {
  switch (how) {
    case WaitEnd::kReady:
      return {};
    case WaitEnd::kTimedOut:
      return std::make_error_code(std::errc::timed_out);
    case WaitEnd::kStopped:
      break;
  }
  return std::make_error_code(std::errc::operation_canceled);
}

void DriverCore::check(Config& config, const Options& options) {
  fill_unset_generation(config);
  check_config_and_options(config, options);
}

DriverCore::DriverCore(Options options, Loop& loop)
    : options_(std::move(options)),
      loop_(loop),
      channels_(options_),
      hooks_(options_.hook_queue_capacity) {}

void DriverCore::build(Config config, const KeyValues& initial_key_values, Address bound) {
  if (config.node_id.gossip_advertise_addr.port == 0) {
    config.node_id.gossip_advertise_addr.port = bound.port;
  }
  bound_ = std::move(bound);
  // Sealed packets carry the wall clock (replay window): the steady clock's
  // start instant is pinned to the system clock's reading here.
  const Instant start = clock();
  if (!config.sealing.wall_clock_at_start) {
    config.sealing.wall_clock_at_start = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::system_clock::now().time_since_epoch());
  }
  // The seed is fresh per process (std::random_device unless Options::seed):
  // the sealer's sender id comes from it, so a restarted process never
  // reuses a nonce under the same key.
  node_.emplace(std::move(config), start, node_seed(options_), initial_key_values);
}

void DriverCore::start() {
  if (started_ || stopped_) return;
  started_ = true;
  loop_.listen();
  handle_timeout();
}

bool DriverCore::stop() {
  if (stopped_) return false;
  stopped_ = true;
  loop_.close_all();
  while (!waits_.empty()) end_wait(*waits_.front(), WaitEnd::kStopped);
  hook_deadline_ = std::chrono::steady_clock::now() + options_.hook_drain_timeout;
  if (hooks_.running()) return false;
  hooks_.run(hooks_.size(), hook_deadline_);
  hooks_.drop_all();
  hooks_posted_ = false;
  return true;
}

void DriverCore::handle_timeout() {
  if (stopped_) return;
  // A stale wake-up after a re-arm is harmless: nothing is due before its
  // deadline.
  armed_for_.reset();
  const Instant now = clock();
  for (auto it = waits_.begin(); it != waits_.end();) {
    Wait& wait = **it++;  // end_wait erases it
    if (wait.deadline_ <= now) end_wait(wait, WaitEnd::kTimedOut);
  }
  if (!started_) return arm_timer();
  node_->handle_timeout(now);
  after_input();
}

void DriverCore::handle_datagram(ByteView bytes, const PeerKey& from,
                                 const std::function<void(Bytes)>& reply) {
  if (stopped_) return;
  ++stats_.datagrams_in;
  Outcome outcome = node_->handle_packet(bytes, clock(), Inbound{Stage::kDatagram, from});
  if (outcome.reply) reply(std::move(outcome.reply->payload));
  after_input();
}

void DriverCore::datagram_sent(const PeerKey& to) {
  if (!stopped_) node_->handle_datagram_sent(to);
}

void DriverCore::handle_frame(StreamExchange& exchange, Bytes payload) {
  if (stopped_) return;
  exchange.on_frame(*node_, std::move(payload), clock());
  if (exchange.role() == StreamExchange::Role::kInitiator && exchange.completed()) {
    ++stats_.exchanges_completed;
  }
  after_input();
}

// Drain order after every input: transmits, the next timeout, events.
void DriverCore::after_input() {
  if (stopped_) return;
  while (auto tx = node_->poll_transmit()) {
    if (options_.transport == Transport::kTcp) {
      if (channels_.outgoing >= options_.max_outgoing_exchanges) {
        ++stats_.exchanges_refused;
        continue;
      }
      // A peer too slow to finish our last exchange within a round gets no
      // second one on top: under overload, piling up handshakes that all
      // time out would stop every exchange from finishing.
      if (channels_.busy_targets.contains(tx->to)) {
        ++stats_.exchanges_skipped_busy;
        continue;
      }
    }
    ++stats_.exchanges_started;
    loop_.start_exchange(std::move(*tx));
  }
  bool queued = false;
  while (auto event = node_->poll_event()) queued |= hooks_.push(std::move(*event));
  if (hooks_.watches_live_set() && node_->live_set_version() != live_set_seen_) {
    live_set_seen_ = node_->live_set_version();
    hooks_.live_set_changed();
    queued = true;
  }
  if (queued) schedule_hooks();
  for (auto it = waits_.begin(); it != waits_.end();) {
    Wait& wait = **it++;  // end_wait erases it
    if (wait.condition_(*node_)) end_wait(wait, WaitEnd::kReady);
  }
  arm_timer();
}

// The earliest of the node's next round (once started) and the waits'
// deadlines.
void DriverCore::arm_timer() {
  if (stopped_) return;
  std::optional<Instant> next = started_ ? node_->poll_timeout() : std::nullopt;
  for (const auto& wait : waits_) {
    if (!next || wait->deadline_ < *next) next = wait->deadline_;
  }
  if (next != armed_for_) {
    armed_for_ = next;
    loop_.arm_timer(next);
  }
}

bool DriverCore::admit(const std::string& host) {
  return !stopped_ &&
         channels_.waiting.admit(host, channels_.inbound, options_.max_inbound_connections, stats_);
}

void DriverCore::watch_live_set(LiveSetHook hook) {
  hooks_.add_live_set(std::move(hook), [this] { return node_->live_set(); });
  live_set_seen_ = node_->live_set_version();
  hooks_.live_set_changed();
  if (!stopped_) schedule_hooks();
}

void DriverCore::schedule_hooks() {
  if (hooks_posted_) return;
  hooks_posted_ = true;
  loop_.post_hooks();
}

void DriverCore::run_hooks() {
  hooks_posted_ = false;
  // Only what is queued now: events raised by the hooks run next turn.
  hooks_.run(hooks_.size(), hook_deadline_);
  if (stopped_) {
    hooks_.drop_all();
  } else if (!hooks_.empty()) {
    schedule_hooks();
  }
}

void DriverCore::add_wait(const std::shared_ptr<Wait>& wait, Duration timeout) {
  if (stopped_ || wait->condition_(*node_)) {
    wait->ended_ = true;
    wait->end(stopped_ ? WaitEnd::kStopped : WaitEnd::kReady);
    return;
  }
  wait->deadline_ = clock() + timeout;
  waits_.push_back(wait);
  arm_timer();
}

void DriverCore::end_wait(Wait& wait, WaitEnd how) {
  if (wait.ended_) return;
  wait.ended_ = true;
  // Kept alive until end() returns, whoever else holds it.
  const std::shared_ptr<Wait> keep = [&] {
    for (auto it = waits_.begin(); it != waits_.end(); ++it) {
      if (it->get() != &wait) continue;
      std::shared_ptr<Wait> found = std::move(*it);
      waits_.erase(it);
      return found;
    }
    return std::shared_ptr<Wait>{};
  }();
  wait.end(how);
}

}  // namespace aiocluster::driver::detail
