// What a driver saw on its sockets, the same counters for every driver; the
// protocol's own counters are in Node::stats().
#pragma once

#include <cstdint>

namespace aiocluster::driver {

struct DriverStats {
  std::uint64_t exchanges_started = 0;    // Syns sent: TCP exchanges opened, or datagrams
  std::uint64_t exchanges_completed = 0;  // TCP exchanges we opened whose reply was accepted
  std::uint64_t exchanges_refused = 0;    // Syns dropped at a cap on outgoing work
  // Syns not sent (TCP) because our previous exchange with that peer was
  // still running; a later round retries.
  std::uint64_t exchanges_skipped_busy = 0;
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;  // closed on accept at max_inbound_connections
  // Closed to make room for a new one at max_inbound_connections: the
  // oldest of those that had not yet sent a whole frame.
  std::uint64_t connections_evicted = 0;
  std::uint64_t connect_failures = 0;  // name resolution or connect failed
  std::uint64_t tls_failures = 0;      // TLS refused: certificate or name, either side
  std::uint64_t timeouts = 0;          // a step outlived its timeout
  std::uint64_t framing_errors = 0;    // a length prefix of zero or above the inbound maximum
  // A frame above max_payload_size refused because Options::max_large_frame_bytes
  // were taken by other connections' frames: its connection is closed.
  std::uint64_t large_frames_refused = 0;
  std::uint64_t io_errors = 0;  // other read / write failures, early close
  std::uint64_t datagrams_in = 0;
  std::uint64_t datagrams_out = 0;
};

}  // namespace aiocluster::driver
