#include "envelope.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <memory>
#include <stdexcept>

namespace aiocluster::envelope {

namespace {

constexpr std::size_t kNonceSize = 12;

void put_be(std::uint8_t* out, std::uint64_t v, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; ++i)
    out[i] = static_cast<std::uint8_t>(v >> (8 * (bytes - 1 - i)));
}

std::uint64_t get_be(const std::uint8_t* in, std::size_t bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < bytes; ++i) v = v << 8 | in[i];
  return v;
}

// Offsets of the header fields (proto/README.md section 4.1).
constexpr std::size_t kKeyIdAt = 2;
constexpr std::size_t kSenderAt = 6;  // the nonce: sender then counter
constexpr std::size_t kTimestampAt = 18;

int as_int(std::size_t n) { return static_cast<int>(n); }

// The associated data: the header, then the cluster id.
bool add_associated_data(EVP_CIPHER_CTX* ctx, const std::uint8_t* header,
                         std::string_view cluster_id, bool encrypt) {
  int len = 0;
  auto update = encrypt ? EVP_EncryptUpdate : EVP_DecryptUpdate;
  return update(ctx, nullptr, &len, header, as_int(kHeaderSize)) == 1 &&
         update(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(cluster_id.data()),
                as_int(cluster_id.size())) == 1;
}

}  // namespace

std::uint32_t key_id(const SealKey& key) {
  static constexpr std::string_view kLabel = "aiocluster seal key id";
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), kLabel.data(), kLabel.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), key.data(), key.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest.data(), &size) != 1) {
    throw std::runtime_error("SHA-256 unavailable");
  }
  return static_cast<std::uint32_t>(get_be(digest.data(), 4));
}

std::optional<Header> read_header(ByteView packet) {
  if (packet.size() < kOverhead || packet[0] != kMagic || packet[1] != kVersion) {
    return std::nullopt;
  }
  const std::uint8_t* p = packet.data();
  return Header{static_cast<std::uint32_t>(get_be(p + kKeyIdAt, 4)), get_be(p + kSenderAt, 8),
                static_cast<std::uint32_t>(get_be(p + kSenderAt + 8, 4)),
                static_cast<std::int64_t>(get_be(p + kTimestampAt, 8))};
}

void Cipher::ContextFree::operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }

Cipher::Cipher(const SealKey& key)
    : key_(key), encrypt_(EVP_CIPHER_CTX_new()), decrypt_(EVP_CIPHER_CTX_new()) {
  if (!encrypt_ || !decrypt_ ||
      EVP_EncryptInit_ex(encrypt_.get(), EVP_aes_256_gcm(), nullptr, key_.data(), nullptr) != 1 ||
      EVP_DecryptInit_ex(decrypt_.get(), EVP_aes_256_gcm(), nullptr, key_.data(), nullptr) != 1) {
    throw std::runtime_error("AES-256-GCM unavailable");
  }
}

Cipher::Cipher(const Cipher& other) : Cipher(other.key_) {}

Cipher& Cipher::operator=(const Cipher& other) {
  if (this != &other) *this = Cipher(other.key_);
  return *this;
}

Bytes Cipher::seal(const Header& header, std::string_view cluster_id, ByteView plaintext) {
  Bytes out(kOverhead + plaintext.size());
  std::uint8_t* h = out.data();
  h[0] = kMagic;
  h[1] = kVersion;
  put_be(h + kKeyIdAt, header.key_id, 4);
  put_be(h + kSenderAt, header.sender, 8);
  put_be(h + kSenderAt + 8, header.counter, 4);
  put_be(h + kTimestampAt, static_cast<std::uint64_t>(header.timestamp_ms), 8);

  EVP_CIPHER_CTX* ctx = encrypt_.get();
  int len = 0;
  int tail = 0;
  // The key is set already: a new nonce starts a new message.
  if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, h + kSenderAt) != 1 ||
      !add_associated_data(ctx, h, cluster_id, true) ||
      EVP_EncryptUpdate(ctx, h + kHeaderSize, &len, plaintext.data(), as_int(plaintext.size())) !=
          1 ||
      EVP_EncryptFinal_ex(ctx, h + kHeaderSize + len, &tail) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, as_int(kTagSize),
                          h + kHeaderSize + plaintext.size()) != 1) {
    throw std::runtime_error("AES-256-GCM sealing failed");
  }
  return out;
}

std::optional<Bytes> Cipher::open(ByteView packet, std::string_view cluster_id) {
  if (!read_header(packet)) return std::nullopt;
  const std::size_t size = packet.size() - kOverhead;
  const std::uint8_t* h = packet.data();
  // GCM takes the expected tag through a non-const pointer.
  std::array<std::uint8_t, kTagSize> tag{};
  std::copy_n(h + kHeaderSize + size, kTagSize, tag.begin());
  Bytes plaintext(size);
  EVP_CIPHER_CTX* ctx = decrypt_.get();
  int len = 0;
  int tail = 0;
  static_assert(kNonceSize == 12);  // GCM's default IV length
  if (EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, h + kSenderAt) != 1 ||
      !add_associated_data(ctx, h, cluster_id, false) ||
      EVP_DecryptUpdate(ctx, plaintext.data(), &len, h + kHeaderSize, as_int(size)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, as_int(kTagSize), tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx, plaintext.data() + len, &tail) != 1) {
    return std::nullopt;
  }
  return plaintext;
}

Bytes seal(const SealKey& key, const Header& header, std::string_view cluster_id,
           ByteView plaintext) {
  return Cipher(key).seal(header, cluster_id, plaintext);
}

std::optional<Bytes> open(const SealKey& key, ByteView packet, std::string_view cluster_id) {
  return Cipher(key).open(packet, cluster_id);
}

}  // namespace aiocluster::envelope
