/* RTP clips from capture files; see pcap_src.h. */
#include "rtp/pcap_src.h"
#include "rtp/rtp_bytes.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtp/rtp_packet.h"

#define ETH_P_IPV4 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_VLAN 0x8100
#define ETH_P_QINQ 0x88A8
#define IPPROTO_UDP_ 17

/* IPv4 or IPv6 packet (by its version nibble) down to the UDP payload. */
static int ip_udp_payload(const uint8_t *p, size_t n, const uint8_t **payload, size_t *len, uint16_t *dport)
{
    if (n < 1)
        return -EBADMSG;
    const uint8_t *udp;
    size_t avail;
    if ((p[0] >> 4) == 4) {
        if (n < 20)
            return -EBADMSG;
        size_t ihl = (size_t)(p[0] & 0x0f) * 4;
        size_t total = rtp_get16(p + 2);
        if (ihl < 20 || total < ihl || total > n || p[9] != IPPROTO_UDP_)
            return -EBADMSG;
        if ((rtp_get16(p + 6) & 0x3fff) != 0) /* MF set or a fragment offset: not a whole datagram */
            return -EBADMSG;
        udp = p + ihl;
        avail = total - ihl;
    } else if ((p[0] >> 4) == 6) {
        if (n < 40)
            return -EBADMSG;
        size_t plen = rtp_get16(p + 4);
        if (40 + plen > n)
            return -EBADMSG;
        uint8_t next = p[6];
        size_t off = 40;
        /* hop-by-hop, routing and destination options headers: skip them */
        while (next == 0 || next == 43 || next == 60) {
            if (off + 8 > 40 + plen)
                return -EBADMSG;
            size_t hl = ((size_t)p[off + 1] + 1) * 8;
            next = p[off];
            if (off + hl > 40 + plen)
                return -EBADMSG;
            off += hl;
        }
        if (next != IPPROTO_UDP_)
            return -EBADMSG;
        udp = p + off;
        avail = 40 + plen - off;
    } else {
        return -EBADMSG;
    }
    if (avail < 8)
        return -EBADMSG;
    size_t ulen = rtp_get16(udp + 4);
    if (ulen < 8 || ulen > avail)
        return -EBADMSG;
    *payload = udp + 8;
    *len = ulen - 8;
    if (dport)
        *dport = rtp_get16(udp + 2);
    return 0;
}

int pcap_udp_payload(int dlt, const uint8_t *f, size_t n, const uint8_t **payload, size_t *len, uint16_t *dport)
{
    size_t off;
    uint16_t proto;
    switch (dlt) {
    case DLT_EN10MB:
        if (n < 14)
            return -EBADMSG;
        off = 14;
        proto = rtp_get16(f + 12);
        while (proto == ETH_P_VLAN || proto == ETH_P_QINQ) {
            if (n < off + 4)
                return -EBADMSG;
            proto = rtp_get16(f + off + 2);
            off += 4;
        }
        break;
    case DLT_LINUX_SLL:
        if (n < 16)
            return -EBADMSG;
        off = 16;
        proto = rtp_get16(f + 14);
        break;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
        if (n < 20)
            return -EBADMSG;
        off = 20;
        proto = rtp_get16(f);
        break;
#endif
    case DLT_NULL:
    case DLT_LOOP:
        if (n < 4)
            return -EBADMSG;
        return ip_udp_payload(f + 4, n - 4, payload, len, dport); /* AF_* value, byte order varies */
    case DLT_RAW:
#ifdef DLT_IPV4
    case DLT_IPV4:
    case DLT_IPV6:
#endif
        return ip_udp_payload(f, n, payload, len, dport);
    default:
        if (dlt == 12 || dlt == 14) /* DLT_RAW's other values on some systems */
            return ip_udp_payload(f, n, payload, len, dport);
        return -EPROTONOSUPPORT;
    }
    if (proto != ETH_P_IPV4 && proto != ETH_P_IPV6)
        return -EBADMSG;
    return ip_udp_payload(f + off, n - off, payload, len, dport);
}

void pcap_clip_free(struct pcap_clip *c)
{
    if (c == NULL)
        return;
    free(c->pkts);
    free(c->data);
    free(c);
}

