/* RTCP sender and receiver reports (RFC 3550 section 6.4), sans-IO: build and read compound packets. */
#ifndef PYSIPTEST_RTP_RTCP_H
#define PYSIPTEST_RTP_RTCP_H

#include <stddef.h>
#include <stdint.h>

#define RTCP_PT_SR 200
#define RTCP_PT_RR 201
#define RTCP_PT_SDES 202
#define RTCP_MAX_LEN 256u /* what rtcp_write_report can produce, plus room */

/* One report block: what the reporter knows about the source `ssrc`. */
struct rtcp_block {
    uint32_t ssrc;
    uint8_t fraction_lost;  /* lost / expected since the last report, * 256 */
    int32_t cum_lost;       /* 24-bit signed on the wire */
    uint32_t ext_max_seq;
    uint32_t jitter;        /* timestamp units */
    uint32_t lsr;           /* middle 32 bits of the NTP time of the last SR from ssrc, 0 if none */
    uint32_t dlsr;          /* delay since that SR, 1/65536 s */
};

struct rtcp_sender_info {
    uint64_t ntp;           /* NTP timestamp, 32.32 */
    uint32_t rtp_ts, packets, octets;
};

/* Write a compound packet: SR (when si != NULL) or RR from ssrc with zero or one block, then an
 * SDES with the CNAME cname (at most 64 bytes are used).  Returns its length, 0 if cap is too small. */
size_t rtcp_write_report(uint8_t *buf, size_t cap, uint32_t ssrc, const struct rtcp_sender_info *si,
                         const struct rtcp_block *rb, const char *cname);

struct rtcp_report {
    uint32_t sender_ssrc;
    int is_sr;
    uint32_t sr_ntp_mid;        /* middle 32 bits of the SR's NTP time (the next LSR) */
    struct rtcp_sender_info si; /* when is_sr */
    int have_block;             /* a block about the ssrc asked for was found */
    struct rtcp_block block;
};

/* Read a compound packet; picks the report block about my_ssrc.  0 or -EBADMSG (bad version, a
 * length running past the end, no SR or RR first). */
int rtcp_parse(const uint8_t *buf, size_t len, uint32_t my_ssrc, struct rtcp_report *out);
/* 1 when a datagram is RTCP rather than RTP (RFC 5761 section 4: second byte 192..223). */
int rtcp_is_rtcp(const uint8_t *buf, size_t len);

#endif
