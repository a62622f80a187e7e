/* Unit tests of csrc/rtp: G.711, generators, timer wheel, RTP header validation,
 * RFC 3550 sequence tracking and jitter, and a short loopback run of the media engine. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "rtp/gen.h"
#include "rtp/media.h"
#include "rtp/rtp_packet.h"
#include "rtp/rtp_stats.h"
#include "rtp/timerwheel.h"

/* ---- G.711 ---- */

static void test_g711_known_values(void)
{
    CHECK_EQ_INT(g711_ulaw_encode(0), 0xFF);
    CHECK_EQ_INT(g711_alaw_encode(0), 0xD5);
    CHECK_EQ_INT(g711_ulaw_encode(32767), 0x80);
    CHECK_EQ_INT(g711_ulaw_encode(-32768), 0x00);
    CHECK_EQ_INT(g711_alaw_encode(32767), 0xAA);
    CHECK_EQ_INT(g711_alaw_encode(-32768), 0x2A);
    CHECK_EQ_INT(g711_ulaw_decode(0xFF), 0);
    CHECK_EQ_INT(g711_ulaw_decode(0x80), 32124);
    CHECK_EQ_INT(g711_ulaw_decode(0x00), -32124);
    CHECK_EQ_INT(g711_alaw_decode(0xD5), 8);
    CHECK_EQ_INT(g711_alaw_decode(0x55), -8);
    CHECK_EQ_INT(g711_alaw_decode(0xAA), 32256);
    CHECK_EQ_INT(g711_alaw_decode(0x2A), -32256);
    /* segment boundaries on the 16-bit scale */
    CHECK_EQ_INT(g711_ulaw_encode(1000), 0xCE);
    CHECK_EQ_INT(g711_ulaw_decode(0xCE), 988);
    CHECK_EQ_INT(g711_alaw_encode(1000), 0xFA);
    CHECK_EQ_INT(g711_alaw_decode(0xFA), 1008);
}

static void test_g711_codes_round_trip(void)
{
    for (int c = 0; c < 256; c++) {
        if (c != 0x7F) /* mu-law has two zeros; encode(0) gives 0xFF */
            CHECK_EQ_INT(g711_ulaw_encode(g711_ulaw_decode((uint8_t)c)), c);
        CHECK_EQ_INT(g711_alaw_encode(g711_alaw_decode((uint8_t)c)), c);
    }
}

static void test_g711_linear_round_trip_is_monotonic_and_close(void)
{
    int prev_u = -40000, prev_a = -40000, bad_mono = 0, bad_err = 0;
    for (int x = -32768; x <= 32767; x++) {
        int u = g711_ulaw_decode(g711_ulaw_encode((int16_t)x));
        int a = g711_alaw_decode(g711_alaw_encode((int16_t)x));
        if (u < prev_u || a < prev_a)
            bad_mono++;
        prev_u = u;
        prev_a = a;
        int ax = abs(x);
        if (ax < 32000 && (abs(u - x) > ax / 16 + 16 || abs(a - x) > ax / 16 + 24))
            bad_err++;
    }
    CHECK_EQ_INT(bad_mono, 0);
    CHECK_EQ_INT(bad_err, 0);
}

/* ---- generators ---- */

static void test_gen_silence_is_encoded_zero(void)
{
    struct rtp_gen g;
    uint8_t buf[160];
    CHECK_EQ_INT(rtp_gen_init_silence(&g, 0), 0);
    rtp_gen_fill(&g, buf, sizeof buf);
    CHECK(buf[0] == 0xFF && buf[159] == 0xFF);
    CHECK_EQ_INT(rtp_gen_init_silence(&g, 8), 0);
    rtp_gen_fill(&g, buf, sizeof buf);
    CHECK(buf[0] == 0xD5 && buf[159] == 0xD5);
    CHECK_EQ_INT(rtp_gen_init_silence(&g, 18), -EINVAL);
}

