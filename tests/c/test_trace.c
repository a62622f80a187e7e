/* The engine's message trace (engine_trace.c): off by default, a bounded ring when on, one summary per message
 * sent or received (start line, Call-ID in long or compact form, CSeq), odd input bounded; no leaks (SAN=1). */
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/engine.h"

static const char REQ_FMT[] = "OPTIONS sip:b@127.0.0.1 SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK%d\r\n"
                              "i: call-%d\r\n"
                              "CSeq:   %d OPTIONS\r\n"
                              "Content-Length: 0\r\n\r\n";

static void test_trace_ring(void)
{
    char err[256] = "";
    struct engine *e = engine_new(NULL, err, sizeof(err));
    CHECK(e != NULL);
    if (e == NULL)
        return;
    uint32_t ta, tb;
    uint16_t pa, pb;
    CHECK_EQ_INT(engine_listen_udp(e, "127.0.0.1", 0, &ta, &pa, err, sizeof(err)), 0);
    CHECK_EQ_INT(engine_listen_udp(e, "127.0.0.1", 0, &tb, &pb, err, sizeof(err)), 0);
    /* a plain socket that takes what we send and never answers (a closed port would bring ICMP errors) */
    int sink = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof(sa);
    CHECK(sink >= 0 && bind(sink, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
          getsockname(sink, (struct sockaddr *)&sa, &salen) == 0);
    uint16_t ps = ntohs(sa.sin_port);
    struct engine_trace_entry *v = NULL;
    size_t n = 99;
    /* off: nothing kept */
    CHECK_EQ_INT(engine_trace_snapshot(e, 0, &v, &n), -ENOENT);
    CHECK(v == NULL && n == 0);
    CHECK_EQ_INT(engine_trace_enable(e, 65537), -EINVAL);
    CHECK_EQ_INT(engine_trace_enable(e, 3), 0);

    /* a keep-alive is not a message */
    CHECK_EQ_INT(engine_send_raw(e, ta, "127.0.0.1", ps, "\r\n\r\n", 4, err, sizeof(err)), 0);
    CHECK_EQ_INT(engine_trace_snapshot(e, 0, &v, &n), 0);
    CHECK_EQ_INT(n, 0);
    free(v);

    char buf[512];
    for (int i = 1; i <= 4; i++) {
        int len = snprintf(buf, sizeof(buf), REQ_FMT, i, i, i);
        CHECK_EQ_INT(engine_send_raw(e, ta, "127.0.0.1", ps, buf, (size_t)len, err, sizeof(err)), 0);
    }
    CHECK_EQ_INT(engine_trace_snapshot(e, 0, &v, &n), 0);
    CHECK_EQ_INT(n, 3); /* the ring keeps the newest 3, oldest first */
    if (n == 3) {
        CHECK(strcmp(v[0].call_id, "call-2") == 0 && strcmp(v[2].call_id, "call-4") == 0);
        CHECK(strcmp(v[2].cseq, "4 OPTIONS") == 0);
        CHECK(strcmp(v[2].first_line, "OPTIONS sip:b@127.0.0.1 SIP/2.0") == 0);
        CHECK(v[0].seq < v[1].seq && v[1].seq < v[2].seq);
        CHECK(v[2].outgoing == 1 && v[2].transport_id == ta && v[2].peer_port == ps);
        CHECK(strcmp(v[2].peer_host, "127.0.0.1") == 0);
    }
    free(v);

    /* a long start line with control bytes, bare LF line ends, no headers: bounded and printable */
    char odd[300];
    memset(odd, 'x', sizeof(odd));
    memcpy(odd, "BOGUS \x01\x7f", 8);
    odd[sizeof(odd) - 1] = '\n';
    CHECK_EQ_INT(engine_send_raw(e, ta, "127.0.0.1", ps, odd, sizeof(odd), err, sizeof(err)), 0);
    CHECK_EQ_INT(engine_trace_snapshot(e, ta, &v, &n), 0);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK_EQ_INT(strlen(v[2].first_line), sizeof(v[2].first_line) - 1);
        CHECK(memcmp(v[2].first_line, "BOGUS ??xx", 10) == 0);
        CHECK(v[2].call_id[0] == '\0' && v[2].cseq[0] == '\0' && v[2].len == sizeof(odd));
    }
    free(v);

    /* received: a to b; b's entry says where it came from */
    int len = snprintf(buf, sizeof(buf), REQ_FMT, 7, 7, 7);
    CHECK_EQ_INT(engine_send_raw(e, ta, "127.0.0.1", pb, buf, (size_t)len, err, sizeof(err)), 0);
    n = 0;
    for (int i = 0; i < 200 && n == 0; i++) {
        CHECK_EQ_INT(engine_trace_snapshot(e, tb, &v, &n), 0);
        if (n == 0) {
            free(v);
            v = NULL;
            usleep(5000);
        }
    }
    CHECK(n >= 1);
    if (n >= 1) {
        CHECK(v[0].outgoing == 0 && v[0].transport_id == tb && v[0].peer_port == pa);
        CHECK(strcmp(v[0].call_id, "call-7") == 0 && strcmp(v[0].cseq, "7 OPTIONS") == 0);
    }
    free(v);

    /* off again: the ring is freed */
    CHECK_EQ_INT(engine_trace_enable(e, 0), 0);
    CHECK_EQ_INT(engine_trace_snapshot(e, 0, &v, &n), -ENOENT);
    CHECK_EQ_INT(engine_trace_enable(e, 8), 0); /* left on: engine_free frees it */
    engine_free(e);
    close(sink);
}

int main(void)
{
    RUN(test_trace_ring);
    return CHECK_SUMMARY();
}
