/* Unit tests of the media engine's sans-IO pieces: capture decapsulation and clips, RFC 4733
 * telephone-events, Goertzel tone detection, seeded impairments, RTCP reports, and SRTP against
 * libsrtp's known-answer vector (corpus srtp/vectors.json). */
#include <errno.h>
#include <math.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "rtp/dtmf.h"
#include "rtp/gen.h"
#include "rtp/impair.h"
#include "rtp/pcap_src.h"
#include "rtp/rtcp.h"
#include "rtp/srtp_ctx.h"
#include "rtp/tone_detect.h"

#define CORPUS "/work/shared/corpus/rtp/"

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (h[0] && h[1] && n < cap) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

/* ---- capture ---- */

static void test_pcap_udp_payload_per_link_type(void)
{
    /* an IPv4/UDP datagram with 4 payload bytes, and the same in IPv6 */
    uint8_t ip4[] = {0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
                     0x13, 0x88, 0x07, 0xd6, 0, 12, 0, 0, 'a', 'b', 'c', 'd'};
    uint8_t ip6[40 + 12] = {0x60, 0, 0, 0, 0, 12, 17, 64};
    memcpy(ip6 + 40, ip4 + 20, 12);
    uint8_t frame[128];
    const uint8_t *p;
    size_t n;
    uint16_t port;
    /* Ethernet with a VLAN tag */
    memset(frame, 0, sizeof frame);
    frame[12] = 0x81, frame[13] = 0x00, frame[16] = 0x08, frame[17] = 0x00;
    memcpy(frame + 18, ip4, sizeof ip4);
    CHECK_EQ_INT(pcap_udp_payload(DLT_EN10MB, frame, 18 + sizeof ip4, &p, &n, &port), 0);
    CHECK(n == 4 && memcmp(p, "abcd", 4) == 0 && port == 2006);
    /* Linux cooked v1, IPv6 */
    memset(frame, 0, sizeof frame);
    frame[14] = 0x86, frame[15] = 0xdd;
    memcpy(frame + 16, ip6, sizeof ip6);
    CHECK_EQ_INT(pcap_udp_payload(DLT_LINUX_SLL, frame, 16 + sizeof ip6, &p, &n, &port), 0);
    CHECK(n == 4 && memcmp(p, "abcd", 4) == 0);
    /* raw IP */
    CHECK_EQ_INT(pcap_udp_payload(DLT_RAW, ip4, sizeof ip4, &p, &n, &port), 0);
    CHECK_EQ_INT(pcap_udp_payload(DLT_RAW, ip6, sizeof ip6, &p, &n, &port), 0);
    /* truncations, fragments, TCP, unknown link types */
    for (size_t cut = 0; cut < sizeof ip4; cut++)
        CHECK_EQ_INT(pcap_udp_payload(DLT_RAW, ip4, cut, &p, &n, &port), -EBADMSG);
    uint8_t frag[sizeof ip4];
    memcpy(frag, ip4, sizeof ip4);
    frag[6] = 0x20; /* more fragments */
    CHECK_EQ_INT(pcap_udp_payload(DLT_RAW, frag, sizeof frag, &p, &n, &port), -EBADMSG);
    frag[6] = 0x40, frag[9] = 6;
    CHECK_EQ_INT(pcap_udp_payload(DLT_RAW, frag, sizeof frag, &p, &n, &port), -EBADMSG);
    CHECK_EQ_INT(pcap_udp_payload(147, ip4, sizeof ip4, &p, &n, &port), -EPROTONOSUPPORT);
}

static void test_pcap_clip_of_g711a_matches_the_reference(void)
{
    char err[256] = "";
    struct pcap_clip *c = pcap_clip_load(CORPUS "g711a.pcap", err, sizeof err);
    CHECK(c != NULL);
    if (c == NULL) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_EQ_INT(c->count, 236);
    CHECK_EQ_INT(c->payload_bytes, 236 * 240);
    CHECK_EQ_INT(c->ssrc, 0xDEE0EE8Fu);
    CHECK_EQ_INT(c->pkts[0].payload_type, 8);
    CHECK_EQ_INT(c->pkts[0].marker, 1);
    CHECK_EQ_INT(c->pkts[1].marker, 0);
    CHECK_EQ_INT(c->pkts[235].ts_delta, 56640 - 240);
    CHECK(c->pkts[235].at_us >= 7049000 && c->pkts[235].at_us <= 7050000); /* duration 7.049628 s */
    CHECK_EQ_INT(c->ts_period, 56640 - 240 + 240);
    pcap_clip_free(c);
    CHECK(pcap_clip_load("/nonexistent.pcap", err, sizeof err) == NULL && strstr(err, "cannot read") != NULL);
}