static void test_gen_tone_level_frequency_and_phase(void)
{
    struct rtp_gen g1, g2;
    static uint8_t whole[8000], parts[8000];
    CHECK_EQ_INT(rtp_gen_init_tone(&g1, 8, 1000.0, -10.0), 0);
    CHECK_EQ_INT(rtp_gen_init_tone(&g2, 8, 1000.0, -10.0), 0);
    rtp_gen_fill(&g1, whole, sizeof whole);
    for (size_t off = 0; off < sizeof parts; off += 160)
        rtp_gen_fill(&g2, parts + off, 160);
    CHECK(memcmp(whole, parts, sizeof whole) == 0); /* the phase carries across packets */
    double sum = 0;
    int crossings = 0, prev = g711_alaw_decode(whole[0]);
    for (size_t i = 0; i < sizeof whole; i++) {
        int v = g711_alaw_decode(whole[i]);
        sum += (double)v * v;
        if ((prev < 0) != (v < 0))
            crossings++;
        prev = v;
    }
    double rms = sqrt(sum / (double)sizeof whole);
    double want = 32767.0 * pow(10.0, -10.0 / 20.0);
    CHECK(fabs(rms - want) < want * 0.03);
    CHECK(crossings >= 1996 && crossings <= 2002); /* 1000 Hz: two crossings a cycle */
    CHECK_EQ_INT(rtp_gen_init_tone(&g1, 0, 0.0, -10.0), -EINVAL);
    CHECK_EQ_INT(rtp_gen_init_tone(&g1, 0, 4000.0, -10.0), -EINVAL);
    CHECK_EQ_INT(rtp_gen_init_tone(&g1, 0, 440.0, 1.0), -EINVAL);
    CHECK_EQ_INT(rtp_gen_init_tone(&g1, 0, NAN, -10.0), -EINVAL);
}

/* ---- timer wheel ---- */

static struct twheel wheel; /* large: keep it off the stack */

static void test_twheel_pops_in_deadline_order(void)
{
    struct twheel_timer t[8];
    const uint64_t base = 5000;
    const uint64_t due[8] = {base + 30, base + 5, base + 30, base + 1, base + 700, base + 5, base + 0, base + 64};
    twheel_init(&wheel, base);
    for (int i = 0; i < 8; i++) {
        twheel_timer_init(&t[i], &t[i]);
        twheel_add(&wheel, &t[i], due[i]);
    }
    CHECK_EQ_INT(wheel.count, 8);
    const int order[8] = {6, 3, 1, 5, 0, 2, 7, 4}; /* equal deadlines in insertion order */
    int got = 0, early = 0;
    for (uint64_t now = base; now <= base + 1000 && got < 8; now++) {
        struct twheel_timer *x;
        while ((x = twheel_pop(&wheel, now)) != NULL) {
            if (x->expires > now)
                early++;
            CHECK(got < 8 && x == &t[order[got]]);
            CHECK(!twheel_armed(x));
            got++;
        }
    }
    CHECK_EQ_INT(got, 8);
    CHECK_EQ_INT(early, 0);
    CHECK_EQ_INT(wheel.count, 0);
    CHECK(twheel_next_due(&wheel) == TWHEEL_NEVER);
}

