// TLS rules every driver applies, on raw OpenSSL objects so any driver can
// use them (Asio wraps the SSL_CTX, libevent hands the SSL to a
// bufferevent): contexts from PEM files, the name a server must prove, and
// the names a verified certificate carries (for the core's tls_name rule,
// Inbound::peer_names). The rules themselves are stated on TlsOptions.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aiocluster/common/options.h"
#include "aiocluster/node.h"

namespace aiocluster::driver::detail {

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// TLS 1.2 and later, this node's certificate and key, the peers' CA. A
// server asks for a client certificate (and fails without one) when
// `tls.mutual`; a client always verifies the server. Throw std::system_error
// naming the option and the file when one cannot be loaded.
SslCtxPtr make_server_context(const TlsOptions& tls);
SslCtxPtr make_client_context(const TlsOptions& tls);

// The name a server must prove: TlsOptions::server_hostname when set, else
// the target node's tls_name (Transmit::tls_name), else the host dialled.
std::string server_name_to_expect(const TlsOptions& tls, const Transmit& tx);

// Client side, before the handshake: the server's certificate must be valid
// for `name` (an IP address literal or a DNS name, checked as OpenSSL's
// X509_check_ip_asc / X509_check_host do), and a DNS name goes out as SNI.
// False when OpenSSL refuses the name.
bool expect_server_name(SSL* ssl, const std::string& name);

// The names a certificate carries: DNS and IP subject alternative names and
// the subject common name (as Python aiocluster 1.1.0 collects them).
std::vector<std::string> certificate_names(X509* cert);
// The names of the peer's certificate after a handshake (empty without one).
std::vector<std::string> peer_certificate_names(SSL* ssl);

// Server side, after the handshake: what the core's tls_name rule gets
// (Inbound::peer_names): nothing without mutual TLS, else the client
// certificate's names; a certificate naming nothing gives an empty list,
// which the core refuses, unless TlsOptions::allow_nameless_peers.
std::optional<std::vector<std::string>> names_for_tls_rule(SSL* ssl, const TlsOptions& tls);

}  // namespace aiocluster::driver::detail
