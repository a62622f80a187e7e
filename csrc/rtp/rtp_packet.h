/* RTP fixed header (RFC 3550 section 5.1): parse with every length checked, and write.
 * Sans-IO: byte buffers in, fields out. */
#ifndef PYSIPTEST_RTP_RTP_PACKET_H
#define PYSIPTEST_RTP_RTP_PACKET_H

#include <stddef.h>
#include <stdint.h>

#define RTP_HEADER_LEN 12u
#define RTP_VERSION 2u

struct rtp_header {
    uint8_t padding, extension, csrc_count, marker;
    uint8_t payload_type;
    uint16_t seq;
    uint32_t timestamp;
    uint32_t ssrc;
    size_t payload_offset; /* first payload byte, after CSRCs and the header extension */
    size_t payload_len;    /* payload bytes, padding excluded */
};

/* Parse and validate one RTP packet of len bytes (borrowed).  Returns 0 and fills h, or
 * -EBADMSG when the datagram is not RTP version 2: shorter than 12 bytes, a version other
 * than 2, CSRC list or header extension running past the end, a padding count of zero or
 * larger than what follows the header, or a payload type in 72..76 (RTCP SR/RR/SDES/BYE/APP
 * sharing the port, RFC 5761 section 4). */
int rtp_packet_parse(const uint8_t *buf, size_t len, struct rtp_header *h);

/* Write a 12-byte header (no CSRC, no extension, no padding) into buf of cap bytes.
 * Returns RTP_HEADER_LEN, or 0 when cap is too small. */
size_t rtp_packet_write_header(uint8_t *buf, size_t cap, int marker, uint8_t payload_type, uint16_t seq,
                               uint32_t timestamp, uint32_t ssrc);

#endif
