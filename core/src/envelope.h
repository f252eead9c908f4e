// The sealed envelope of proto/README.md section 4: AES-256-GCM over a
// whole packet, with the cluster id as associated data (an internal header
// of the core). Pure functions: keys, nonces and clocks come from callers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "aiocluster/sealing.h"
#include "aiocluster/types.h"

struct evp_cipher_ctx_st;  // OpenSSL's EVP_CIPHER_CTX

namespace aiocluster::envelope {

// Byte 0: a protobuf tag byte of wire type 7, which does not exist, so no
// protobuf parser (ours, Python's) takes a sealed packet for a plaintext one.
inline constexpr std::uint8_t kMagic = 0xA7;
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 26;
inline constexpr std::size_t kTagSize = 16;
inline constexpr std::size_t kOverhead = kHeaderSize + kTagSize;

// The header, all of it authenticated. (sender, counter) is the GCM nonce.
struct Header {
  std::uint32_t key_id = 0;
  std::uint64_t sender = 0;
  std::uint32_t counter = 0;
  std::int64_t timestamp_ms = 0;  // the sender's wall clock, Unix epoch
};

// The first four bytes of SHA-256("aiocluster seal key id" || key): names a
// key without revealing it.
std::uint32_t key_id(const SealKey& key);

// True when the packet claims to be sealed (its first byte is kMagic).
inline bool looks_sealed(ByteView packet) { return !packet.empty() && packet[0] == kMagic; }

// The header of a sealed packet; nullopt when it is too short to hold one
// and a tag, or of another version.
std::optional<Header> read_header(ByteView packet);

// One key's AES-256-GCM contexts. The key schedule is computed once, when
// the key is installed: each packet then sets only its nonce.
class Cipher {
 public:
  explicit Cipher(const SealKey& key);
  Cipher(const Cipher& other);  // from the key again: contexts are not shared
  Cipher& operator=(const Cipher& other);
  Cipher(Cipher&&) noexcept = default;
  Cipher& operator=(Cipher&&) noexcept = default;
  ~Cipher() = default;

  Bytes seal(const Header& header, std::string_view cluster_id, ByteView plaintext);
  // The plaintext; nullopt when the tag does not verify (another key, another
  // cluster, a changed byte).
  std::optional<Bytes> open(ByteView packet, std::string_view cluster_id);

 private:
  struct ContextFree {
    void operator()(evp_cipher_ctx_st* ctx) const;
  };
  using Context = std::unique_ptr<evp_cipher_ctx_st, ContextFree>;

  SealKey key_;
  Context encrypt_;
  Context decrypt_;
};

// One packet under `key`, setting the key up for it (tests; nodes keep a
// Cipher per installed key).
Bytes seal(const SealKey& key, const Header& header, std::string_view cluster_id,
           ByteView plaintext);
std::optional<Bytes> open(const SealKey& key, ByteView packet, std::string_view cluster_id);

}  // namespace aiocluster::envelope