static void test_twheel_long_timeouts_wait_for_their_round(void)
{
    struct twheel_timer near, far, farther;
    twheel_init(&wheel, 0);
    twheel_timer_init(&near, NULL);
    twheel_timer_init(&far, NULL);
    twheel_timer_init(&farther, NULL);
    twheel_add(&wheel, &farther, 3 + 5 * TWHEEL_SLOTS); /* the same slot as `near`, five rounds on */
    twheel_add(&wheel, &far, 3 + TWHEEL_SLOTS);
    twheel_add(&wheel, &near, 3);
    CHECK(twheel_next_due(&wheel) == 3);
    CHECK(twheel_pop(&wheel, 2) == NULL);
    CHECK(twheel_pop(&wheel, 3) == &near);
    CHECK(twheel_pop(&wheel, 3) == NULL);
    /* nothing within a revolution: next_due says when to look again, no later than a round */
    CHECK(twheel_next_due(&wheel) <= 3 + TWHEEL_SLOTS);
    CHECK(twheel_pop(&wheel, 3 + TWHEEL_SLOTS - 1) == NULL);
    CHECK(twheel_next_due(&wheel) == 3 + TWHEEL_SLOTS);
    CHECK(twheel_pop(&wheel, 3 + TWHEEL_SLOTS) == &far);
    /* a big jump of the clock: the wheel skips ahead without walking every millisecond */
    CHECK(twheel_pop(&wheel, 2 + 5 * TWHEEL_SLOTS) == NULL);
    CHECK(twheel_pop(&wheel, 1000000) == &farther);
    CHECK(twheel_pop(&wheel, 1000000) == NULL);
    /* a one-hour timer */
    twheel_add(&wheel, &near, 1000000 + 3600000);
    CHECK(twheel_pop(&wheel, 1000000 + 3599999) == NULL);
    CHECK(twheel_pop(&wheel, 1000000 + 3600000) == &near);
}

static void test_twheel_remove_and_rearm(void)
{
    struct twheel_timer a, b;
    twheel_init(&wheel, 100);
    twheel_timer_init(&a, NULL);
    twheel_timer_init(&b, NULL);
    twheel_remove(&wheel, &a); /* not armed: harmless */
    twheel_add(&wheel, &a, 110);
    twheel_add(&wheel, &b, 120);
    twheel_remove(&wheel, &a);
    CHECK(!twheel_armed(&a));
    CHECK_EQ_INT(wheel.count, 1);
    CHECK(twheel_next_due(&wheel) == 120);
    twheel_add(&wheel, &b, 105); /* re-arming moves it */
    CHECK_EQ_INT(wheel.count, 1);
    CHECK(twheel_pop(&wheel, 104) == NULL);
    CHECK(twheel_pop(&wheel, 130) == &b);
    CHECK(twheel_pop(&wheel, 130) == NULL);
    /* a deadline in the past fires at the next pop; a timer added for `now` after a pop still fires */
    twheel_add(&wheel, &a, 50);
    CHECK(twheel_next_due(&wheel) == 130);
    CHECK(twheel_pop(&wheel, 130) == &a);
    twheel_add(&wheel, &a, 130);
    CHECK(twheel_pop(&wheel, 130) == &a);
    CHECK_EQ_INT(wheel.count, 0);
}

/* ---- RTP header ---- */

