#include "keyring_file.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <new>
#include <optional>
#include <vector>

namespace aiocluster::agent {

namespace {

struct DecodeContextFree {
  void operator()(EVP_ENCODE_CTX* ctx) const { EVP_ENCODE_CTX_free(ctx); }
};

// The bytes `text` encodes in base64, through OpenSSL's decoder; nullopt
// when it is not base64.
std::optional<std::vector<unsigned char>> decode_base64(const std::string& text) {
  std::unique_ptr<EVP_ENCODE_CTX, DecodeContextFree> ctx(EVP_ENCODE_CTX_new());
  if (!ctx) throw std::bad_alloc();
  std::vector<unsigned char> out(text.size() / 4 * 3 + 3);
  EVP_DecodeInit(ctx.get());
  int written = 0;
  if (EVP_DecodeUpdate(ctx.get(), out.data(), &written,
                       reinterpret_cast<const unsigned char*>(text.data()),
                       static_cast<int>(text.size())) < 0) {
    return std::nullopt;
  }
  int tail = 0;
  if (EVP_DecodeFinal(ctx.get(), out.data() + written, &tail) != 1) return std::nullopt;
  out.resize(static_cast<std::size_t>(written + tail));
  return out;
}

std::string encode_base64(const unsigned char* bytes, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// The key a line holds. OpenSSL's decoder skips whitespace and stops at
// some characters; re-encoding and comparing accepts only the canonical
// form, so a typo is never read as a different key.
SealKey parse_key(const std::string& line, const std::string& where) {
  const auto bytes = decode_base64(line);
  if (!bytes || encode_base64(bytes->data(), bytes->size()) != line) {
    throw KeyringFileError(where + ": not base64");
  }
  if (bytes->size() != SealKey{}.size()) {
    throw KeyringFileError(where + ": " + std::to_string(bytes->size()) +
                           " bytes, a key is 32 (base64 of 32 random bytes)");
  }
  SealKey key;
  std::copy(bytes->begin(), bytes->end(), key.begin());
  return key;
}

std::string trimmed(const std::string& line) {
  const auto first = line.find_first_not_of(" \t\r");
  if (first == std::string::npos) return {};
  return line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
}

}  // namespace

Keyring read_keyring_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw KeyringFileError(path + ": cannot be read");
  std::vector<SealKey> keys;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string text = trimmed(line);
    if (text.empty() || text.front() == '#') continue;
    keys.push_back(parse_key(text, path + ":" + std::to_string(number)));
  }
  if (in.bad()) throw KeyringFileError(path + ": cannot be read");
  if (keys.empty()) throw KeyringFileError(path + ": no key (one base64 key per line)");
  return Keyring(std::move(keys));
}

std::string key_id_hex(const SealKey& key) {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", seal_key_id(key));
  return hex;
}

}  // namespace aiocluster::agent
