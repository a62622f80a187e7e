/* RTP fixed header parse and write; see rtp_packet.h. */
#include "rtp/rtp_packet.h"
#include "rtp/rtp_bytes.h"

#include <errno.h>

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
    h->seq = rtp_get16(buf + 2);
    h->timestamp = rtp_get32(buf + 4);
    h->ssrc = rtp_get32(buf + 8);

    size_t off = RTP_HEADER_LEN + 4u * h->csrc_count;
    if (off > len)
        return -EBADMSG;
    if (h->extension) {
        /* 16-bit profile field, 16-bit length in 32-bit words, then the words */
        if (len - off < 4)
            return -EBADMSG;
        size_t words = rtp_get16(buf + off + 2);
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
    rtp_put16(buf + 2, seq);
    rtp_put32(buf + 4, timestamp);
    rtp_put32(buf + 8, ssrc);
    return RTP_HEADER_LEN;
}
