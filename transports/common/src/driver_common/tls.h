// TLS rules every driver applies, on raw OpenSSL objects so any driver can
// use them (Asio wraps the SSL_CTX, libevent hands the SSL to a
// bufferevent): contexts from PEM files, the name a server must prove, and
// the names a verified client certificate carries (for the core's tls_name
// rule, Inbound::peer_names).
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "aiocluster/common/options.h"

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

// Client side, before the handshake: the server's certificate must be valid
// for `name` (an IP address literal or a DNS name, checked as OpenSSL's
// X509_check_ip_asc / X509_check_host do), and a DNS name goes out as SNI.
// `name` is the target's tls_name, else the host dialled (Transmit::tls_name).
// False when OpenSSL refuses the name.
bool expect_server_name(SSL* ssl, const std::string& name);

// DNS and IP subject alternative names, and the common name when there is
// no DNS name (as OpenSSL's host check does).
std::vector<std::string> certificate_names(X509* cert);
// The names of the peer's certificate after a handshake (empty without one).
std::vector<std::string> peer_certificate_names(SSL* ssl);

}  // namespace aiocluster::driver::detail
