/* OpenSSL contexts for SIP over TLS (RFC 3261 26.3.1, RFC 5630 for sips:) and error reasons.
 * One context per listening TLS transport serves both roles: it accepts connections (with its
 * certificate) and opens them (verifying the server by default). */
#ifndef PYSIPTEST_NET_TLS_H
#define PYSIPTEST_NET_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct tls_opts {
    const char *cert_file;   /* PEM certificate chain we present (server; client certificate), or NULL */
    const char *key_file;    /* its private key (PEM); NULL = in cert_file */
    const char *ca_file;     /* PEM bundle of trusted CAs, or NULL */
    const char *ca_dir;      /* hashed directory of trusted CAs, or NULL; neither: the system's store */
    int verify;              /* 1: verify the peer's certificate (clients always, servers when they ask) */
    int require_client_cert; /* server: ask for a client certificate and fail the handshake without one */
};

/* A new context, or NULL with a reason naming OpenSSL's error in err. */
SSL_CTX *tls_ctx_new(const struct tls_opts *o, char *err, size_t errlen);

/* OpenSSL's reason for the last failure of ssl (the verification result when it failed, else the
 * error queue's first reason), into buf; the error queue is cleared. */
void tls_reason(SSL *ssl, char *buf, size_t len);

#endif