static void test_rtp_header_rejects_short_and_bad_packets(void)
{
    uint8_t p[64];
    struct rtp_header h;
    memset(p, 0, sizeof p);
    CHECK_EQ_INT(rtp_packet_write_header(p, sizeof p, 1, 8, 0x1234, 0xA0B0C0D0u, 0xDEE0EE8Fu), 12);
    CHECK_EQ_INT(rtp_packet_parse(p, 12, &h), 0);
    CHECK(h.marker == 1 && h.payload_type == 8 && h.seq == 0x1234 && h.timestamp == 0xA0B0C0D0u &&
          h.ssrc == 0xDEE0EE8Fu && h.payload_offset == 12 && h.payload_len == 0);
    CHECK_EQ_INT(rtp_packet_parse(p, 11, &h), -EBADMSG);
    CHECK_EQ_INT(rtp_packet_parse(p, 0, &h), -EBADMSG);
    CHECK_EQ_INT(rtp_packet_write_header(p, 11, 0, 0, 0, 0, 0), 0);

    p[0] = 0x40; /* version 1 */
    CHECK_EQ_INT(rtp_packet_parse(p, 40, &h), -EBADMSG);
    p[0] = 0x82; /* two CSRCs: 20 bytes of header */
    CHECK_EQ_INT(rtp_packet_parse(p, 19, &h), -EBADMSG);
    CHECK_EQ_INT(rtp_packet_parse(p, 20, &h), 0);
    CHECK(h.csrc_count == 2 && h.payload_offset == 20 && h.payload_len == 0);

    p[0] = 0x90; /* extension: 4-byte header + 2 words */
    p[12] = 0xBE, p[13] = 0xDE, p[14] = 0, p[15] = 2;
    CHECK_EQ_INT(rtp_packet_parse(p, 15, &h), -EBADMSG);
    CHECK_EQ_INT(rtp_packet_parse(p, 23, &h), -EBADMSG);
    CHECK_EQ_INT(rtp_packet_parse(p, 24, &h), 0);
    CHECK(h.payload_offset == 24 && h.payload_len == 0);
    p[15] = 0xFF; /* 255 words claimed */
    CHECK_EQ_INT(rtp_packet_parse(p, 64, &h), -EBADMSG);

    p[0] = 0xA0; /* padding */
    p[39] = 0;
    CHECK_EQ_INT(rtp_packet_parse(p, 40, &h), -EBADMSG); /* a zero count */
    p[39] = 29;
    CHECK_EQ_INT(rtp_packet_parse(p, 40, &h), -EBADMSG); /* more than follows the header */
    p[39] = 28;
    CHECK_EQ_INT(rtp_packet_parse(p, 40, &h), 0);
    CHECK(h.payload_offset == 12 && h.payload_len == 0);
    p[39] = 4;
    CHECK_EQ_INT(rtp_packet_parse(p, 40, &h), 0);
    CHECK(h.payload_len == 24);

    p[0] = 0xB1; /* one CSRC, extension of one word, padding of 3: everything at once */
    p[16] = 0x10, p[17] = 0x00, p[18] = 0, p[19] = 1;
    p[39] = 3;
    CHECK_EQ_INT(rtp_packet_parse(p, 40, &h), 0);
    CHECK(h.payload_offset == 24 && h.payload_len == 13);

    p[0] = 0x80;
    p[1] = 200; /* an RTCP sender report on the RTP port */
    CHECK_EQ_INT(rtp_packet_parse(p, 28, &h), -EBADMSG);
}

/* ---- sequence tracking (RFC 3550 A.1, A.3) ---- */

static void feed(struct rtp_seq *s, const uint16_t *seqs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rtp_seq_update(s, seqs[i]);
}

static void test_seq_counts_loss_duplicates_and_reordering(void)
{
    struct rtp_seq s;
    rtp_seq_init(&s);
    CHECK_EQ_INT(rtp_seq_expected(&s), 0);
    CHECK_EQ_INT(rtp_seq_lost(&s), 0);
    for (uint16_t i = 0; i < 100; i++)
        rtp_seq_update(&s, (uint16_t)(1000 + i));
    CHECK_EQ_INT(rtp_seq_expected(&s), 100);
    CHECK_EQ_INT(rtp_seq_lost(&s), 0);

    rtp_seq_init(&s);
    const uint16_t lossy[] = {10, 11, 14, 15, 18}; /* 12, 13, 16, 17 lost */
    feed(&s, lossy, 5);
    CHECK_EQ_INT(rtp_seq_expected(&s), 9);
    CHECK_EQ_INT(rtp_seq_lost(&s), 4);
    CHECK_EQ_INT(rtp_seq_update(&s, 13), RTP_SEQ_LATE); /* late arrival: no longer lost */
    CHECK_EQ_INT(rtp_seq_lost(&s), 3);
    CHECK_EQ_INT(rtp_seq_update(&s, 13), RTP_SEQ_DUPLICATE);
    CHECK_EQ_INT(rtp_seq_update(&s, 18), RTP_SEQ_DUPLICATE);
    CHECK_EQ_INT(rtp_seq_update(&s, 10), RTP_SEQ_DUPLICATE);
    CHECK_EQ_INT(rtp_seq_lost(&s), 3); /* duplicates do not hide losses */
    CHECK_EQ_INT(s.duplicates, 3);
    CHECK_EQ_INT(s.late, 1);

    rtp_seq_init(&s);
    const uint16_t reordered[] = {1, 2, 4, 3, 5, 7, 6, 8};
    feed(&s, reordered, 8);
    CHECK_EQ_INT(rtp_seq_lost(&s), 0);
    CHECK_EQ_INT(s.late, 2);
    CHECK_EQ_INT(s.duplicates, 0);

    /* a packet sent before the first one we saw widens the expected range */
    rtp_seq_init(&s);
    const uint16_t early_first[] = {50, 51, 49};
    feed(&s, early_first, 3);
    CHECK_EQ_INT(rtp_seq_expected(&s), 3);
    CHECK_EQ_INT(rtp_seq_lost(&s), 0);
}

