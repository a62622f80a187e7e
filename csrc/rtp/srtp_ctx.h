/* SRTP and SRTCP (RFC 3711, RFC 7714) through libsrtp2, keyed by SDES (RFC 4568).
 * One srtp_pair per stream: an outbound session with our key and an inbound one with the peer's. */
#ifndef PYSIPTEST_RTP_SRTP_CTX_H
#define PYSIPTEST_RTP_SRTP_CTX_H

#include <stddef.h>
#include <stdint.h>

enum srtp_suite {
    SRTP_SUITE_NONE = 0,
    SRTP_SUITE_AES_CM_128_HMAC_SHA1_80,
    SRTP_SUITE_AES_CM_128_HMAC_SHA1_32,
    SRTP_SUITE_AEAD_AES_128_GCM,
};

#define SRTP_KEY_MAX 46u    /* master key + salt, the largest suite's */
#define SRTP_TRAILER_MAX 160u /* room protect may write after the packet (libsrtp: SRTP_MAX_TRAILER_LEN, + the SRTCP index) */

/* Master key + salt length of a suite (30 for AES-CM, 28 for GCM), 0 for an unknown suite. */
size_t srtp_suite_key_len(enum srtp_suite s);
/* The suite named as in SDP (RFC 4568 / RFC 7714), SRTP_SUITE_NONE when unknown. */
enum srtp_suite srtp_suite_by_name(const char *name);

struct srtp_pair {
    void *tx, *rx; /* srtp_t */
};

/* Create both sessions.  Keys are borrowed (srtp_suite_key_len bytes each).  0, or -EINVAL with err. */
int srtp_pair_init(struct srtp_pair *p, enum srtp_suite s, const uint8_t *tx_key, const uint8_t *rx_key, char *err,
                   size_t errlen);
void srtp_pair_free(struct srtp_pair *p);

/* Protect in place: buf holds *len bytes and has room for SRTP_TRAILER_MAX more.  0 or -EIO. */
int srtp_pair_protect(struct srtp_pair *p, uint8_t *buf, size_t *len, int rtcp);
/* Unprotect in place.  0, -EACCES (authentication failed), -EALREADY (a replay), -EBADMSG (other). */
int srtp_pair_unprotect(struct srtp_pair *p, uint8_t *buf, size_t *len, int rtcp);

#endif
