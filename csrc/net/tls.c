/* OpenSSL contexts and error reasons for the TLS transport. */
#include "net/tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static void queue_reason(char *buf, size_t len, const char *fallback)
{
    unsigned long code = ERR_get_error();
    if (code == 0) {
        snprintf(buf, len, "%s", fallback);
        return;
    }
    const char *r = ERR_reason_error_string(code);
    if (r)
        snprintf(buf, len, "%s", r);
    else
        ERR_error_string_n(code, buf, len);
    ERR_clear_error();
}

SSL_CTX *tls_ctx_new(const struct tls_opts *o, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    char why[128];
    if (ctx == NULL) {
        queue_reason(why, sizeof(why), "unknown error");
        snprintf(err, errlen, "cannot create a TLS context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (o->cert_file && o->cert_file[0]) {
        const char *key = o->key_file && o->key_file[0] ? o->key_file : o->cert_file;
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
            queue_reason(why, sizeof(why), "unreadable");
            snprintf(err, errlen, "certificate %.200s: %s", o->cert_file, why);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            queue_reason(why, sizeof(why), "unreadable");
            snprintf(err, errlen, "private key %.200s: %s", key, why);
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            queue_reason(why, sizeof(why), "does not match");
            snprintf(err, errlen, "private key %.200s does not match the certificate: %s", key, why);
            goto fail;
        }
    }
    const char *caf = o->ca_file && o->ca_file[0] ? o->ca_file : NULL;
    const char *cad = o->ca_dir && o->ca_dir[0] ? o->ca_dir : NULL;
    if (caf || cad) {
        if (SSL_CTX_load_verify_locations(ctx, caf, cad) != 1) {
            queue_reason(why, sizeof(why), "unreadable");
            snprintf(err, errlen, "CA %.200s: %s", caf ? caf : cad, why);
            goto fail;
        }
    } else if (o->verify) {
        (void)SSL_CTX_set_default_verify_paths(ctx);
    }
    /* the verify mode here is the server side's; client connections set SSL_VERIFY_PEER themselves */
    int mode = SSL_VERIFY_NONE;
    if (o->verify && o->require_client_cert)
        mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void tls_reason(SSL *ssl, char *buf, size_t len)
{
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    char q[128];
    queue_reason(q, sizeof(q), "connection closed during the handshake");
    if (vr != X509_V_OK)
        snprintf(buf, len, "%s (%s)", q, X509_verify_cert_error_string(vr));
    else
        snprintf(buf, len, "%s", q);
}
