/* RTCP SR/RR/SDES; see rtcp.h. */
#include "rtp/rtcp.h"
#include "rtp/rtp_bytes.h"

#include <errno.h>
#include <string.h>

size_t rtcp_write_report(uint8_t *buf, size_t cap, uint32_t ssrc, const struct rtcp_sender_info *si,
                         const struct rtcp_block *rb, const char *cname)
{
    size_t cn = cname ? strnlen(cname, 64) : 0;
    size_t rlen = 8 + (si ? 20 : 0) + (rb ? 24 : 0);
    size_t sdes = (8 + 2 + cn + 1 + 3) & ~(size_t)3; /* header, ssrc, item, at least one null, padded */
    if (cap < rlen + sdes)
        return 0;
    uint8_t *p = buf;
    p[0] = (uint8_t)(0x80 | (rb ? 1 : 0));
    p[1] = si ? RTCP_PT_SR : RTCP_PT_RR;
    rtp_put16(p + 2, (uint32_t)(rlen / 4 - 1));
    rtp_put32(p + 4, ssrc);
    size_t o = 8;
    if (si) {
        rtp_put32(p + o, (uint32_t)(si->ntp >> 32));
        rtp_put32(p + o + 4, (uint32_t)si->ntp);
        rtp_put32(p + o + 8, si->rtp_ts);
        rtp_put32(p + o + 12, si->packets);
        rtp_put32(p + o + 16, si->octets);
        o += 20;
    }
    if (rb) {
        rtp_put32(p + o, rb->ssrc);
        int32_t cl = rb->cum_lost;
        if (cl > 0x7fffff)
            cl = 0x7fffff;
        if (cl < -0x800000)
            cl = -0x800000;
        rtp_put32(p + o + 4, (uint32_t)rb->fraction_lost << 24 | ((uint32_t)cl & 0xffffff));
        rtp_put32(p + o + 8, rb->ext_max_seq);
        rtp_put32(p + o + 12, rb->jitter);
        rtp_put32(p + o + 16, rb->lsr);
        rtp_put32(p + o + 20, rb->dlsr);
        o += 24;
    }
    uint8_t *q = buf + o;
    memset(q, 0, sdes);
    q[0] = 0x81; /* one chunk */
    q[1] = RTCP_PT_SDES;
    rtp_put16(q + 2, (uint32_t)(sdes / 4 - 1));
    rtp_put32(q + 4, ssrc);
    q[8] = 1; /* CNAME */
    q[9] = (uint8_t)cn;
    if (cn)
        memcpy(q + 10, cname, cn);
    return o + sdes;
}

int rtcp_is_rtcp(const uint8_t *buf, size_t len)
{
    return len >= 8 && (buf[0] >> 6) == 2 && buf[1] >= 192 && buf[1] <= 223;
}

int rtcp_parse(const uint8_t *buf, size_t len, uint32_t my_ssrc, struct rtcp_report *out)
{
    memset(out, 0, sizeof *out);
    size_t o = 0;
    int first = 1;
    while (o < len) {
        if (len - o < 4)
            return -EBADMSG;
        const uint8_t *p = buf + o;
        size_t plen = ((size_t)(p[2] << 8 | p[3]) + 1) * 4;
        if ((p[0] >> 6) != 2 || plen > len - o)
            return -EBADMSG;
        unsigned count = p[0] & 0x1f;
        if (first && p[1] != RTCP_PT_SR && p[1] != RTCP_PT_RR)
            return -EBADMSG;
        if (p[1] == RTCP_PT_SR || p[1] == RTCP_PT_RR) {
            size_t hdr = 8 + (p[1] == RTCP_PT_SR ? 20 : 0);
            if (plen < hdr + (size_t)count * 24)
                return -EBADMSG;
            if (first) {
                out->sender_ssrc = rtp_get32(p + 4);
                if (p[1] == RTCP_PT_SR) {
                    out->is_sr = 1;
                    out->si.ntp = (uint64_t)rtp_get32(p + 8) << 32 | rtp_get32(p + 12);
                    out->sr_ntp_mid = (uint32_t)(out->si.ntp >> 16);
                    out->si.rtp_ts = rtp_get32(p + 16);
                    out->si.packets = rtp_get32(p + 20);
                    out->si.octets = rtp_get32(p + 24);
                }
            }
            for (unsigned i = 0; i < count; i++) {
                const uint8_t *b = p + hdr + (size_t)i * 24;
                if (rtp_get32(b) != my_ssrc || out->have_block)
                    continue;
                out->have_block = 1;
                out->block.ssrc = my_ssrc;
                out->block.fraction_lost = b[4];
                uint32_t cl = (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7];
                out->block.cum_lost = (cl & 0x800000) ? (int32_t)cl - 0x1000000 : (int32_t)cl;
                out->block.ext_max_seq = rtp_get32(b + 8);
                out->block.jitter = rtp_get32(b + 12);
                out->block.lsr = rtp_get32(b + 16);
                out->block.dlsr = rtp_get32(b + 20);
            }
        }
        first = 0;
        o += plen;
    }
    return first ? -EBADMSG : 0;
}
