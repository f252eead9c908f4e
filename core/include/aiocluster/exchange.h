// One gossip exchange on a stream connection (TCP or TLS), as a sans-IO
// state machine. It alone knows the order of the messages (PROTOCOL.md
// section 2):
//   initiator: writes the Syn, reads a SynAck (then writes the Ack) or a BadCluster;
//   responder: reads the Syn, writes a SynAck (then reads the Ack) or a BadCluster;
// then the connection closes. A driver owns the connection and does what
// next() says, one step at a time:
//
//   auto exchange = aiocluster::StreamExchange::initiate(std::move(tx.payload));  // or respond()
//   for (auto step = exchange.next(); step.action != Action::kClose; step = exchange.next()) {
//     if (step.action == Action::kWrite) write_frame(step.packet);
//     else exchange.on_frame(node, read_frame(), now);  // kRead: one frame's payload
//   }
//   if (exchange.completed()) ...;  // else exchange.dropped() says why it ended early
//
// Frames are a 4-byte big-endian length and a packet (aiocluster/framing.h):
// a driver writes a kWrite packet as frame_header(packet.size()) then the
// packet, reads one frame with a FrameDecoder sized by
// Config::max_inbound_payload_size, and closes the connection on a framing
// error or a timeout (then the exchange is simply abandoned).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "aiocluster/node.h"
#include "aiocluster/stats.h"
#include "aiocluster/types.h"

namespace aiocluster {

class StreamExchange {
 public:
  enum class Role : std::uint8_t {
    kInitiator,  // we opened the connection and send the Syn
    kResponder,  // we accepted it and answer
  };

  enum class Action : std::uint8_t {
    kWrite,  // write `packet` as one frame, then call next()
    kRead,   // read one whole frame and pass its payload to on_frame()
    kClose,  // the exchange is over: close the connection
  };

  struct Step {
    Action action = Action::kClose;
    Bytes packet;  // kWrite
  };

  // The side that sends `syn` (a Transmit's payload).
  static StreamExchange initiate(Bytes syn);
  // The side that accepted a connection.
  static StreamExchange respond();

  // Mutual TLS, responder: the names of the peer's verified certificate, for
  // the tls_name rule (Inbound::peer_names). Set before the Syn arrives.
  void set_peer_names(std::optional<std::vector<std::string>> names);

  // What the driver does now. A kWrite is handed out once: the next call
  // takes it as written.
  Step next();
  // The payload of the frame a kRead asked for, handed to `node` at the
  // stage this exchange has reached. Ignored unless a read was asked for.
  void on_frame(Node& node, ByteView payload, Instant now);
  // The same, handing the frame's bytes over: the key-values it brings may
  // stay where they are instead of being copied.
  void on_frame(Node& node, Bytes&& payload, Instant now);

  Role role() const { return role_; }
  // Where the next frame read sits in the exchange.
  Stage stage() const { return stage_; }
  // The last message was handled and accepted: the exchange ran to its end
  // (the initiator's SynAck or BadCluster, the responder's Ack).
  bool completed() const { return completed_; }
  // Why the exchange ended early: the peer's message was dropped (and counted
  // in the node's Stats). A responder that answers a Syn of another cluster
  // with BadCluster ends with kWrongCluster.
  std::optional<DropReason> dropped() const { return dropped_; }

 private:
  StreamExchange(Role role, Stage stage) : role_(role), stage_(stage) {}
  bool expects_frame() const { return reading_ && !to_write_; }
  Inbound inbound() const { return Inbound{stage_, {}, peer_names_}; }
  void take(Outcome outcome);

  Role role_;
  Stage stage_;
  std::optional<Bytes> to_write_;
  bool reading_ = false;
  bool completed_ = false;
  std::optional<DropReason> dropped_;
  std::optional<std::vector<std::string>> peer_names_;
};

// Sees one packet (a frame's payload) on its way from one end of an
// in-process exchange to the other; false loses it, which ends the exchange
// as a broken connection would.
using Carrier = std::function<bool(ByteView packet, StreamExchange::Role sender)>;

// Runs both ends of one stream exchange in one process, without a wire: each
// frame one end writes is the next one the other reads, until either closes
// or `carry` loses a packet. For tests, benchmarks and simulators that need
// no latency; the responder's peer names (mutual TLS) are set beforehand.
void run_in_process(Node& initiator_node, StreamExchange& initiator, Node& responder_node,
                    StreamExchange& responder, Instant now, const Carrier& carry = {});

}  // namespace aiocluster
