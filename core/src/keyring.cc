#include <algorithm>
#include <stdexcept>

#include "aiocluster/sealing.h"
#include "envelope.h"

namespace aiocluster {

std::uint32_t seal_key_id(const SealKey& key) { return envelope::key_id(key); }

Keyring::Keyring(std::vector<SealKey> keys) {
  for (const SealKey& key : keys) install(key);
}

bool Keyring::contains(const SealKey& key) const {
  return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
}

void Keyring::install(const SealKey& key) {
  if (!contains(key)) keys_.push_back(key);
}

void Keyring::make_primary(const SealKey& key) {
  install(key);
  const auto it = std::find(keys_.begin(), keys_.end(), key);
  std::rotate(keys_.begin(), it, it + 1);
}

bool Keyring::remove(const SealKey& key) {
  auto it = std::find(keys_.begin(), keys_.end(), key);
  if (it == keys_.end()) return false;
  if (it == keys_.begin()) {
    throw std::invalid_argument(
        "the primary key cannot be removed: make another key primary first");
  }
  keys_.erase(it);
  return true;
}

}  // namespace aiocluster
