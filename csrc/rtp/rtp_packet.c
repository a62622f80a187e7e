/* RTP fixed header parse and write; see rtp_packet.h. */
#include "rtp/rtp_packet.h"

#include <errno.h>

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(((unsigned)p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int rtp_packet_parse(const uint8_t *buf, size_t len, struct rtp_header *h)
{
    if (buf == NULL || len < RTP_HEADER_LEN)
        return -EBADMSG;
    if ((buf[0] >> 6) != RTP_VERSION)
        return -EBADMSG;
    h->padding = (buf[0] >> 5) & 1u;
    h->extension = (buf[0] >> 4) & 1u;
    h->csrc_count = buf[0] & 0x0Fu;
    h->marker = buf[1] >> 7;
    h->payload_type = buf[1] & 0x7Fu;
    if (h->payload_type >= 72 && h->payload_type <= 76)
        return -EBADMSG;
    h->seq = get16(buf + 2);
    h->timestamp = get32(buf + 4);
    h->ssrc = get32(buf + 8);

    size_t off = RTP_HEADER_LEN + 4u * h->csrc_count;
    if (off > len)
        return -EBADMSG;
    if (h->extension) {
        /* 16-bit profile field, 16-bit length in 32-bit words, then the words */
        if (len - off < 4)
            return -EBADMSG;
        size_t words = get16(buf + off + 2);
        off += 4;
        if (words * 4u > len - off)
            return -EBADMSG;
        off += words * 4u;
    }
    size_t end = len;
    if (h->padding) {
        /* the last octet counts the padding octets, itself included */
        size_t pad = buf[len - 1];
        if (pad == 0 || pad > len - off)
            return -EBADMSG;
        end = len - pad;
    }
    h->payload_offset = off;
    h->payload_len = end - off;
    return 0;
}

size_t rtp_packet_write_header(uint8_t *buf, size_t cap, int marker, uint8_t payload_type, uint16_t seq,
                               uint32_t timestamp, uint32_t ssrc)
{
    if (buf == NULL || cap < RTP_HEADER_LEN)
        return 0;
    buf[0] = (uint8_t)(RTP_VERSION << 6);
    buf[1] = (uint8_t)((marker ? 0x80u : 0u) | (payload_type & 0x7Fu));
    put16(buf + 2, seq);
    put32(buf + 4, timestamp);
    put32(buf + 8, ssrc);
    return RTP_HEADER_LEN;
}
