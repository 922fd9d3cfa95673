// Test support for TLS: certificates made at test time with OpenSSL 3's API
// (EC P-256 keys, SHA-256 signatures), as PEM strings. Made once per
// process, on first use (a few milliseconds).
//
//     const auto& c = taiga::test::certs();
//     auto server = taiga::net::tls_context::server(c.server.cert_pem, c.server.key_pem);
//     auto client = taiga::net::tls_context::client(c.ca.cert_pem);
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace taiga::test {

/// A certificate and its private key (PKCS#8, unencrypted), both PEM.
struct cert_and_key {
  std::string cert_pem;
  std::string key_pem;
};

struct test_cert_set {
  cert_and_key ca;           // "CN=taiga test CA", a CA (basicConstraints CA:TRUE)
  cert_and_key server;       // "CN=localhost" by the CA; SAN DNS:localhost, IP:127.0.0.1
  cert_and_key client;       // "CN=taiga test client" by the CA; clientAuth
  cert_and_key self_signed;  // "CN=localhost", SAN as server's, signed by itself
  cert_and_key expired;      // as server's, by the CA, valid from 2 days ago to 1 day ago
};

namespace detail_certs {

struct pkey_free {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct x509_free {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

inline void ok(int r, const char* what) {
  if (r <= 0) throw std::runtime_error(std::string("test_certs: ") + what);
}

inline pkey_ptr new_key() {
  pkey_ptr k(EVP_EC_gen("P-256"));
  if (!k) throw std::runtime_error("test_certs: EVP_EC_gen");
  return k;
}

inline void add_ext(X509* x, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!e) throw std::runtime_error(std::string("test_certs: extension ") + value);
  int r = X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
  ok(r, "X509_add_ext");
}

struct spec {
  const char* cn;
  const char* san = nullptr;  // "DNS:localhost,IP:127.0.0.1"
  bool ca = false;
  const char* eku = nullptr;  // "serverAuth"
  long not_before_s = -3600;  // from now
  long not_after_s = 30L * 24 * 3600;
};

/// A certificate for `key` by `issuer` (signed by issuer_key), or
/// self-signed when issuer is null.
inline x509_ptr make_cert(const spec& s, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  static long serial = 1;
  x509_ptr x(X509_new());
  if (!x) throw std::runtime_error("test_certs: X509_new");
  ok(X509_set_version(x.get(), X509_VERSION_3), "X509_set_version");
  ok(ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++), "serial");
  ok(X509_gmtime_adj(X509_getm_notBefore(x.get()), s.not_before_s) != nullptr, "notBefore");
  ok(X509_gmtime_adj(X509_getm_notAfter(x.get()), s.not_after_s) != nullptr, "notAfter");
  ok(X509_set_pubkey(x.get(), key), "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(x.get());
  ok(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                reinterpret_cast<const unsigned char*>("taiga tests"), -1, -1, 0),
     "O");
  ok(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                reinterpret_cast<const unsigned char*>(s.cn), -1, -1, 0),
     "CN");
  X509* signer = issuer ? issuer : x.get();
  ok(X509_set_issuer_name(x.get(), X509_get_subject_name(signer)), "issuer");
  add_ext(x.get(), signer, NID_basic_constraints, s.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(x.get(), signer, NID_key_usage,
          s.ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment");
  add_ext(x.get(), signer, NID_subject_key_identifier, "hash");
  if (issuer) add_ext(x.get(), signer, NID_authority_key_identifier, "keyid:always");
  if (s.san) add_ext(x.get(), signer, NID_subject_alt_name, s.san);
  if (s.eku) add_ext(x.get(), signer, NID_ext_key_usage, s.eku);
  ok(X509_sign(x.get(), issuer ? issuer_key : key, EVP_sha256()), "X509_sign");
  return x;
}

inline std::string pem_of(X509* x) {
  BIO* b = BIO_new(BIO_s_mem());
  ok(PEM_write_bio_X509(b, x), "PEM_write_bio_X509");
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string s(data, static_cast<std::size_t>(n));
  BIO_free(b);
  return s;
}

inline std::string pem_of(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  ok(PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr),
     "PEM_write_bio_PrivateKey");
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string s(data, static_cast<std::size_t>(n));
  BIO_free(b);
  return s;
}

inline test_cert_set make_all() {
  test_cert_set out;
  pkey_ptr ca_key = new_key();
  x509_ptr ca = make_cert({.cn = "taiga test CA", .ca = true, .not_after_s = 365L * 24 * 3600},
                          ca_key.get(), nullptr, nullptr);
  out.ca = {pem_of(ca.get()), pem_of(ca_key.get())};
  auto leaf = [&](const spec& s, bool self) {
    pkey_ptr k = new_key();
    x509_ptr x = self ? make_cert(s, k.get(), nullptr, nullptr)
                      : make_cert(s, k.get(), ca.get(), ca_key.get());
    return cert_and_key{pem_of(x.get()), pem_of(k.get())};
  };
  const char* san = "DNS:localhost,IP:127.0.0.1";
  out.server = leaf({.cn = "localhost", .san = san, .eku = "serverAuth"}, false);
  out.client = leaf({.cn = "taiga test client", .eku = "clientAuth"}, false);
  out.self_signed = leaf({.cn = "localhost", .san = san, .eku = "serverAuth"}, true);
  out.expired = leaf({.cn = "localhost",
                      .san = san,
                      .eku = "serverAuth",
                      .not_before_s = -2L * 24 * 3600,
                      .not_after_s = -24L * 3600},
                     false);
  return out;
}

}  // namespace detail_certs

/// The process's test certificates (made on the first call; thread-safe).
inline const test_cert_set& certs() {
  static const test_cert_set c = detail_certs::make_all();
  return c;
}

}  // namespace taiga::test