static void test_seq_wraps_at_16_bits(void)
{
    struct rtp_seq s;
    rtp_seq_init(&s);
    for (uint32_t i = 0; i < 12; i++)
        rtp_seq_update(&s, (uint16_t)(65530u + i)); /* 65530 .. 65535, 0 .. 5 */
    CHECK_EQ_INT(rtp_seq_expected(&s), 12);
    CHECK_EQ_INT(rtp_seq_lost(&s), 0);
    CHECK_EQ_INT(s.ext_max - s.ext_base, 11);

    /* loss and reordering across the wrap */
    rtp_seq_init(&s);
    const uint16_t w[] = {65533, 65534, 0, 65535, 3, 4};
    feed(&s, w, 6);
    CHECK_EQ_INT(rtp_seq_expected(&s), 8);
    CHECK_EQ_INT(rtp_seq_lost(&s), 2); /* 1, 2 */
    CHECK_EQ_INT(s.late, 1);
    /* many cycles */
    rtp_seq_init(&s);
    for (uint32_t i = 0; i < 3 * 65536 + 7; i++) {
        if (i % 1000 != 999)
            rtp_seq_update(&s, (uint16_t)i);
    }
    CHECK_EQ_INT(rtp_seq_expected(&s), 3 * 65536 + 7);
    CHECK_EQ_INT(rtp_seq_lost(&s), (3 * 65536 + 7) / 1000);
}

static void test_seq_resyncs_after_a_confirmed_jump(void)
{
    struct rtp_seq s;
    rtp_seq_init(&s);
    const uint16_t before[] = {100, 101, 103}; /* one lost */
    feed(&s, before, 3);
    CHECK_EQ_INT(rtp_seq_update(&s, 30000), RTP_SEQ_JUMP);
    CHECK_EQ_INT(rtp_seq_lost(&s), 1);
    CHECK_EQ_INT(rtp_seq_update(&s, 30001), RTP_SEQ_RESYNC);
    CHECK_EQ_INT(rtp_seq_update(&s, 30002), RTP_SEQ_IN_ORDER);
    CHECK_EQ_INT(rtp_seq_update(&s, 30004), RTP_SEQ_IN_ORDER);
    CHECK_EQ_INT(rtp_seq_lost(&s), 2); /* the one before plus 30003 */
    /* a lone stray packet far away is not counted and changes nothing */
    CHECK_EQ_INT(rtp_seq_update(&s, 9), RTP_SEQ_JUMP);
    CHECK_EQ_INT(rtp_seq_update(&s, 30005), RTP_SEQ_IN_ORDER);
    CHECK_EQ_INT(rtp_seq_lost(&s), 2);
}

/* ---- jitter (RFC 3550 A.8) ---- */