static int clip_append(struct pcap_clip *c, size_t *cap_pkts, size_t *cap_data, const struct pcap_clip_pkt *pk,
                       const uint8_t *payload)
{
    if (c->count == *cap_pkts) {
        size_t n = *cap_pkts ? *cap_pkts * 2 : 256;
        struct pcap_clip_pkt *p = realloc(c->pkts, n * sizeof *p);
        if (p == NULL)
            return -ENOMEM;
        c->pkts = p;
        *cap_pkts = n;
    }
    if (c->data_len + pk->len > *cap_data) {
        size_t n = *cap_data ? *cap_data * 2 : 65536;
        while (n < c->data_len + pk->len)
            n *= 2;
        uint8_t *d = realloc(c->data, n);
        if (d == NULL)
            return -ENOMEM;
        c->data = d;
        *cap_data = n;
    }
    c->pkts[c->count] = *pk;
    c->pkts[c->count].off = (uint32_t)c->data_len;
    memcpy(c->data + c->data_len, payload, pk->len);
    c->data_len += pk->len;
    c->payload_bytes += pk->len;
    c->count++;
    return 0;
}

struct pcap_clip *pcap_clip_load(const char *path, char *err, size_t errlen)
{
    char perr[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_open_offline(path, perr);
    if (p == NULL) {
        snprintf(err, errlen, "cannot read capture %.200s: %s", path, perr);
        return NULL;
    }
    int dlt = pcap_datalink(p);
    struct pcap_clip *c = calloc(1, sizeof *c);
    if (c == NULL) {
        pcap_close(p);
        snprintf(err, errlen, "no memory for a capture");
        return NULL;
    }
    size_t cap_pkts = 0, cap_data = 0;
    int have_first = 0, r = 0;
    uint16_t first_port = 0;
    uint64_t first_us = 0;
    uint32_t first_ts = 0;
    struct pcap_pkthdr *ph;
    const u_char *frame;
    int rc;
    while ((rc = pcap_next_ex(p, &ph, &frame)) == 1) {
        const uint8_t *udp;
        size_t ulen;
        uint16_t dport;
        int d = pcap_udp_payload(dlt, frame, ph->caplen, &udp, &ulen, &dport);
        if (d == -EPROTONOSUPPORT) {
            snprintf(err, errlen, "capture %.200s: link type %d is not supported", path, dlt);
            r = -1;
            break;
        }
        struct rtp_header h;
        if (d < 0 || rtp_packet_parse(udp, ulen, &h) < 0 || h.payload_len > PCAP_CLIP_MAX_PAYLOAD)
            continue;
        uint64_t us = (uint64_t)ph->ts.tv_sec * 1000000u + (uint64_t)ph->ts.tv_usec;
        if (!have_first) {
            have_first = 1;
            first_port = dport;
            first_us = us;
            first_ts = h.timestamp;
            c->ssrc = h.ssrc;
        } else if (h.ssrc != c->ssrc || dport != first_port) {
            continue;
        }
        if (c->count >= PCAP_CLIP_MAX_PACKETS) {
            snprintf(err, errlen, "capture %.200s has more than %u RTP packets", path, PCAP_CLIP_MAX_PACKETS);
            r = -1;
            break;
        }
        struct pcap_clip_pkt pk = {
            .at_us = us >= first_us ? us - first_us : 0, /* a clock step back: no negative delay */
            .ts_delta = h.timestamp - first_ts,
            .payload_type = h.payload_type,
            .marker = h.marker,
            .len = (uint16_t)h.payload_len,
        };
        if (c->count > 0 && pk.at_us < c->pkts[c->count - 1].at_us)
            pk.at_us = c->pkts[c->count - 1].at_us; /* keep the schedule monotonic */
        if (clip_append(c, &cap_pkts, &cap_data, &pk, udp + h.payload_offset) < 0) {
            snprintf(err, errlen, "no memory for capture %.200s", path);
            r = -1;
            break;
        }
    }
    if (r == 0 && rc == -1) {
        snprintf(err, errlen, "capture %.200s: %s", path, pcap_geterr(p));
        r = -1;
    }
    pcap_close(p);
    if (r == 0 && c->count == 0) {
        snprintf(err, errlen, "capture %.200s holds no RTP over UDP", path);
        r = -1;
    }
    if (r < 0) {
        pcap_clip_free(c);
        return NULL;
    }
    /* a loop restarts one mean packet interval after the last packet */
    const struct pcap_clip_pkt *last = &c->pkts[c->count - 1];
    if (c->count > 1) {
        c->period_us = last->at_us + last->at_us / (c->count - 1);
        c->ts_period = last->ts_delta + last->ts_delta / (uint32_t)(c->count - 1);
    }
    if (c->period_us < 1000)
        c->period_us = 20000;
    if (c->ts_period == 0)
        c->ts_period = 160;
    return c;
}
