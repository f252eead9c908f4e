// How a driver (Asio, libevent) carries a Node's packets: transport, TLS
// files, timeouts and the caps that bound what peers can make it hold. Plain
// values with no event-loop types, shared by every driver and checked once
// when a Cluster is built.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "aiocluster/types.h"

namespace aiocluster::driver {

using namespace std::chrono_literals;

enum class Transport : std::uint8_t {
  kTcp,  // PROTOCOL.md section 2: length-prefixed, one connection per exchange (aiocluster)
  kUdp,  // one packet per datagram (chitchat style)
};

// TLS over TCP. Files are PEM.
//
// The names of a certificate are its DNS and IP subjectAltNames and its
// subject common name (CN), as Python aiocluster 1.1.0 reads them.
//  - As client, this node checks the server's certificate against
//    `server_hostname` when set, else the target node's tls_name, else the
//    host it dialled (OpenSSL's host and IP checks).
//  - As server with `mutual`, it accepts a Syn only when the client's
//    verified certificate names a node of the Syn's digest (its tls_name,
//    ASCII case-insensitive): the tls_name rule. A verified certificate that
//    names nothing cannot pass that rule and is refused
//    (Stats::dropped_tls_nameless) unless `allow_nameless_peers`.
struct TlsOptions {
  std::string cert_file;  // certificate chain this node presents
  std::string key_file;   // its private key
  std::string ca_file;    // CAs that sign the peers' certificates
  // Mutual TLS: servers require a client certificate signed by the CA and
  // apply the tls_name rule. Off: servers ask for no certificate.
  bool mutual = true;
  // The name every server must prove, instead of its tls_name or host: for
  // clusters whose nodes share one certificate name (Python aiocluster's
  // `tls_server_hostname`). Empty: none.
  std::string server_hostname;
  // Let in a Syn over a verified client certificate that carries no name
  // at all, as Python aiocluster 1.1.0 does. Off by default: with it, any
  // certificate the CA signed may speak for any node.
  bool allow_nameless_peers = false;
};

struct Options {
  Transport transport = Transport::kTcp;
  // Where to bind; default: the node's advertise address. Port 0 takes an
  // ephemeral port, which also becomes the advertise port when that is 0.
  std::optional<Address> listen;
  std::optional<TlsOptions> tls;  // TCP only

  // Each step of a TCP exchange must finish within its timeout or the
  // exchange is dropped: connecting (with the TLS handshake), receiving one
  // whole frame (a peer trickling bytes is cut off too), and writing one
  // whole frame (a peer that reads slowly is cut off).
  Duration connect_timeout = 3s;
  Duration read_timeout = 3s;
  Duration write_timeout = 3s;
  // Exchanges this node runs at once as initiator; a Syn beyond the cap is
  // dropped (the next round retries).
  std::size_t max_outgoing_exchanges = 64;
  // Accepted connections open at once. At the cap, a new connection
  // replaces one that has not yet sent a whole frame (the oldest of the host
  // with the most of them); when every open one has, the new one is closed
  // on accept.
  std::size_t max_inbound_connections = 256;
  // Of those, connections from one host that have not yet sent a whole
  // frame: beyond this, a new one from that host replaces its oldest, so a
  // flood from one host cannot crowd out the others.
  std::size_t max_waiting_per_host = 32;
  // UDP sends in flight (waiting for the socket to take them); more are
  // dropped.
  std::size_t max_pending_datagrams = 1024;
  // Frames above the node's max_payload_size (accepted up to
  // Config::max_inbound_payload_size, as Python aiocluster 1.1.0 sends
  // SynAcks that large) hold at most this many bytes at once across all
  // connections, reserved when a frame's length prefix arrives; a frame
  // beyond it closes its connection (DriverStats::large_frames_refused).
  // With the caps above, what frames in progress can hold is bounded by
  // (max_inbound_connections + max_outgoing_exchanges) x max_payload_size
  // + max_large_frame_bytes.
  std::size_t max_large_frame_bytes = 8 * 1024 * 1024;

  // Events waiting for the hooks; more are dropped and counted.
  std::size_t hook_queue_capacity = 10'000;
  // How long stop() keeps running queued hooks before dropping the rest.
  Duration hook_drain_timeout = 1s;

  // Seed of the node's random generator; default: std::random_device, fresh
  // for every process. The sender id of sealed packets (their nonces) comes
  // from it with the node's name and generation: with a keyring, never start
  // a process twice with the same seed and the same generation, or nonces
  // repeat under one key.
  std::optional<std::uint64_t> seed;
  // Debug lines about I/O failures (one line each, no newline); default: none.
  std::function<void(std::string_view)> log;

  // Why these options are unusable, naming the field; nullopt when fine.
  std::optional<std::string> validate() const;
};

}  // namespace aiocluster::driver