static void test_jitter_is_zero_for_constant_transit(void)
{
    struct rtp_jitter j;
    rtp_jitter_init(&j);
    uint32_t ts = 0xFFFFFF00u; /* the timestamp wraps during the run */
    for (int i = 0; i < 100; i++) {
        rtp_jitter_update(&j, 123456.0 + 160.0 * i, ts);
        ts += 160;
    }
    CHECK(fabs(j.jitter) < 1e-9);
    struct rtp_jitter_q4 q;
    rtp_jitter_q4_init(&q);
    ts = 0xFFFFFF00u;
    for (uint32_t i = 0; i < 100; i++) {
        rtp_jitter_q4_update(&q, 4294967000u + 160u * i, ts); /* arrival wraps too */
        ts += 160;
    }
    CHECK_EQ_INT(q.jitter_q4, 0);
}

static void test_jitter_converges_for_alternating_transit(void)
{
    /* transit alternates +d, -d around a constant: |D| = 2d every packet, so J -> 2d */
    struct rtp_jitter j;
    rtp_jitter_init(&j);
    const double d = 40.0; /* 5 ms at 8000 Hz */
    for (int i = 0; i < 400; i++)
        rtp_jitter_update(&j, 1000.0 + 160.0 * i + (i % 2 ? d : -d), (uint32_t)(160 * i));
    CHECK(fabs(j.jitter - 2 * d) < 1e-6);
    /* after the second packet exactly |D|/16, as the formula says */
    rtp_jitter_init(&j);
    rtp_jitter_update(&j, 0.0, 0);
    rtp_jitter_update(&j, 160.0 + 32.0, 160);
    CHECK(fabs(j.jitter - 2.0) < 1e-12);
}

/* Per packet of g711a.pcap: arrival (capture time), RTP timestamp, and the A.8 values computed
 * independently (the float column matches tshark's figures). */
static FILE *open_corpus(const char *name)
{
    const char *dirs[] = {getenv("PYSIPTEST_CORPUS"), "../corpus/rtp", "../../tests/corpus/rtp",
                          "/work/shared/corpus/rtp"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (dirs[i] == NULL)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dirs[i], name);
        FILE *f = fopen(path, "r");
        if (f)
            return f;
    }
    return NULL;
}

static void test_jitter_matches_the_g711a_capture(void)
{
    FILE *f = open_corpus("g711a.jitter-rfc3550-a8.csv");
    if (f == NULL) {
        printf("SKIP test_jitter_matches_the_g711a_capture: corpus not found (set PYSIPTEST_CORPUS)\n");
        return;
    }
    char line[512];
    CHECK(fgets(line, sizeof line, f) != NULL); /* header */
    struct rtp_jitter j;
    struct rtp_jitter_q4 q;
    rtp_jitter_init(&j);
    rtp_jitter_q4_init(&q);
    long long sec0 = -1;
    int rows = 0, bad_float = 0, bad_int = 0;
    double max_ms = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned frame, seq;
        long long sec;
        char frac[16];
        unsigned long ts;
        double want_units, want_ms;
        unsigned long want_q4, want_rep;
        if (sscanf(line, "%u,%lld.%15[0-9],%u,%lu,%lf,%lf,%lu,%lu", &frame, &sec, frac, &seq, &ts, &want_units,
                   &want_ms, &want_q4, &want_rep) != 9) {
            CHECK(!"unparsable csv line");
            break;
        }
        /* nanoseconds from the (9-digit) fraction, exactly */
        long long ns = 0;
        size_t k = 0;
        for (; k < 9 && frac[k]; k++)
            ns = ns * 10 + (frac[k] - '0');
        for (; k < 9; k++)
            ns *= 10;
        if (sec0 < 0)
            sec0 = sec;
        double arrival = (double)(sec - sec0) * 8000.0 + (double)ns * 8e-6;
        rtp_jitter_update(&j, arrival, (uint32_t)ts);
        /* integer variant: arrival rounded to whole timestamp units (absolute time, modulo 2^32) */
        uint64_t units = (uint64_t)sec * 8000u + ((uint64_t)ns * 8u + 500000u) / 1000000u;
        rtp_jitter_q4_update(&q, (uint32_t)units, (uint32_t)ts);
        if (fabs(j.jitter - want_units) > 1e-3)
            bad_float++;
        if (q.jitter_q4 != want_q4 || (q.jitter_q4 >> 4) != want_rep)
            bad_int++;
        double ms = j.jitter / 8.0;
        if (ms > max_ms)
            max_ms = ms;
        rows++;
    }
    fclose(f);
    CHECK_EQ_INT(rows, 236);
    CHECK_EQ_INT(bad_float, 0);
    CHECK_EQ_INT(bad_int, 0);
    CHECK(fabs(j.jitter - 2.921319) < 1e-3);      /* reference.json final_jitter_ts_units_float */
    CHECK(fabs(max_ms - 0.828676) < 1e-4);        /* reference.json max_jitter_ms, tshark 0.829 */
    CHECK_EQ_INT(q.jitter_q4 >> 4, 2);            /* final_reported_int_ts_units */
}

