#include "driver_common/exchange_channel.h"

#include <string>

namespace aiocluster::driver::detail {

ExchangeChannel::ExchangeChannel(DriverCore& core, StreamExchange exchange)
    : core_(core),
      channels_(core.channels()),
      exchange_(std::move(exchange)),
      reader_(core.node().config(), channels_.large_frames) {
  ++(initiator() ? channels_.outgoing : channels_.inbound);
}

ExchangeChannel::~ExchangeChannel() {
  stop_waiting();
  if (busy_target_) channels_.busy_targets.erase(peer_);
  --(initiator() ? channels_.outgoing : channels_.inbound);
}

void ExchangeChannel::evict() {
  waiting_slot_.reset();
  evicted_ = true;
  close_now();
}

void ExchangeChannel::advance() {
  if (core_.stopped()) return close_now();
  StreamExchange::Step step = exchange_.next();
  switch (step.action) {
    case StreamExchange::Action::kWrite:
      return write_frame(std::move(step.packet));
    case StreamExchange::Action::kRead:
      return read_frame();
    case StreamExchange::Action::kClose:
      return finish();
  }
}

bool ExchangeChannel::feed(ByteView bytes) {
  using Status = FrameReader::Status;
  switch (reader_.feed(bytes)) {
    case Status::kOk:
      break;
    case Status::kBadLength:
      fail(&DriverStats::framing_errors, "closing", "bad frame length");
      return false;
    case Status::kOverBudget:
      fail(&DriverStats::large_frames_refused, "closing", "no room for a large frame");
      return false;
  }
  std::optional<Bytes> frame = reader_.next_frame();
  if (!frame) return true;
  stop_waiting();
  core_.handle_frame(exchange_, std::move(*frame));
  advance();
  return false;
}

void ExchangeChannel::set_target(Address target) {
  peer_ = std::move(target);
  busy_target_ = channels_.busy_targets.insert(peer_).second;
}

void ExchangeChannel::wait_for_syn(Address peer) {
  peer_ = std::move(peer);
  waiting_slot_ = channels_.waiting.add(this, peer_.host);
}

void ExchangeChannel::fail(std::uint64_t DriverStats::*counter, std::string_view step,
                           std::string_view why) {
  if (!core_.stopped() && !evicted_) {
    ++(core_.stats().*counter);
    core_.log(std::string(step) + " " + peer_.to_string() + ": " + std::string(why));
  }
  close_now();
}

void ExchangeChannel::stop_waiting() {
  if (waiting_slot_) channels_.waiting.remove(*waiting_slot_);
  waiting_slot_.reset();
}

}  // namespace aiocluster::driver::detail
