/* libsrtp2 sessions; see srtp_ctx.h. */
#include "rtp/srtp_ctx.h"

#include <errno.h>
#include <pthread.h>
#include <srtp2/srtp.h>
#include <stdio.h>
#include <string.h>

_Static_assert(SRTP_TRAILER_MAX >= SRTP_MAX_TRAILER_LEN + 4, "room for the SRTP/SRTCP trailer");

static pthread_once_t srtp_once = PTHREAD_ONCE_INIT;
static srtp_err_status_t srtp_init_status; /* written once, under srtp_once */

static void srtp_init_once(void)
{
    srtp_init_status = srtp_init();
}

size_t srtp_suite_key_len(enum srtp_suite s)
{
    switch (s) {
    case SRTP_SUITE_AES_CM_128_HMAC_SHA1_80:
    case SRTP_SUITE_AES_CM_128_HMAC_SHA1_32:
        return SRTP_AES_ICM_128_KEY_LEN_WSALT;
    case SRTP_SUITE_AEAD_AES_128_GCM:
        return SRTP_AES_GCM_128_KEY_LEN_WSALT;
    default:
        return 0;
    }
}

enum srtp_suite srtp_suite_by_name(const char *name)
{
    if (strcmp(name, "AES_CM_128_HMAC_SHA1_80") == 0)
        return SRTP_SUITE_AES_CM_128_HMAC_SHA1_80;
    if (strcmp(name, "AES_CM_128_HMAC_SHA1_32") == 0)
        return SRTP_SUITE_AES_CM_128_HMAC_SHA1_32;
    if (strcmp(name, "AEAD_AES_128_GCM") == 0)
        return SRTP_SUITE_AEAD_AES_128_GCM;
    return SRTP_SUITE_NONE;
}

static int make_session(srtp_t *out, enum srtp_suite s, const uint8_t *key, int inbound, char *err, size_t errlen)
{
    srtp_policy_t pol;
    memset(&pol, 0, sizeof pol);
    switch (s) {
    case SRTP_SUITE_AES_CM_128_HMAC_SHA1_80:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtcp);
        break;
    case SRTP_SUITE_AES_CM_128_HMAC_SHA1_32:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&pol.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtcp); /* SRTCP keeps the 80-bit tag (RFC 4568 6.2.1) */
        break;
    case SRTP_SUITE_AEAD_AES_128_GCM:
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol.rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol.rtcp);
        break;
    default:
        snprintf(err, errlen, "unknown SRTP suite");
        return -EINVAL;
    }
    uint8_t k[SRTP_KEY_MAX];
    memcpy(k, key, srtp_suite_key_len(s));
    pol.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
    pol.key = k;
    pol.window_size = 1024;
    pol.allow_repeat_tx = 1;
    srtp_err_status_t st = srtp_create(out, &pol);
    memset(k, 0, sizeof k);
    if (st != srtp_err_status_ok) {
        snprintf(err, errlen, "libsrtp srtp_create failed (status %d)", (int)st);
        return -EINVAL;
    }
    return 0;
}

int srtp_pair_init(struct srtp_pair *p, enum srtp_suite s, const uint8_t *tx_key, const uint8_t *rx_key, char *err,
                   size_t errlen)
{
    memset(p, 0, sizeof *p);
    pthread_once(&srtp_once, srtp_init_once);
    if (srtp_init_status != srtp_err_status_ok) {
        snprintf(err, errlen, "libsrtp srtp_init failed (status %d)", (int)srtp_init_status);
        return -EINVAL;
    }
    srtp_t tx = NULL, rx = NULL;
    if (make_session(&tx, s, tx_key, 0, err, errlen) < 0)
        return -EINVAL;
    if (make_session(&rx, s, rx_key, 1, err, errlen) < 0) {
        srtp_dealloc(tx);
        return -EINVAL;
    }
    p->tx = tx;
    p->rx = rx;
    return 0;
}

void srtp_pair_free(struct srtp_pair *p)
{
    if (p->tx)
        srtp_dealloc(p->tx);
    if (p->rx)
        srtp_dealloc(p->rx);
    p->tx = p->rx = NULL;
}

int srtp_pair_protect(struct srtp_pair *p, uint8_t *buf, size_t *len, int rtcp)
{
    int n = (int)*len;
    srtp_err_status_t st = rtcp ? srtp_protect_rtcp(p->tx, buf, &n) : srtp_protect(p->tx, buf, &n);
    if (st != srtp_err_status_ok)
        return -EIO;
    *len = (size_t)n;
    return 0;
}

int srtp_pair_unprotect(struct srtp_pair *p, uint8_t *buf, size_t *len, int rtcp)
{
    int n = (int)*len;
    srtp_err_status_t st = rtcp ? srtp_unprotect_rtcp(p->rx, buf, &n) : srtp_unprotect(p->rx, buf, &n);
    if (st == srtp_err_status_auth_fail)
        return -EACCES;
    if (st == srtp_err_status_replay_fail || st == srtp_err_status_replay_old)
        return -EALREADY;
    if (st != srtp_err_status_ok)
        return -EBADMSG;
    *len = (size_t)n;
    return 0;
}
