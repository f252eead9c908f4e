// A throwaway certificate authority for tests: it makes a CA and leaf
// certificates (EC P-256) with the OpenSSL API in a temporary directory, so
// no private key is ever checked in. Shared by every driver's tests and by
// the multi-process tests of the node agent.
#pragma once

#include <string>
#include <vector>

#include "harness.h"

namespace aiocluster::conformance {

class TestPki {
 public:
  TestPki();   // creates the directory and the CA
  ~TestPki();  // removes the directory
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  // A certificate for `dns_names` (subject alternative names; the first is
  // also the common name), plus IP 127.0.0.1 when `with_loopback_ip`,
  // signed by this CA. Usable as server and as client certificate.
  TlsFiles issue(const std::string& stem, const std::vector<std::string>& dns_names,
                 bool with_loopback_ip = true);
  // A certificate with exactly these names: the common name `common_name`
  // (none when empty) and these DNS and IP subject alternative names (no
  // extension when both are empty). Usable as server and client certificate.
  TlsFiles issue_exact(const std::string& stem, const std::string& common_name,
                       const std::vector<std::string>& dns_names,
                       const std::vector<std::string>& ips);
  const std::string& ca_file() const { return ca_file_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string ca_file_;
  void* ca_key_ = nullptr;   // EVP_PKEY*
  void* ca_cert_ = nullptr;  // X509*
};

}  // namespace aiocluster::conformance
