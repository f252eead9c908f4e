// The protocol's messages as plain C++ values (PROTOCOL.md sections 1 and 3).
// The codec turns them into the protobuf wire format and back; the rest of the
// core only ever sees these types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "aiocluster/types.h"

namespace aiocluster {

struct NodeDigest {
  NodeId node_id;
  std::uint64_t heartbeat = 0;
  std::uint64_t last_gc_version = 0;
  std::uint64_t max_version = 0;

  friend bool operator==(const NodeDigest&, const NodeDigest&) = default;
};

struct Digest {
  std::vector<NodeDigest> node_digests;

  friend bool operator==(const Digest&, const Digest&) = default;
};

struct KeyValueUpdate {
  std::string key;
  std::string value;
  std::uint64_t version = 0;
  KeyStatus status = KeyStatus::kSet;

  friend bool operator==(const KeyValueUpdate&, const KeyValueUpdate&) = default;
};

struct NodeDelta {
  NodeId node_id;
  std::uint64_t from_version_excluded = 0;
  std::uint64_t last_gc_version = 0;
  std::vector<KeyValueUpdate> key_values;
  // The version up to which the receiver is complete after applying this
  // delta. Peers that predate the field leave it out.
  std::optional<std::uint64_t> max_version;

  friend bool operator==(const NodeDelta&, const NodeDelta&) = default;
};

struct Delta {
  std::vector<NodeDelta> node_deltas;

  friend bool operator==(const Delta&, const Delta&) = default;
};

struct Syn {
  Digest digest;
  friend bool operator==(const Syn&, const Syn&) = default;
};

struct SynAck {
  Digest digest;
  Delta delta;
  friend bool operator==(const SynAck&, const SynAck&) = default;
};

struct Ack {
  Delta delta;
  friend bool operator==(const Ack&, const Ack&) = default;
};

struct BadCluster {
  friend bool operator==(const BadCluster&, const BadCluster&) = default;
};

using Message = std::variant<Syn, SynAck, Ack, BadCluster>;

struct Packet {
  std::string cluster_id;
  Message message;

  friend bool operator==(const Packet&, const Packet&) = default;
};

}  // namespace aiocluster
