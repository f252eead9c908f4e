// Value types shared by the whole library: time, bytes, addresses, node
// identities and versioned values (PROTOCOL.md section 4).
#pragma once

#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace aiocluster {

// The core never reads a clock: every call that depends on time takes an
// Instant from the caller. Drivers pass the steady clock; the simulator
// passes virtual time.
using Instant = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;

// Allocates like std::allocator but leaves elements built without a value
// uninitialised, so `Bytes(n)` and `resize(n)` do not zero memory an encoder
// overwrites at once (a zero-filled 65 KB packet cost as much as encoding it).
// Copies and constructions with a value behave as with std::allocator.
template <class T>
struct DefaultInitAllocator : std::allocator<T> {
  using std::allocator<T>::allocator;
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// Owned bytes: a packet, a frame, a value. `Bytes(n)` holds n bytes of
// unspecified value, to be written before they are read.
using Bytes = std::vector<std::uint8_t, DefaultInitAllocator<std::uint8_t>>;
using ByteView = std::span<const std::uint8_t>;

// A copy of `bytes` followed by `room` bytes of unspecified value, made with
// one memcpy. Copying a Bytes (or growing it past its capacity) goes byte by
// byte instead: with an allocator of its own, std::vector builds each
// element through construct() rather than moving the block at once.
inline Bytes copy_of(ByteView bytes, std::size_t room = 0) {
  Bytes out(bytes.size() + room);
  if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

// A gossip address: a host (name or numeric) and a port, as nodes advertise
// and seeds are given. Resolving names is the driver's job.
struct Address {
  std::string host;
  std::uint16_t port = 0;

  // "host:port", with IPv6 hosts in brackets.
  std::string to_string() const;
  // Parses "host:port" or "[v6]:port"; nullopt when malformed.
  static std::optional<Address> parse(std::string_view text);

  friend auto operator<=>(const Address&, const Address&) = default;
  friend bool operator==(const Address&, const Address&) = default;
};

// How a driver names a datagram peer to the core: bytes the core compares and
// never reads. A real driver uses the peer's numeric endpoint (family,
// address and port); the core matches a datagram reply to the Syn it answers
// by key, so a driver keys a peer the same way when it sends to it and when
// it receives from it.
class PeerKey {
 public:
  PeerKey() = default;
  explicit PeerKey(std::string bytes) : bytes_(std::move(bytes)) {}
  // The key of a peer known by one textual address (the simulator, tests).
  static PeerKey of(const Address& address) { return PeerKey(address.to_string()); }

  const std::string& bytes() const { return bytes_; }
  bool empty() const { return bytes_.empty(); }

  friend auto operator<=>(const PeerKey&, const PeerKey&) = default;
  friend bool operator==(const PeerKey&, const PeerKey&) = default;

 private:
  std::string bytes_;
};

// The identity of one incarnation of a node. Two ids name the same node only
// when all five fields are equal: a restart picks a new generation_id and is
// therefore a new node.
struct NodeId {
  std::string name;
  std::uint64_t generation_id = 0;
  Address gossip_advertise_addr;
  std::string tls_name;  // empty: none

  friend auto operator<=>(const NodeId&, const NodeId&) = default;
  friend bool operator==(const NodeId&, const NodeId&) = default;
};

enum class KeyStatus : std::uint8_t {
  kSet = 0,
  kDeleted = 1,
  kDeleteAfterTtl = 2,
};

// A value as it is replicated: the owner's version stamps every mutation.
struct VersionedValue {
  std::string value;
  std::uint64_t version = 0;
  KeyStatus status = KeyStatus::kSet;

  // DELETED keys are invisible; DELETE_AFTER_TTL keys stay readable until GC.
  bool visible() const { return status != KeyStatus::kDeleted; }
  bool is_tombstone() const { return status != KeyStatus::kSet; }

  friend bool operator==(const VersionedValue&, const VersionedValue&) = default;
};

}  // namespace aiocluster

template <>
struct std::hash<aiocluster::Address> {
  std::size_t operator()(const aiocluster::Address& a) const noexcept;
};

template <>
struct std::hash<aiocluster::NodeId> {
  std::size_t operator()(const aiocluster::NodeId& id) const noexcept;
};
