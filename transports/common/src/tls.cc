#include "driver_common/tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <system_error>

namespace aiocluster::driver::detail {

namespace {

std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

void require(bool ok, const std::string& what, const std::string& file) {
  if (!ok) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "tls." + what + " '" + file + "': " + openssl_error());
  }
}

SslCtxPtr make_context(const TlsOptions& tls, const SSL_METHOD* method) {
  SslCtxPtr ctx(SSL_CTX_new(method));
  if (!ctx) {
    throw std::system_error(std::make_error_code(std::errc::not_enough_memory), "SSL_CTX_new");
  }
  // TLS 1.2 and later only, as Python's ssl module does by default.
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  require(SSL_CTX_use_certificate_chain_file(ctx.get(), tls.cert_file.c_str()) == 1, "cert_file",
          tls.cert_file);
  require(SSL_CTX_use_PrivateKey_file(ctx.get(), tls.key_file.c_str(), SSL_FILETYPE_PEM) == 1 &&
              SSL_CTX_check_private_key(ctx.get()) == 1,
          "key_file", tls.key_file);
  require(SSL_CTX_load_verify_locations(ctx.get(), tls.ca_file.c_str(), nullptr) == 1, "ca_file",
          tls.ca_file);
  return ctx;
}

bool is_ip_literal(const std::string& host) {
  in6_addr buffer{};
  return inet_pton(AF_INET, host.c_str(), &buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &buffer) == 1;
}

std::string asn1_text(const ASN1_STRING* s) {
  return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
          static_cast<std::size_t>(ASN1_STRING_length(s))};
}

}  // namespace

SslCtxPtr make_server_context(const TlsOptions& tls) {
  SslCtxPtr ctx = make_context(tls, TLS_server_method());
  SSL_CTX_set_verify(
      ctx.get(), tls.mutual ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE,
      nullptr);
  return ctx;
}

SslCtxPtr make_client_context(const TlsOptions& tls) {
  SslCtxPtr ctx = make_context(tls, TLS_client_method());
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

std::string server_name_to_expect(const TlsOptions& tls, const Transmit& tx) {
  if (!tls.server_hostname.empty()) return tls.server_hostname;
  return tx.tls_name.empty() ? tx.to.host : tx.tls_name;
}

bool expect_server_name(SSL* ssl, const std::string& name) {
  SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (is_ip_literal(name)) return X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1;
  X509_VERIFY_PARAM_set_hostflags(param, 0);
  return X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size()) == 1 &&
         SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
}

std::vector<std::string> certificate_names(X509* cert) {
  std::vector<std::string> names;
  if (cert == nullptr) return names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type == GEN_DNS) {
        names.push_back(asn1_text(gn->d.dNSName));
      } else if (gn->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* s = gn->d.iPAddress;
        const int length = ASN1_STRING_length(s);
        char text[INET6_ADDRSTRLEN] = {};
        if ((length == 4 &&
             inet_ntop(AF_INET, ASN1_STRING_get0_data(s), text, sizeof text) != nullptr) ||
            (length == 16 &&
             inet_ntop(AF_INET6, ASN1_STRING_get0_data(s), text, sizeof text) != nullptr)) {
          names.emplace_back(text);
        }
      }
    }
    GENERAL_NAMES_free(sans);
  }
  // The common name counts whether or not there are subjectAltNames.
  X509_NAME* subject = X509_get_subject_name(cert);
  for (int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); index >= 0;
       index = X509_NAME_get_index_by_NID(subject, NID_commonName, index)) {
    names.push_back(asn1_text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index))));
  }
  return names;
}

std::vector<std::string> peer_certificate_names(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  std::vector<std::string> names = certificate_names(cert);
  X509_free(cert);
  return names;
}

std::optional<std::vector<std::string>> names_for_tls_rule(SSL* ssl, const TlsOptions& tls) {
  if (!tls.mutual) return std::nullopt;
  std::vector<std::string> names = peer_certificate_names(ssl);
  if (names.empty() && tls.allow_nameless_peers) return std::nullopt;
  return names;
}

}  // namespace aiocluster::driver::detail
