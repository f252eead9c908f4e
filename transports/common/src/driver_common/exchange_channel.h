// One connection carrying one StreamExchange, the part every driver runs the
// same way: the exchange's steps, one frame read at a time within the shared
// large-frame budget, a responder's place among those still waiting for
// their Syn, the count of open connections each way, and how a failure is
// counted and logged. A driver's subclass owns the socket and moves bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "aiocluster/common/stats.h"
#include "aiocluster/exchange.h"
#include "aiocluster/types.h"
#include "driver_common/driver_core.h"

namespace aiocluster::driver::detail {

class ExchangeChannel {
 public:
  ExchangeChannel(const ExchangeChannel&) = delete;
  ExchangeChannel& operator=(const ExchangeChannel&) = delete;

  // Closes to make room for a newer connection (already out of the waiting
  // list); counted by the caller.
  void evict();

 protected:
  ExchangeChannel(DriverCore& core, StreamExchange exchange);
  virtual ~ExchangeChannel();

  // The socket's part: write one whole frame, then call advance(); read
  // under read_timeout, feeding what arrives to feed(); the exchange is over
  // (a TLS close_notify, then close); close at once (on an error, eviction
  // or stop). Each may end with `this` destroyed.
  virtual void write_frame(Bytes frame) = 0;
  virtual void read_frame() = 0;
  virtual void finish() = 0;
  virtual void close_now() = 0;

  // Does what the exchange asks next: the driver holds no message order.
  void advance();
  // Bytes read, at most wanted(): true when more are needed; otherwise the
  // frame was handled or refused and what follows is under way.
  bool feed(ByteView bytes);
  std::size_t wanted() const { return reader_.wanted(); }

  // A responder from `peer` now waits for its Syn.
  void wait_for_syn(Address peer);
  // A step failed: counted in `counter` (unless the cluster stopped or this
  // connection was evicted), logged, closed.
  void fail(std::uint64_t DriverStats::*counter, std::string_view step, std::string_view why);

  bool initiator() const { return exchange_.role() == StreamExchange::Role::kInitiator; }
  StreamExchange& exchange() { return exchange_; }
  const Options& options() const { return core_.options(); }
  DriverCore& core() { return core_; }
  const Address& peer() const { return peer_; }
  // An initiator's target, busy until this channel closes.
  void set_target(Address target);

 private:
  void stop_waiting();

  DriverCore& core_;
  Channels& channels_;
  StreamExchange exchange_;
  FrameReader reader_;
  Address peer_;  // the target (initiator) or the remote end (responder)
  bool evicted_ = false;
  bool busy_target_ = false;  // peer_ is in Channels::busy_targets
  std::optional<WaitingConnections<ExchangeChannel>::Slot> waiting_slot_;
};

}  // namespace aiocluster::driver::detail