/* ---- telephone-events ---- */

static void test_dtmf_send_sequence_and_detect(void)
{
    struct dtmf_tx t;
    CHECK_EQ_INT(dtmf_tx_begin(&t, 11, 10, 800, 1234), 0); /* '#', 100 ms */
    CHECK_EQ_INT(dtmf_tx_begin(&t, 11, 64, 800, 1234), -EINVAL);
    CHECK_EQ_INT(dtmf_tx_begin(&t, 11, 10, 800, 1234), 0);
    struct dtmf_rx rx;
    memset(&rx, 0, sizeof rx);
    uint8_t p[4];
    int marker, n = 0, ends = 0, markers = 0;
    while (dtmf_tx_next(&t, 160, p, &marker)) {
        n++;
        markers += marker;
        ends += (p[1] & 0x80) != 0;
        CHECK_EQ_INT(p[0], 11);
        CHECK_EQ_INT(p[1] & 0x3f, 10);
        int r = dtmf_rx_packet(&rx, p, 4, 1234, 0);
        CHECK_EQ_INT(r, n == 1 ? 1 : 0);
    }
    CHECK_EQ_INT(n, 5 + 2); /* 160,320,480,640,800(E) then the E packet twice more */
    CHECK_EQ_INT(ends, 3);
    CHECK_EQ_INT(markers, 1);
    CHECK_EQ_INT(rx.total, 1);
    CHECK(rx.ev[0].digit == '#' && rx.ev[0].ended && rx.ev[0].duration == 800 && rx.ev[0].volume == 10);
    /* a second event: a new timestamp */
    CHECK_EQ_INT(dtmf_rx_packet(&rx, (const uint8_t[]){1, 0x0a, 0, 160}, 4, 5000, 0), 1);
    CHECK_EQ_INT(dtmf_rx_packet(&rx, p, 3, 5000, 0), -EBADMSG);
    CHECK(rx.total == 2 && rx.ev[1].digit == '1' && !rx.ev[1].ended);
    CHECK(dtmf_event_code('*') == 10 && dtmf_event_code('D') == 15 && dtmf_event_code('x') == -1);
}

/* ---- tone detection ---- */

static void fill_ring(struct tone_ring *r, double hz, double dbov, int pt)
{
    struct rtp_gen g;
    if (hz > 0)
        rtp_gen_init_tone(&g, pt, hz, dbov);
    else
        rtp_gen_init_silence(&g, pt);
    uint8_t buf[160];
    for (int i = 0; i < 50; i++) {
        rtp_gen_fill(&g, buf, sizeof buf);
        tone_ring_push_g711(r, pt, buf, sizeof buf);
    }
}

static void test_goertzel_finds_the_tone_and_silence(void)
{
    static struct tone_ring r;
    memset(&r, 0, sizeof r);
    fill_ring(&r, 440, -10, RTP_PT_PCMU);
    struct tone_result t;
    CHECK_EQ_INT(tone_detect(&r, 440, 1600, &t), 0);
    CHECK(t.present && t.ratio > 0.97 && fabs(t.tone_dbov + 10) < 0.5 && fabs(t.level_dbov + 10) < 0.5);
    CHECK_EQ_INT(tone_detect(&r, 1000, 1600, &t), 0);
    CHECK(!t.present && t.ratio < 0.01 && !t.silent);
    CHECK_EQ_INT(tone_detect(&r, 480, 1600, &t), 0); /* a neighbour 40 Hz away over 200 ms */
    CHECK(!t.present);
    memset(&r, 0, sizeof r);
    fill_ring(&r, 2600, -30, RTP_PT_PCMA);
    CHECK_EQ_INT(tone_detect(&r, 2600, 800, &t), 0);
    CHECK(t.present && fabs(t.tone_dbov + 30) < 1.0);
    memset(&r, 0, sizeof r);
    fill_ring(&r, 0, 0, RTP_PT_PCMA);
    CHECK_EQ_INT(tone_detect(&r, 440, 1600, &t), 0);
    CHECK(t.silent && !t.present && t.level_dbov < -60);
    CHECK_EQ_INT(tone_detect(&r, 4000, 1600, &t), -EINVAL);
}

