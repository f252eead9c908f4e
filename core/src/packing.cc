#include "packing.h"

#include <stdexcept>

#include "aiocluster/cluster_state.h"

namespace aiocluster {

namespace {

using wire_size::length_delimited;

std::size_t cluster_field(std::string_view cluster_id) {
  return cluster_id.empty() ? 0 : length_delimited(cluster_id.size());
}

// Bytes of a packet around its digest or delta body, rounded up: the
// cluster id, the oneof member's tag and length, the body's tag and length.
std::size_t envelope_size(std::string_view cluster_id, std::size_t max_payload_size) {
  return cluster_field(cluster_id) + 2 * (1 + wire_size::varint(max_payload_size));
}

// A packet of `body` bytes of message `field`: its bytes (with `room` bytes
// of capacity beyond them), and a writer past the message's header.
struct Out {
  Out(std::string_view cluster_id, unsigned field, std::size_t body, std::size_t room)
      : bytes(with_room(cluster_field(cluster_id) + length_delimited(body), room)),
        w(bytes.data()) {
    w.string_field(1, cluster_id);
    w.header(field, body);
  }
  // The sizes computed ahead and the writer follow the same rules: a
  // mismatch is a bug in the core, never the peer's doing.
  Bytes done() {
    if (w.position() != bytes.data() + bytes.size()) {
      throw std::logic_error("a packet's size was computed wrong");
    }
    return std::move(bytes);
  }
  Bytes bytes;
  wire::Writer w;
};

}  // namespace

std::size_t largest_body(std::size_t room) {
  if (room < 2) return 0;
  std::size_t body = room - 2;
  while (body > 0 && length_delimited(body) > room) --body;
  return body;
}

std::size_t syn_digest_budget(std::string_view cluster_id, std::size_t max_payload_size) {
  return max_payload_size - envelope_size(cluster_id, max_payload_size);
}

std::size_t synack_digest_budget(std::string_view cluster_id, std::size_t max_payload_size) {
  return max_payload_size * 3 / 4 - envelope_size(cluster_id, max_payload_size);
}

std::size_t synack_delta_budget(std::string_view cluster_id, std::size_t max_payload_size,
                                std::size_t digest_size) {
  const std::size_t cid = cluster_field(cluster_id);
  const std::size_t inner = largest_body(max_payload_size < cid ? 0 : max_payload_size - cid);
  const std::size_t digest_field = length_delimited(digest_size);
  return inner < digest_field ? 0 : largest_body(inner - digest_field);
}

std::size_t ack_delta_budget(std::string_view cluster_id, std::size_t max_payload_size) {
  const std::size_t cid = cluster_field(cluster_id);
  return largest_body(largest_body(max_payload_size < cid ? 0 : max_payload_size - cid));
}

Bytes write_syn(std::string_view cluster_id, const ClusterState& state, const DigestPlan& digest,
                std::size_t room) {
  Out out(cluster_id, 2, length_delimited(digest.size), room);
  out.w.header(2, digest.size);
  PacketPaths::write_digest(state, out.w, digest);
  return out.done();
}

Bytes write_synack(std::string_view cluster_id, const ClusterState& state, const DigestPlan& digest,
                   const DeltaPlan& delta, std::size_t room) {
  Out out(cluster_id, 3, length_delimited(digest.size) + length_delimited(delta.size), room);
  out.w.header(2, digest.size);
  PacketPaths::write_digest(state, out.w, digest);
  out.w.header(3, delta.size);
  PacketPaths::write_delta(state, out.w, delta);
  return out.done();
}

Bytes write_ack(std::string_view cluster_id, const ClusterState& state, const DeltaPlan& delta) {
  Out out(cluster_id, 4, length_delimited(delta.size), 0);
  out.w.header(3, delta.size);
  PacketPaths::write_delta(state, out.w, delta);
  return out.done();
}

}  // namespace aiocluster
