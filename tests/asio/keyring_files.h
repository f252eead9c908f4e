// Keyring files for aiocluster-node's --keyring in multi-process tests: fresh
// random keys, written one base64 line each (OpenSSL's encoder), and the key
// ids the agent's report shows for them.
#pragma once

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "aiocluster/sealing.h"

namespace aiocluster::testing {

inline SealKey random_key() {
  SealKey key;
  REQUIRE(RAND_bytes(key.data(), static_cast<int>(key.size())) == 1);
  return key;
}

inline std::string base64(const unsigned char* bytes, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// Writes `keys` to `path`, the first the primary; returns `path`.
inline std::string write_keyring(const std::string& path, const std::vector<SealKey>& keys) {
  std::ofstream out(path, std::ios::trunc);
  for (const SealKey& key : keys) out << base64(key.data(), key.size()) << '\n';
  out.close();
  REQUIRE(out.good());
  return path;
}

// As the agent's report lists it ("sealing": {"keys": [...]}).
inline std::string key_id_hex(const SealKey& key) {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", seal_key_id(key));
  return hex;
}

}  // namespace aiocluster::testing
