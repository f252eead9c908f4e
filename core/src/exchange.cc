#include "aiocluster/exchange.h"

namespace aiocluster {

StreamExchange StreamExchange::initiate(Bytes syn) {
  StreamExchange exchange(Role::kInitiator, Stage::kStreamReply);
  exchange.to_write_ = std::move(syn);
  exchange.reading_ = true;  // once the Syn is out
  return exchange;
}

StreamExchange StreamExchange::respond() {
  StreamExchange exchange(Role::kResponder, Stage::kStreamOpen);
  exchange.reading_ = true;
  return exchange;
}

void StreamExchange::set_peer_names(std::optional<std::vector<std::string>> names) {
  peer_names_ = std::move(names);
}

StreamExchange::Step StreamExchange::next() {
  if (to_write_) {
    Step step{Action::kWrite, std::move(*to_write_)};
    to_write_.reset();
    return step;
  }
  return Step{reading_ ? Action::kRead : Action::kClose, {}};
}

void StreamExchange::on_frame(Node& node, ByteView payload, Instant now) {
  if (expects_frame()) take(node.handle_packet(payload, now, inbound()));
}

void StreamExchange::on_frame(Node& node, Bytes&& payload, Instant now) {
  if (expects_frame()) take(node.handle_packet(std::move(payload), now, inbound()));
}

void StreamExchange::take(Outcome outcome) {
  reading_ = false;
  dropped_ = outcome.dropped;
  completed_ = outcome.finished();
  if (!outcome.reply) return;
  to_write_ = std::move(outcome.reply->payload);
  if (outcome.reply->awaits_ack) {
    reading_ = true;
    stage_ = Stage::kStreamAck;
  }
}

void run_in_process(Node& initiator_node, StreamExchange& initiator, Node& responder_node,
                    StreamExchange& responder, Instant now, const Carrier& carry) {
  StreamExchange* writer = &initiator;
  StreamExchange* reader = &responder;
  Node* reading_node = &responder_node;
  for (;;) {
    StreamExchange::Step step = writer->next();
    if (step.action != StreamExchange::Action::kWrite) return;
    if (carry && !carry(step.packet, writer->role())) return;
    if (reader->next().action != StreamExchange::Action::kRead) return;
    reader->on_frame(*reading_node, std::move(step.packet), now);
    std::swap(writer, reader);
    reading_node = reading_node == &responder_node ? &initiator_node : &responder_node;
  }
}

}  // namespace aiocluster
