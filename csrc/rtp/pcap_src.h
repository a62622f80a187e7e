/* RTP clips read from a capture file through libpcap's offline reader, for replay.
 *
 * pcap_clip_load reads every UDP datagram of a capture (Ethernet with VLAN tags,
 * Linux cooked v1/v2, raw IP, BSD loopback; IPv4 and IPv6), keeps those that
 * parse as RTP and belong to the first RTP source found (same SSRC, same UDP
 * destination port), and stores them with their capture time relative to the
 * first one.  The media thread then replays a clip with its own SSRC, sequence
 * numbers and timestamps (pcap_clip_* only hold the recorded values).
 * pcap_udp_payload is the pure link/IP/UDP decapsulation, tested on its own.
 */
#ifndef PYSIPTEST_RTP_PCAP_SRC_H
#define PYSIPTEST_RTP_PCAP_SRC_H

#include <stddef.h>
#include <stdint.h>

#define PCAP_CLIP_MAX_PACKETS 1000000u
#define PCAP_CLIP_MAX_PAYLOAD 1500u

struct pcap_clip_pkt {
    uint64_t at_us;      /* capture time minus the first packet's */
    uint32_t ts_delta;   /* RTP timestamp minus the first packet's (modulo 2^32) */
    uint8_t payload_type;
    uint8_t marker;
    uint16_t len;        /* payload bytes */
    uint32_t off;        /* payload offset in clip->data */
};

struct pcap_clip {
    struct pcap_clip_pkt *pkts;
    size_t count;
    uint8_t *data;         /* every payload, back to back */
    size_t data_len;
    uint64_t payload_bytes;
    uint64_t period_us;    /* when looping, the next round starts this long after the first packet */
    uint32_t ts_period;    /* ... and its timestamps this much later */
    uint32_t ssrc;         /* the recorded source */
};

/* Decapsulate one captured frame of link type dlt (a DLT_* value) down to its UDP payload.
 * Returns 0 with payload and len pointing into frame, or -EBADMSG (not UDP over IPv4/IPv6, a
 * fragment, or truncated), or -EPROTONOSUPPORT for a link type it does not know. */
int pcap_udp_payload(int dlt, const uint8_t *frame, size_t caplen, const uint8_t **payload, size_t *len,
                     uint16_t *dst_port);

/* Load the RTP clip of the capture at path.  Returns a clip the caller owns (pcap_clip_free),
 * or NULL with err filled: unreadable file, not a capture, unknown link type, no RTP. */
struct pcap_clip *pcap_clip_load(const char *path, char *err, size_t errlen);
void pcap_clip_free(struct pcap_clip *c);

#endif