static void test_tone_ring_keeps_the_newest_bytes_and_restarts_on_a_new_law(void)
{
    static struct tone_ring r;
    memset(&r, 0, sizeof r);
    uint8_t buf[160];
    for (int i = 0; i < 60; i++) { /* 9600 samples through an 8192-sample ring: it wraps */
        memset(buf, i, sizeof buf);
        tone_ring_push_g711(&r, RTP_PT_PCMU, buf, sizeof buf);
    }
    CHECK(r.total == 9600 && r.payload_type == RTP_PT_PCMU);
    CHECK(r.code[(9600 - 1) % TONE_RING_SAMPLES] == 59 && r.code[(9600 - 160) % TONE_RING_SAMPLES] == 59);
    CHECK(r.code[(9600 - 161) % TONE_RING_SAMPLES] == 58 && r.code[(9600 - 8192) % TONE_RING_SAMPLES] == 8);
    tone_ring_push_g711(&r, 18, buf, sizeof buf); /* not G.711: ignored */
    CHECK(r.total == 9600);
    fill_ring(&r, 1000, -10, RTP_PT_PCMA); /* 8000 samples of A-law after mu-law: the mu-law is gone */
    CHECK(r.total == 9600 + 8000 && r.law_start == 9600 && r.payload_type == RTP_PT_PCMA);
    CHECK(tone_ring_oldest(&r) == 9600);
    int16_t pcm[4];
    tone_ring_decode(&r, 9600 + 8000 - 4, pcm, 4);
    CHECK(pcm[0] != 0 || pcm[1] != 0 || pcm[2] != 0 || pcm[3] != 0);
    struct tone_result t;
    CHECK_EQ_INT(tone_detect(&r, 1000, 8192, &t), 0);
    CHECK(t.samples == 8000 && t.present && fabs(t.tone_dbov + 10) < 0.5);
}

/* ---- impairments ---- */

static void test_impairments_follow_their_rates_and_repeat_with_the_seed(void)
{
    struct impair_cfg cfg = {.jitter = IMPAIR_JITTER_NORMAL, .jitter_ms = 10, .loss = 0.1, .duplicate = 0.05,
                             .reorder = 0.02, .seed = 42};
    CHECK_EQ_INT(impair_cfg_check(&cfg), 0);
    struct impair a, b;
    impair_init(&a, &cfg);
    impair_init(&b, &cfg);
    int lost = 0, dups = 0, reo = 0, same = 1;
    double sum = 0;
    uint32_t maxd = 0;
    for (int i = 0; i < 100000; i++) {
        struct impair_decision da, db;
        impair_decide(&a, 20000, &da);
        impair_decide(&b, 20000, &db);
        same &= memcmp(&da, &db, sizeof da) == 0;
        lost += da.drop;
        dups += da.copies == 2;
        reo += da.reordered;
        uint32_t d = da.delay_us - (da.reordered ? 21000u : 0u);
        sum += d;
        if (d > maxd)
            maxd = d;
    }
    CHECK(same);
    CHECK(abs(lost - 10000) < 400 && abs(dups - 5000) < 300 && abs(reo - 2000) < 200);
    CHECK(fabs(sum / 100000 - 5000) < 100 && maxd <= 10000); /* mean bound/2, never past the bound */
    cfg.loss = 1.5;
    CHECK_EQ_INT(impair_cfg_check(&cfg), -EINVAL);
    struct impair_cfg none = {0};
    CHECK(!impair_cfg_active(&none));
}

/* ---- RTCP ---- */

static void test_rtcp_sr_with_block_round_trips(void)
{
    uint8_t buf[RTCP_MAX_LEN];
    struct rtcp_sender_info si = {.ntp = 0x0102030405060708ull, .rtp_ts = 99, .packets = 7, .octets = 1120};
    struct rtcp_block rb = {.ssrc = 0xabcd, .fraction_lost = 64, .cum_lost = -3, .ext_max_seq = 70000,
                            .jitter = 12, .lsr = 0x11112222, .dlsr = 65536};
    size_t n = rtcp_write_report(buf, sizeof buf, 0x1234, &si, &rb, "pysiptest");
    CHECK(n > 0 && n % 4 == 0 && rtcp_is_rtcp(buf, n));
    struct rtcp_report rep;
    CHECK_EQ_INT(rtcp_parse(buf, n, 0xabcd, &rep), 0);
    CHECK(rep.is_sr && rep.sender_ssrc == 0x1234 && rep.si.packets == 7 && rep.si.octets == 1120);
    CHECK_EQ_INT(rep.sr_ntp_mid, 0x03040506u);
    CHECK(rep.have_block && rep.block.fraction_lost == 64 && rep.block.cum_lost == -3);
    CHECK(rep.block.ext_max_seq == 70000 && rep.block.jitter == 12 && rep.block.lsr == 0x11112222);
    CHECK_EQ_INT(rtcp_parse(buf, n, 0x9999, &rep), 0);
    CHECK(!rep.have_block);
    for (size_t cut = 1; cut < n; cut++) /* every truncation is refused or still consistent */
        if (rtcp_parse(buf, cut, 0xabcd, &rep) == 0)
            CHECK(cut % 4 == 0);
    n = rtcp_write_report(buf, sizeof buf, 0x1234, NULL, NULL, "x");
    CHECK_EQ_INT(rtcp_parse(buf, n, 0xabcd, &rep), 0);
    CHECK(!rep.is_sr && !rep.have_block);
    CHECK_EQ_INT(rtcp_write_report(buf, 20, 1, &si, &rb, "x"), 0);
}

