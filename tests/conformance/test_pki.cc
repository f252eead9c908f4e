#include "test_pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace aiocluster::conformance {

namespace {

EVP_PKEY* new_key() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) throw std::runtime_error("EVP_EC_gen failed");
  return key;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) throw std::runtime_error("bad extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

X509* new_cert(EVP_PKEY* key, const std::string& common_name) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  unsigned char serial[8];
  RAND_bytes(serial, sizeof serial);
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 7 * 24 * 3600);
  X509_set_pubkey(cert, key);
  if (!common_name.empty()) {
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                               0);
  }
  return cert;
}

void write_pem(const std::string& path, EVP_PKEY* key, X509* cert) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  const bool ok = key != nullptr
                      ? PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1
                      : PEM_write_X509(f, cert) == 1;
  std::fclose(f);
  if (!ok) throw std::runtime_error("cannot write " + path);
}

}  // namespace

TestPki::TestPki() {
  std::string pattern = (std::filesystem::temp_directory_path() / "aiocluster-pki-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = pattern;
  EVP_PKEY* key = new_key();
  X509* cert = new_cert(key, "aiocluster test CA");
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(cert, cert, NID_subject_key_identifier, "hash");
  X509_sign(cert, key, EVP_sha256());
  ca_file_ = dir_ + "/ca.crt";
  write_pem(ca_file_, nullptr, cert);
  ca_key_ = key;
  ca_cert_ = cert;
}

TestPki::~TestPki() {
  EVP_PKEY_free(static_cast<EVP_PKEY*>(ca_key_));
  X509_free(static_cast<X509*>(ca_cert_));
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

TlsFiles TestPki::issue(const std::string& stem, const std::vector<std::string>& dns_names,
                        bool with_loopback_ip) {
  std::vector<std::string> ips;
  if (with_loopback_ip) ips.emplace_back("127.0.0.1");
  return issue_exact(stem, dns_names.empty() ? stem : dns_names.front(), dns_names, ips);
}

TlsFiles TestPki::issue_exact(const std::string& stem, const std::string& common_name,
                              const std::vector<std::string>& dns_names,
                              const std::vector<std::string>& ips) {
  auto* ca_cert = static_cast<X509*>(ca_cert_);
  EVP_PKEY* key = new_key();
  X509* cert = new_cert(key, common_name);
  X509_set_issuer_name(cert, X509_get_subject_name(ca_cert));
  std::string sans;
  for (const auto& name : dns_names) sans += (sans.empty() ? "DNS:" : ",DNS:") + name;
  for (const auto& ip : ips) sans += (sans.empty() ? "IP:" : ",IP:") + ip;
  add_ext(cert, ca_cert, NID_basic_constraints, "CA:FALSE");
  add_ext(cert, ca_cert, NID_key_usage, "critical,digitalSignature,keyAgreement");
  add_ext(cert, ca_cert, NID_ext_key_usage, "serverAuth,clientAuth");
  if (!sans.empty()) add_ext(cert, ca_cert, NID_subject_alt_name, sans);
  X509_sign(cert, static_cast<EVP_PKEY*>(ca_key_), EVP_sha256());
  TlsFiles files{dir_ + "/" + stem + ".crt", dir_ + "/" + stem + ".key", ca_file_};
  write_pem(files.cert, nullptr, cert);
  write_pem(files.key, key, nullptr);
  EVP_PKEY_free(key);
  X509_free(cert);
  return files;
}

}  // namespace aiocluster::conformance