/* ---- the engine, briefly, on loopback ---- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static void test_media_engine_exchanges_packets_on_loopback(void)
{
    char err[256] = "";
    struct media *m = media_new(err, sizeof err);
    CHECK(m != NULL);
    if (m == NULL)
        return;
    uint32_t a, b, e;
    uint16_t pa, pb, pe;
    CHECK_EQ_INT(media_stream_open(m, "127.0.0.1", 0, &a, &pa, err, sizeof err), 0);
    CHECK_EQ_INT(media_stream_open(m, "127.0.0.1", 0, &b, &pb, err, sizeof err), 0);
    CHECK_EQ_INT(media_stream_open(m, "127.0.0.1", 0, &e, &pe, err, sizeof err), 0);
    CHECK(pa % 2 == 0 && pb % 2 == 0 && pe % 2 == 0 && a != b);
    CHECK_EQ_INT(media_stream_count(m), 3);

    struct media_stream_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.remote_host, sizeof cfg.remote_host, "127.0.0.1");
    cfg.remote_port = pb;
    cfg.payload_type = 8;
    cfg.ptime_ms = 20;
    cfg.source = MEDIA_SRC_TONE;
    cfg.tone_hz = 440;
    cfg.tone_dbov = -10;
    CHECK_EQ_INT(media_stream_start(m, a, &cfg, err, sizeof err), 0);
    cfg.remote_port = pa;
    cfg.source = MEDIA_SRC_SILENCE;
    cfg.payload_type = 0;
    CHECK_EQ_INT(media_stream_start(m, b, &cfg, err, sizeof err), 0);
    cfg.remote_port = 0; /* echo to whoever sends */
    cfg.source = MEDIA_SRC_ECHO;
    CHECK_EQ_INT(media_stream_start(m, e, &cfg, err, sizeof err), 0);

    /* bad arguments */
    CHECK_EQ_INT(media_stream_start(m, 9999, &cfg, err, sizeof err), -ENOENT);
    cfg.source = MEDIA_SRC_SILENCE;
    CHECK_EQ_INT(media_stream_start(m, a, &cfg, err, sizeof err), -EINVAL); /* silence needs a port */
    cfg.remote_port = 4000;
    cfg.ptime_ms = 3;
    CHECK_EQ_INT(media_stream_start(m, a, &cfg, err, sizeof err), -EINVAL);
    cfg.ptime_ms = 20;
    cfg.payload_type = 18;
    CHECK_EQ_INT(media_stream_start(m, a, &cfg, err, sizeof err), -EINVAL);
    uint32_t x;
    uint16_t px;
    CHECK_EQ_INT(media_stream_open(m, "localhost", 0, &x, &px, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "numeric") != NULL);
    CHECK_EQ_INT(media_stream_open(m, "::1", 0, &x, &px, err, sizeof err) == 0 ? 0 : -1, 0);
    CHECK_EQ_INT(media_stream_close(m, x), 0);
    CHECK_EQ_INT(media_stream_close(m, x), -ENOENT);
    CHECK_EQ_INT(media_stream_stop(m, x), -ENOENT);
    struct media_stats st;
    CHECK_EQ_INT(media_stream_stats(m, x, &st), -ENOENT);

    /* a foreign sender to the echo stream: one packet of a silence stream c -> e */
    uint32_t c;
    uint16_t pc;
    CHECK_EQ_INT(media_stream_open(m, "127.0.0.1", 0, &c, &pc, err, sizeof err), 0);
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.remote_host, sizeof cfg.remote_host, "127.0.0.1");
    cfg.remote_port = pe;
    cfg.ptime_ms = 20;
    cfg.source = MEDIA_SRC_SILENCE;
    CHECK_EQ_INT(media_stream_start(m, c, &cfg, err, sizeof err), 0);

    sleep_ms(400);
    CHECK_EQ_INT(media_stream_stop(m, a), 0);
    CHECK_EQ_INT(media_stream_stop(m, b), 0);
    CHECK_EQ_INT(media_stream_stop(m, c), 0);
    sleep_ms(60);
    struct media_stats sa, sb, sc, se;
    CHECK_EQ_INT(media_stream_stats(m, a, &sa), 0);
    CHECK_EQ_INT(media_stream_stats(m, b, &sb), 0);
    CHECK_EQ_INT(media_stream_stats(m, c, &sc), 0);
    CHECK_EQ_INT(media_stream_stats(m, e, &se), 0);
    CHECK(sa.tx_packets >= 17 && sa.tx_packets <= 23);
    CHECK(sb.rx_packets == sa.tx_packets && sa.rx_packets == sb.tx_packets);
    CHECK(sb.rx_bytes == 160 * sb.rx_packets && sb.rx_payload_type == 8 && sa.rx_payload_type == 0);
    CHECK(sb.rx_lost == 0 && sb.rx_invalid == 0 && sb.rx_duplicates == 0 && sa.sending == 0);
    CHECK(sb.jitter_ms < 5.0);
    CHECK(se.rx_packets == sc.tx_packets && se.tx_packets == se.rx_packets && sc.rx_packets == se.tx_packets);
    CHECK(se.sending == 1);

    CHECK_EQ_INT(media_stream_close(m, a), 0);
    CHECK_EQ_INT(media_stream_count(m), 3);
    media_shutdown(m);
    media_shutdown(m);
    CHECK_EQ_INT(media_stream_stats(m, b, &sb), -ESHUTDOWN);
    CHECK_EQ_INT(media_stream_open(m, "127.0.0.1", 0, &x, &px, err, sizeof err), -ESHUTDOWN);
    CHECK_EQ_INT(media_stream_count(m), 0);
    media_free(m);
    media_free(NULL);
}

int main(void)
{
    RUN(test_g711_known_values);
    RUN(test_g711_codes_round_trip);
    RUN(test_g711_linear_round_trip_is_monotonic_and_close);
    RUN(test_gen_silence_is_encoded_zero);
    RUN(test_gen_tone_level_frequency_and_phase);
    RUN(test_twheel_pops_in_deadline_order);
    RUN(test_twheel_long_timeouts_wait_for_their_round);
    RUN(test_twheel_remove_and_rearm);
    RUN(test_rtp_header_rejects_short_and_bad_packets);
    RUN(test_seq_counts_loss_duplicates_and_reordering);
    RUN(test_seq_wraps_at_16_bits);
    RUN(test_seq_resyncs_after_a_confirmed_jump);
    RUN(test_jitter_is_zero_for_constant_transit);
    RUN(test_jitter_converges_for_alternating_transit);
    RUN(test_jitter_matches_the_g711a_capture);
    RUN(test_media_engine_exchanges_packets_on_loopback);
    return CHECK_SUMMARY();
}
