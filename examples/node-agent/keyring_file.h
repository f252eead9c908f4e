// The agent's --keyring file: one base64-encoded 32-byte AES-256 key per
// line, the first the primary (the one that seals). Blank lines and lines
// starting with '#' are skipped. Read at start and again on SIGHUP.
#pragma once

#include <stdexcept>
#include <string>

#include "aiocluster/sealing.h"

namespace aiocluster::agent {

// Why a keyring file is unusable: one line naming the file and the line.
struct KeyringFileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The keys of the file at `path`, its first key the primary. Throws
// KeyringFileError for a file that cannot be read, holds no key, or has a
// line that is not canonical base64 of exactly 32 bytes.
Keyring read_keyring_file(const std::string& path);

// A key's id (seal_key_id) as 8 hex digits: what the agent shows of a key.
std::string key_id_hex(const SealKey& key);

}  // namespace aiocluster::agent
