/* The fast path over loopback: a load engine calls a fast-path engine; every call ends, the summaries
 * arrive, nothing leaks (run under ASan/LSan with SAN=1). */
#include "check.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

static void test_load_against_fast_profile(void)
{
    char err[256] = "";
    struct engine *a = engine_new(NULL, err, sizeof(err)), *b = engine_new(NULL, err, sizeof(err));
    CHECK(a && b);
    if (!a || !b) {
        engine_free(a);
        engine_free(b);
        return;
    }
    uint32_t ta, tb;
    uint16_t pa, pb;
    CHECK_EQ_INT(engine_listen_udp(a, "127.0.0.1", 0, &ta, &pa, err, sizeof(err)), 0);
    CHECK_EQ_INT(engine_listen_udp(b, "127.0.0.1", 0, &tb, &pb, err, sizeof(err)), 0);
    struct engine_hdr h = {"Allow", "INVITE, ACK, BYE"};
    struct engine_profile p = {.ring_delay_ms = 0, .answer_delay_ms = 0, .hold_ms = -1,
                               .auto_200 = ENGINE_AUTO_BYE | ENGINE_AUTO_OPTIONS, .summary = 1,
                               .body = "v=0\r\n", .blen = 5, .hdrs = &h, .nhdrs = 1};
    CHECK_EQ_INT(engine_set_profile(b, tb, &p, err, sizeof(err)), 0);
    struct engine_profile bad = p;
    bad.ring_delay_ms = -2;
    CHECK_EQ_INT(engine_set_profile(b, tb, &bad, err, sizeof(err)), -EINVAL);
    char ruri[64];
    snprintf(ruri, sizeof(ruri), "sip:%%n@127.0.0.1:%u", pb);
    struct engine_load_cfg c = {.transport_id = ta, .host = "127.0.0.1", .port = pb, .ruri = ruri,
                                .from_uri = "sip:load@127.0.0.1", .rate = 500, .max_calls = 100,
                                .max_concurrent = 20, .hold_ms = 0, .body = "v=0\r\n", .blen = 5};
    CHECK_EQ_INT(engine_load_start(a, &c, err, sizeof(err)), 0);
    CHECK_EQ_INT(engine_load_start(a, &c, err, sizeof(err)), -EBUSY);
    struct engine_load_stats s;
    size_t summaries = 0, others = 0;
    for (int i = 0; i < 500; i++) {
        struct engine_event *head = NULL;
        engine_wait(b, 10);
        engine_take(b, 1000, &head);
        while (head) {
            struct engine_event *n = head->next;
            if (head->kind == ENGINE_EV_CALL_SUMMARY)
                summaries++;
            else
                others++;
            engine_event_free(head);
            head = n;
        }
        CHECK_EQ_INT(engine_load_stats(a, &s), 0);
        if (!s.running && s.active == 0 && summaries == 100)
            break;
    }
    CHECK_EQ_INT(s.started, 100);
    CHECK_EQ_INT(s.answered, 100);
    CHECK_EQ_INT(s.completed, 100);
    CHECK_EQ_INT(s.failed, 0);
    CHECK_EQ_INT(summaries, 100);
    CHECK_EQ_INT(others, 0);
    CHECK(s.setup_p50_ms > 0 && s.setup_p99_ms <= s.setup_max_ms + 0.001);
    struct engine_counts ca;
    engine_get_counts(a, &ca);
    CHECK_EQ_INT(ca.pending_events, 0);
    /* free with calls' transactions still lingering: no leak */
    engine_free(a);
    engine_free(b);
}

static void test_load_to_closed_port_fails(void)
{
    char err[256] = "";
    struct engine *a = engine_new(&(struct engine_cfg){.t1_ms = 20}, err, sizeof(err));
    CHECK(a != NULL);
    if (!a)
        return;
    uint32_t ta;
    uint16_t pa;
    CHECK_EQ_INT(engine_listen_udp(a, "127.0.0.1", 0, &ta, &pa, err, sizeof(err)), 0);
    struct engine_load_cfg c = {.transport_id = ta, .host = "127.0.0.1", .port = 9, .ruri = "sip:x@127.0.0.1:9",
                                .from_uri = "sip:load@127.0.0.1", .rate = 100, .max_calls = 3, .hold_ms = 0};
    CHECK_EQ_INT(engine_load_start(a, &c, err, sizeof(err)), 0);
    struct engine_load_stats s;
    for (int i = 0; i < 300; i++) {
        usleep(10000);
        engine_load_stats(a, &s);
        if (!s.running && s.active == 0)
            break;
    }
    CHECK_EQ_INT(s.failed, 3);
    CHECK(s.nfail >= 1);
    engine_free(a);
}

int main(void)
{
    RUN(test_load_against_fast_profile);
    RUN(test_load_to_closed_port_fails);
    return CHECK_SUMMARY();
}
