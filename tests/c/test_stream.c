/* Stream connection state (csrc/net/stream.c): keep-alive ping/pong, framing across reads, the bounded
 * write queue and the idle deadline, with a fake clock. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "net/stream.h"

static const char MSG[] = "OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
                          "Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody";

static int next(struct stream *s, const char **m, size_t *n)
{
    struct sip_error err;
    memset(&err, 0, sizeof(err));
    return stream_rx_next(s, m, n, &err);
}

static void test_double_crlf_is_a_ping_and_a_lone_crlf_is_skipped(void)
{
    struct stream s;
    stream_init(&s, 0, 0, 0, 0);
    const char *m;
    size_t n;
    CHECK(stream_rx_append(&s, "\r\n\r\n", 4, 1) == 0);
    CHECK_EQ_INT(next(&s, &m, &n), STREAM_PING);
    CHECK_EQ_INT(next(&s, &m, &n), STREAM_NONE);
    /* a lone CRLF (pong) waits: it may be half a ping */
    CHECK(stream_rx_append(&s, "\r\n", 2, 2) == 0);
    CHECK_EQ_INT(next(&s, &m, &n), STREAM_NONE);
    /* then a message: the CRLF was a pong, skipped */
    CHECK(stream_rx_append(&s, MSG, sizeof(MSG) - 1, 3) == 0);
    CHECK_EQ_INT(next(&s, &m, &n), STREAM_MSG);
    CHECK_EQ_INT((int)n, (int)sizeof(MSG) - 1);
    CHECK(memcmp(m, MSG, n) == 0);
    CHECK_EQ_INT(next(&s, &m, &n), STREAM_NONE);
    stream_free(&s);
}

static void test_message_split_byte_by_byte_then_two_in_one_read(void)
{
    struct stream s;
    stream_init(&s, 0, 0, 0, 0);
    const char *m;
    size_t n;
    int got = 0;
    for (size_t i = 0; i < sizeof(MSG) - 1; i++) {
        CHECK(stream_rx_append(&s, MSG + i, 1, i) == 0);
        int r = next(&s, &m, &n);
        if (r == STREAM_MSG) {
            got++;
            CHECK(i == sizeof(MSG) - 2);
        } else {
            CHECK_EQ_INT(r, STREAM_NONE);
        }
    }
    CHECK_EQ_INT(got, 1);
    char two[2 * sizeof(MSG)];
    memcpy(two, MSG, sizeof(MSG) - 1);
    memcpy(two + sizeof(MSG) - 1, MSG, sizeof(MSG) - 1);
    CHECK(stream_rx_append(&s, two, 2 * (sizeof(MSG) - 1), 100) == 0);
    CHECK_EQ_INT(next(&s, &m, &n), STREAM_MSG);
    CHECK_EQ_INT(next(&s, &m, &n), STREAM_MSG);
    CHECK(memcmp(m, MSG, n) == 0);
    CHECK_EQ_INT(next(&s, &m, &n), STREAM_NONE);
    stream_free(&s);
}

static void test_unframeable_stream_is_an_error(void)
{
    struct stream s;
    stream_init(&s, 0, 0, 0, 0);
    const char *m;
    size_t n;
    static const char bad[] = "OPTIONS sip:b@x SIP/2.0\r\nCall-ID: c\r\n\r\n";
    CHECK(stream_rx_append(&s, bad, sizeof(bad) - 1, 0) == 0);
    CHECK_EQ_INT(next(&s, &m, &n), -EBADMSG);
    stream_free(&s);
    /* a peer that never ends its headers passes the bound */
    stream_init(&s, 1000, 0, 0, 0);
    char junk[4096];
    memset(junk, 'a', sizeof(junk));
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = stream_rx_append(&s, junk, sizeof(junk), 0);
    CHECK_EQ_INT(rc, -E2BIG);
    CHECK_EQ_INT(next(&s, &m, &n), -E2BIG);
    stream_free(&s);
}

static void test_write_queue_is_bounded_and_partial_writes_keep_order(void)
{
    struct stream s;
    stream_init(&s, 0, 10, 0, 0);
    CHECK(stream_tx_queue(&s, "abcdef", 6, 0) == 0);
    CHECK_EQ_INT(stream_tx_queue(&s, "ghijk", 5, 0), -ENOBUFS); /* 11 > 10: nothing queued */
    CHECK_EQ_INT((int)stream_tx_pending(&s), 6);
    size_t n;
    const char *p = stream_tx_peek(&s, &n);
    CHECK(n == 6 && memcmp(p, "abcdef", 6) == 0);
    stream_tx_consume(&s, 4, 1); /* the socket took 4 bytes */
    CHECK(stream_tx_queue(&s, "ghijk", 5, 1) == 0);
    p = stream_tx_peek(&s, &n);
    CHECK(n == 7 && memcmp(p, "efghijk", 7) == 0);
    stream_tx_consume(&s, 100, 2);
    CHECK(stream_tx_peek(&s, &n) == NULL && n == 0);
    stream_free(&s);
}

static void test_idle_deadline_follows_activity_and_pending_writes(void)
{
    struct stream s;
    stream_init(&s, 0, 0, 1000, 5000);
    CHECK(stream_idle_deadline(&s) == 6000);
    CHECK(!stream_is_idle(&s, 5999));
    CHECK(stream_is_idle(&s, 6000));
    CHECK(stream_rx_append(&s, "\r\n", 2, 5500) == 0); /* any received byte is activity */
    CHECK(stream_idle_deadline(&s) == 6500);
    CHECK(stream_tx_queue(&s, "x", 1, 5600) == 0);
    CHECK(!stream_is_idle(&s, 9000)); /* bytes still waiting to be written: not idle */
    stream_tx_consume(&s, 1, 9000);
    CHECK(!stream_is_idle(&s, 9999));
    CHECK(stream_is_idle(&s, 10000));
    stream_free(&s);
    stream_init(&s, 0, 0, 0, 0); /* idle close off */
    CHECK(stream_idle_deadline(&s) == UINT64_MAX && !stream_is_idle(&s, UINT64_MAX - 1));
    stream_free(&s);
}

int main(void)
{
    RUN(test_double_crlf_is_a_ping_and_a_lone_crlf_is_skipped);
    RUN(test_message_split_byte_by_byte_then_two_in_one_read);
    RUN(test_unframeable_stream_is_an_error);
    RUN(test_write_queue_is_bounded_and_partial_writes_keep_order);
    RUN(test_idle_deadline_follows_activity_and_pending_writes);
    return CHECK_SUMMARY();
}