/* ---- SRTP ---- */

static void test_srtp_matches_libsrtps_known_answer_and_detects_tampering(void)
{
    uint8_t key[30], pkt[64 + SRTP_TRAILER_MAX], want[64];
    unhex("E1F97A0D3E018BE0D64FA32C06DE41390EC675AD498AFEEBB6960B3AABE6", key, sizeof key);
    size_t n = unhex("800F1234DECAFBADCAFEBABEABABABABABABABABABABABABABABABAB", pkt, 64);
    size_t wn = unhex("800F1234DECAFBADCAFEBABE4E55DC4CE79978D88CA4D215949D2402B78D6ACC99EA179B8DBB", want, 64);
    char err[128];
    struct srtp_pair p;
    CHECK_EQ_INT(srtp_pair_init(&p, SRTP_SUITE_AES_CM_128_HMAC_SHA1_80, key, key, err, sizeof err), 0);
    CHECK_EQ_INT(srtp_pair_protect(&p, pkt, &n, 0), 0);
    CHECK(n == wn && memcmp(pkt, want, wn) == 0);
    uint8_t copy[sizeof pkt];
    memcpy(copy, pkt, n);
    size_t cn = n;
    CHECK_EQ_INT(srtp_pair_unprotect(&p, pkt, &n, 0), 0);
    CHECK_EQ_INT(n, 28);
    CHECK_EQ_INT(srtp_pair_unprotect(&p, copy, &cn, 0), -EALREADY); /* a replay */
    /* SRTCP */
    uint8_t rt[64 + SRTP_TRAILER_MAX], rwant[64];
    n = unhex("81C8000BCAFEBABEABABABABABABABABABABABABABABABAB", rt, 64);
    wn = unhex("81C8000BCAFEBABE7128035BE487B9BDBEF89041F977A5A880000001993E08CD54D6C1230798", rwant, 64);
    CHECK_EQ_INT(srtp_pair_protect(&p, rt, &n, 1), 0);
    CHECK(n == wn && memcmp(rt, rwant, wn) == 0);
    srtp_pair_free(&p);
    /* each suite round-trips; a flipped bit fails authentication */
    enum srtp_suite suites[] = {SRTP_SUITE_AES_CM_128_HMAC_SHA1_80, SRTP_SUITE_AES_CM_128_HMAC_SHA1_32,
                                SRTP_SUITE_AEAD_AES_128_GCM};
    size_t tags[] = {10, 4, 16};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(srtp_pair_init(&p, suites[i], key, key, err, sizeof err), 0);
        uint8_t b[12 + 160 + SRTP_TRAILER_MAX] = {0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9};
        size_t bn = 12 + 160;
        CHECK_EQ_INT(srtp_pair_protect(&p, b, &bn, 0), 0);
        CHECK_EQ_INT(bn, 12 + 160 + tags[i]);
        uint8_t bad[sizeof b];
        memcpy(bad, b, bn);
        bad[20] ^= 1;
        size_t badn = bn;
        CHECK_EQ_INT(srtp_pair_unprotect(&p, bad, &badn, 0), -EACCES);
        CHECK_EQ_INT(srtp_pair_unprotect(&p, b, &bn, 0), 0);
        CHECK_EQ_INT(bn, 172);
        srtp_pair_free(&p);
    }
    CHECK_EQ_INT(srtp_suite_by_name("AEAD_AES_128_GCM"), SRTP_SUITE_AEAD_AES_128_GCM);
    CHECK_EQ_INT(srtp_suite_key_len(SRTP_SUITE_AEAD_AES_128_GCM), 28);
}

int main(void)
{
    RUN(test_pcap_udp_payload_per_link_type);
    if (access(CORPUS "g711a.pcap", R_OK) == 0)
        RUN(test_pcap_clip_of_g711a_matches_the_reference);
    RUN(test_dtmf_send_sequence_and_detect);
    RUN(test_goertzel_finds_the_tone_and_silence);
    RUN(test_tone_ring_keeps_the_newest_bytes_and_restarts_on_a_new_law);
    RUN(test_impairments_follow_their_rates_and_repeat_with_the_seed);
    RUN(test_rtcp_sr_with_block_round_trips);
    RUN(test_srtp_matches_libsrtps_known_answer_and_detects_tampering);
    return CHECK_SUMMARY();
}
