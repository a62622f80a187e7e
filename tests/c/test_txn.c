/* RFC 3261 section 17 / RFC 6026 transaction state machines, driven by a fake clock. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "sip/sipmsg.h"
#include "sip/txn.h"

static const char INVITE[] =
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKtop1;rport, SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKinner\r\n"
    "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKsecond\r\n"
    "Route: <sip:p1.example.com;lr>\r\n"
    "Max-Forwards: 69\r\n"
    "From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
    "To: <sip:bob@example.com>\r\n"
    "Route: <sip:p2.example.com;lr>, <sip:p3.example.com;lr>\r\n"
    "Call-ID: call1@10.0.0.1\r\n"
    "CSeq: 314 INVITE\r\n"
    "Contact: <sip:alice@10.0.0.1>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 4\r\n"
    "\r\n"
    "v=0\n";

static const char OPTIONS[] =
    "OPTIONS sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKopt\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@example.com>;tag=a1\r\n"
    "To: <sip:bob@example.com>\r\n"
    "Call-ID: opt1@10.0.0.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static const char RESP_BYTES[] = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";

static const struct txn_cfg UDP = {0, 0, 0, 0};
static const struct txn_cfg TCP = {0, 0, 0, 1};

/* A parsed response with this status for CSeq method `method`; To carries tag b99. */
static struct sipmsg *mkresp(int status, const char *method)
{
    char buf[512];
    struct sipmsg *m = NULL;
    int n = snprintf(buf, sizeof(buf),
                     "SIP/2.0 %d Whatever\r\n"
                     "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKtop1;rport=5060\r\n"
                     "From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
                     "To: <sip:bob@example.com>;tag=b99\r\n"
                     "Call-ID: call1@10.0.0.1\r\n"
                     "CSeq: 314 %s\r\n"
                     "Content-Length: 0\r\n"
                     "\r\n",
                     status, method);
    CHECK(n > 0 && (size_t)n < sizeof(buf));
    CHECK_EQ_INT(sipmsg_parse(buf, (size_t)n, NULL, &m, NULL), 0);
    return m;
}

/* Feed a response and free it. */
static int feed(struct txn *t, int status, uint64_t now, struct txn_out *out)
{
    struct sipmsg *m = mkresp(status, txn_kind(t) == TXN_ICT ? "INVITE" : "OPTIONS");
    int rc = m ? txn_client_on_response(t, m, now, out) : -ENOMEM;
    sipmsg_free(m);
    return rc;
}

static int respond(struct txn *t, int status, uint64_t now, struct txn_out *out)
{
    return txn_server_respond(t, status, RESP_BYTES, sizeof(RESP_BYTES) - 1, now, out);
}

static int out_empty(const struct txn_out *o)
{
    return !o->send_request && !o->send_response && !o->send_ack && !o->deliver && !o->timeout && !o->terminated &&
           o->timer == 0;
}

/* Drive the clock from deadline to deadline up to `limit`, recording when a
 * retransmission was asked for.  Returns the time of the last call, and the
 * last output in *last. */
struct run {
    uint64_t at[64];
    int n;
    uint64_t end;
    struct txn_out last;
};

static void run_clock(struct txn *t, uint64_t limit, struct run *r)
{
    memset(r, 0, sizeof(*r));
    for (;;) {
        uint64_t d = txn_deadline(t);
        if (d == TXN_NO_DEADLINE || d > limit)
            break;
        CHECK_EQ_INT(txn_on_time(t, d, &r->last), 0);
        r->end = d;
        if (r->last.send_request || r->last.send_response) {
            if (r->n < 64)
                r->at[r->n] = d;
            r->n++;
        }
        if (r->last.terminated)
            break;
    }
}

static void check_times(const struct run *r, const uint64_t *want, int n)
{
    CHECK_EQ_INT(r->n, n);
    for (int i = 0; i < n && i < r->n; i++)
        CHECK_EQ_INT(r->at[i], want[i]);
}

/* ---- INVITE client ---- */

static void test_ict_timer_a_doubles_and_b_times_out_at_64t1(void)
{
    struct txn_out out;
    struct run r;
    static const uint64_t want[] = {500, 1500, 3500, 7500, 15500, 31500};
    struct txn *t = txn_client_new(TXN_ICT, &UDP, INVITE, sizeof(INVITE) - 1, 0, &out);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK(out.send_request);
    CHECK_EQ_INT(txn_state(t), TXN_CALLING);
    CHECK_EQ_INT(txn_deadline(t), 500);
    CHECK_STR(txn_request(t), INVITE);
    run_clock(t, 100000, &r);
    check_times(&r, want, 6);
    CHECK_EQ_INT(r.end, 32000);
    CHECK(r.last.timeout && r.last.terminated);
    CHECK(!r.last.send_request);
    CHECK_EQ_INT(r.last.timer, 'B');
    CHECK_EQ_INT(txn_state(t), TXN_TERMINATED);
    CHECK_EQ_INT(txn_deadline(t), TXN_NO_DEADLINE);
    txn_free(t);
}

static void test_ict_retransmit_reports_timer_a(void)
{
    struct txn_out out;
    struct txn *t = txn_client_new(TXN_ICT, NULL, INVITE, sizeof(INVITE) - 1, 1000, &out);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(txn_on_time(t, 1499, &out), 0);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_on_time(t, 1500, &out), 0);
    CHECK(out.send_request);
    CHECK_EQ_INT(out.timer, 'A');
    CHECK_EQ_INT(txn_deadline(t), 2500);
    txn_free(t);
}

static void test_ict_1xx_stops_retransmissions_and_timer_b(void)
{
    struct txn_out out;
    struct txn *t = txn_client_new(TXN_ICT, &UDP, INVITE, sizeof(INVITE) - 1, 0, &out);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(feed(t, 180, 100, &out), 0);
    CHECK(out.deliver && !out.send_request && !out.send_ack);
    CHECK_EQ_INT(txn_state(t), TXN_PROCEEDING);
    CHECK_EQ_INT(txn_last_status(t), 180);
    CHECK_EQ_INT(txn_deadline(t), TXN_NO_DEADLINE);
    CHECK_EQ_INT(feed(t, 183, 200, &out), 0);
    CHECK(out.deliver);
    CHECK_EQ_INT(txn_state(t), TXN_PROCEEDING);
    txn_free(t);
}

static void test_ict_486_builds_ack_per_17_1_1_3(void)
{
    struct txn_out out;
    struct sipmsg *ack = NULL;
    const struct sip_hdr *h;
    struct sip_via via;
    struct sip_nameaddr na;
    struct sip_cseq cseq;
    struct sip_str s, rest, elem;
    size_t pos;
    int n;
    struct txn *t = txn_client_new(TXN_ICT, &UDP, INVITE, sizeof(INVITE) - 1, 0, &out);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(txn_ack(t).len, 0);
    CHECK_EQ_INT(feed(t, 486, 700, &out), 0);
    CHECK(out.send_ack && out.deliver && !out.send_request && !out.terminated);
    CHECK_EQ_INT(txn_state(t), TXN_COMPLETED);
    CHECK_EQ_INT(txn_last_status(t), 486);

    s = txn_ack(t);
    CHECK(s.len > 0);
    CHECK_EQ_INT(sipmsg_parse(s.p, s.len, NULL, &ack, NULL), 0);
    if (!ack) {
        txn_free(t);
        return;
    }
    CHECK(ack->is_request);
    CHECK_STR(ack->method, "ACK");
    CHECK_STR(ack->uri, "sip:bob@example.com");

    /* exactly one Via: the original top Via element */
    pos = 0;
    n = 0;
    while ((h = sipmsg_find(ack, SIP_HDR_VIA, NULL, &pos)) != NULL) {
        rest = h->value;
        while (sip_list_next(&rest, &elem) == 0)
            n++;
    }
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(sipmsg_top_via(ack, &via, NULL), 0);
    CHECK_STR(via.branch, "z9hG4bKtop1");
    CHECK_STR(via.host, "10.0.0.1");

    pos = 0;
    h = sipmsg_find(ack, SIP_HDR_CSEQ, NULL, &pos);
    CHECK(h != NULL);
    if (h) {
        CHECK_EQ_INT(sip_cseq_parse(h->value, &cseq, NULL), 0);
        CHECK_EQ_INT(cseq.num, 314);
        CHECK_STR(cseq.method, "ACK");
    }

    pos = 0;
    h = sipmsg_find(ack, SIP_HDR_TO, NULL, &pos);
    CHECK(h != NULL);
    if (h) {
        CHECK_EQ_INT(sip_nameaddr_parse(h->value, &na, NULL), 0);
        CHECK_STR(na.tag, "b99");
        CHECK_STR(na.uri, "sip:bob@example.com");
    }
    pos = 0;
    h = sipmsg_find(ack, SIP_HDR_FROM, NULL, &pos);
    CHECK(h != NULL);
    if (h)
        CHECK_STR(h->value, "\"Alice\" <sip:alice@example.com>;tag=a1");
    pos = 0;
    h = sipmsg_find(ack, SIP_HDR_CALL_ID, NULL, &pos);
    CHECK(h != NULL);
    if (h)
        CHECK_STR(h->value, "call1@10.0.0.1");
    pos = 0;
    h = sipmsg_find(ack, SIP_HDR_MAX_FORWARDS, NULL, &pos);
    CHECK(h != NULL);
    if (h)
        CHECK_STR(h->value, "70");
    pos = 0;
    h = sipmsg_find(ack, SIP_HDR_CONTENT_LENGTH, NULL, &pos);
    CHECK(h != NULL);
    if (h)
        CHECK_STR(h->value, "0");
    CHECK_EQ_INT(ack->body.len, 0);

    /* the Route headers of the request, in order */
    pos = 0;
    h = sipmsg_find(ack, SIP_HDR_ROUTE, NULL, &pos);
    CHECK(h != NULL);
    if (h)
        CHECK_STR(h->value, "<sip:p1.example.com;lr>");
    h = sipmsg_find(ack, SIP_HDR_ROUTE, NULL, &pos);
    CHECK(h != NULL);
    if (h)
        CHECK_STR(h->value, "<sip:p2.example.com;lr>, <sip:p3.example.com;lr>");
    CHECK(sipmsg_find(ack, SIP_HDR_ROUTE, NULL, &pos) == NULL);
    /* nothing the request carried beyond what 17.1.1.3 lists */
    pos = 0;
    CHECK(sipmsg_find(ack, SIP_HDR_CONTACT, NULL, &pos) == NULL);
    pos = 0;
    CHECK(sipmsg_find(ack, SIP_HDR_CONTENT_TYPE, NULL, &pos) == NULL);
    sipmsg_free(ack);
    txn_free(t);
}

static void test_ict_retransmitted_final_in_completed_resends_ack_only(void)
{
    struct txn_out out;
    struct run r;
    struct sip_str first;
    struct txn *t = txn_client_new(TXN_ICT, &UDP, INVITE, sizeof(INVITE) - 1, 0, &out);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(feed(t, 100, 50, &out), 0);
    CHECK_EQ_INT(feed(t, 486, 1000, &out), 0);
    CHECK(out.send_ack && out.deliver);
    first = txn_ack(t);
    CHECK_EQ_INT(txn_deadline(t), 1000 + 32000);
    CHECK_EQ_INT(feed(t, 486, 2000, &out), 0);
    CHECK(out.send_ack && !out.deliver && !out.terminated);
    CHECK(txn_ack(t).len == first.len && txn_ack(t).p == first.p);
    CHECK_EQ_INT(txn_deadline(t), 1000 + 32000); /* Timer D is not restarted */
    run_clock(t, 100000, &r);
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(r.end, 33000);
    CHECK(r.last.terminated && !r.last.timeout);
    CHECK_EQ_INT(r.last.timer, 'D');
    txn_free(t);
}

static void test_ict_2xx_accepted_delivers_retransmissions_until_m(void)
{
    struct txn_out out;
    struct run r;
    struct txn *t = txn_client_new(TXN_ICT, &UDP, INVITE, sizeof(INVITE) - 1, 0, &out);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(feed(t, 200, 600, &out), 0);
    CHECK(out.deliver && !out.send_ack);
    CHECK_EQ_INT(txn_state(t), TXN_ACCEPTED);
    CHECK_EQ_INT(txn_ack(t).len, 0);
    CHECK_EQ_INT(txn_deadline(t), 600 + 32000);
    CHECK_EQ_INT(feed(t, 200, 1100, &out), 0);
    CHECK(out.deliver && !out.send_ack);
    CHECK_EQ_INT(feed(t, 486, 1200, &out), -EPROTO);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(feed(t, 180, 1300, &out), -EPROTO);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_last_status(t), 200);
    run_clock(t, 100000, &r);
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(r.end, 32600);
    CHECK(r.last.terminated && !r.last.timeout);
    CHECK_EQ_INT(r.last.timer, 'M');
    txn_free(t);
}

static void test_ict_rejects_invite_without_headers_for_ack(void)
{
    static const char bad[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
                              "Content-Length: 0\r\n\r\n";
    struct txn_out out;
    struct txn *t = txn_client_new(TXN_ICT, &UDP, bad, sizeof(bad) - 1, 0, &out);
    CHECK(t == NULL);
    CHECK(out_empty(&out));
    txn_free(t);
}

/* ---- non-INVITE client ---- */

static void test_nict_timer_e_caps_at_t2_and_f_times_out_at_64t1(void)
{
    struct txn_out out;
    struct run r;
    static const uint64_t want[] = {500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500};
    struct txn *t = txn_client_new(TXN_NICT, &UDP, OPTIONS, sizeof(OPTIONS) - 1, 0, &out);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK(out.send_request);
    CHECK_EQ_INT(txn_state(t), TXN_TRYING);
    run_clock(t, 100000, &r);
    check_times(&r, want, 10);
    CHECK_EQ_INT(r.end, 32000);
    CHECK(r.last.timeout && r.last.terminated && !r.last.send_request);
    CHECK_EQ_INT(r.last.timer, 'F');
    txn_free(t);
}

static void test_nict_after_1xx_retransmits_every_t2(void)
{
    struct txn_out out;
    struct run r;
    static const uint64_t want[] = {1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500};
    struct txn *t = txn_client_new(TXN_NICT, &UDP, OPTIONS, sizeof(OPTIONS) - 1, 0, &out);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(txn_on_time(t, 500, &out), 0);
    CHECK(out.send_request);
    CHECK_EQ_INT(out.timer, 'E');
    CHECK_EQ_INT(feed(t, 100, 600, &out), 0);
    CHECK(out.deliver && !out.send_request);
    CHECK_EQ_INT(txn_state(t), TXN_PROCEEDING);
    CHECK_EQ_INT(txn_deadline(t), 1500); /* E keeps its deadline, then resets to T2 */
    run_clock(t, 100000, &r);
    check_times(&r, want, 8);
    CHECK_EQ_INT(r.end, 32000);
    CHECK(r.last.timeout && r.last.terminated);
    CHECK_EQ_INT(r.last.timer, 'F');
    txn_free(t);
}

static void test_nict_final_completes_then_terminates_after_t4(void)
{
    struct txn_out out;
    struct txn *t = txn_client_new(TXN_NICT, &UDP, OPTIONS, sizeof(OPTIONS) - 1, 0, &out);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(feed(t, 404, 700, &out), 0);
    CHECK(out.deliver && !out.send_request);
    CHECK_EQ_INT(txn_state(t), TXN_COMPLETED);
    CHECK_EQ_INT(txn_deadline(t), 700 + 5000);
    CHECK_EQ_INT(feed(t, 404, 800, &out), 0); /* retransmission absorbed */
    CHECK(out_empty(&out));
    CHECK_EQ_INT(feed(t, 180, 900, &out), -EPROTO);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_on_time(t, 5699, &out), 0);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_state(t), TXN_COMPLETED);
    CHECK_EQ_INT(txn_on_time(t, 5700, &out), 0);
    CHECK(out.terminated && !out.timeout && !out.send_request);
    CHECK_EQ_INT(out.timer, 'K');
    CHECK_EQ_INT(txn_state(t), TXN_TERMINATED);
    txn_free(t);
}

/* ---- INVITE server ---- */

static void test_ist_timer_g_caps_at_t2_and_h_times_out_at_64t1(void)
{
    struct txn_out out;
    struct run r;
    static const uint64_t want[] = {600, 1600, 3600, 7600, 11600, 15600, 19600, 23600, 27600, 31600};
    struct txn *t = txn_server_new(TXN_IST, &UDP, 0);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(txn_state(t), TXN_PROCEEDING);
    CHECK_EQ_INT(txn_deadline(t), TXN_NO_DEADLINE);
    CHECK_EQ_INT(respond(t, 100, 0, &out), 0);
    CHECK(out.send_response);
    CHECK_EQ_INT(txn_deadline(t), TXN_NO_DEADLINE);
    CHECK_EQ_INT(respond(t, 486, 100, &out), 0);
    CHECK(out.send_response);
    CHECK_EQ_INT(txn_state(t), TXN_COMPLETED);
    CHECK_EQ_INT(txn_last_status(t), 486);
    run_clock(t, 100000, &r);
    check_times(&r, want, 10);
    CHECK_EQ_INT(r.end, 32100);
    CHECK(r.last.timeout && r.last.terminated && !r.last.send_response);
    CHECK_EQ_INT(r.last.timer, 'H');
    txn_free(t);
}

static void test_ist_ack_confirms_then_terminates_after_t4(void)
{
    struct txn_out out;
    struct txn *t = txn_server_new(TXN_IST, &UDP, 0);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(respond(t, 486, 0, &out), 0);
    CHECK_EQ_INT(txn_server_on_retransmit(t, 200, &out), 0);
    CHECK(out.send_response); /* Completed: the final is resent */
    CHECK_EQ_INT(txn_server_on_ack(t, 700, &out), 0);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_state(t), TXN_CONFIRMED);
    CHECK_EQ_INT(txn_deadline(t), 700 + 5000); /* G and H stopped, I = T4 */
    CHECK_EQ_INT(txn_server_on_retransmit(t, 800, &out), 0);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_server_on_ack(t, 900, &out), 0);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_on_time(t, 5699, &out), 0);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_on_time(t, 5700, &out), 0);
    CHECK(out.terminated && !out.timeout && !out.send_response);
    CHECK_EQ_INT(out.timer, 'I');
    txn_free(t);
}

static void test_ist_2xx_accepted_absorbs_retransmit_and_ends_at_l(void)
{
    static const char ok2[] = "SIP/2.0 200 OK\r\nX: again\r\nContent-Length: 0\r\n\r\n";
    struct txn_out out;
    struct txn *t = txn_server_new(TXN_IST, &UDP, 0);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(respond(t, 180, 0, &out), 0);
    CHECK_EQ_INT(respond(t, 200, 1000, &out), 0);
    CHECK(out.send_response);
    CHECK_EQ_INT(txn_state(t), TXN_ACCEPTED);
    CHECK_EQ_INT(txn_deadline(t), 1000 + 32000);
    CHECK_EQ_INT(txn_server_on_retransmit(t, 1500, &out), 0);
    CHECK(out_empty(&out)); /* the TU retransmits its 2xx, not the transaction */
    CHECK_EQ_INT(txn_server_respond(t, 200, ok2, sizeof(ok2) - 1, 1600, &out), 0);
    CHECK(out.send_response);
    CHECK_STR(txn_response(t), ok2);
    CHECK_EQ_INT(respond(t, 486, 1700, &out), -EPROTO);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(respond(t, 180, 1700, &out), -EPROTO);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_deadline(t), 33000);
    CHECK_EQ_INT(txn_on_time(t, 32999, &out), 0);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_on_time(t, 33000, &out), 0);
    CHECK(out.terminated && !out.timeout);
    CHECK_EQ_INT(out.timer, 'L');
    txn_free(t);
}

static void test_ist_retransmitted_invite_resends_last_provisional(void)
{
    static const char r180[] = "SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n";
    struct txn_out out;
    struct txn *t = txn_server_new(TXN_IST, &UDP, 0);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(txn_server_on_retransmit(t, 10, &out), 0);
    CHECK(out_empty(&out)); /* nothing sent yet: nothing to resend */
    CHECK_EQ_INT(respond(t, 100, 20, &out), 0);
    CHECK_EQ_INT(txn_server_respond(t, 180, r180, sizeof(r180) - 1, 30, &out), 0);
    CHECK(out.send_response);
    CHECK_EQ_INT(txn_state(t), TXN_PROCEEDING);
    CHECK_EQ_INT(txn_server_on_retransmit(t, 40, &out), 0);
    CHECK(out.send_response);
    CHECK_STR(txn_response(t), r180);
    CHECK_EQ_INT(txn_last_status(t), 180);
    txn_free(t);
}

/* ---- non-INVITE server ---- */

static void test_nist_resends_last_response_and_ends_at_j(void)
{
    struct txn_out out;
    struct txn *t = txn_server_new(TXN_NIST, &UDP, 0);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(txn_state(t), TXN_TRYING);
    CHECK_EQ_INT(txn_server_on_retransmit(t, 100, &out), 0);
    CHECK(out_empty(&out)); /* Trying: absorbed */
    CHECK_EQ_INT(respond(t, 100, 200, &out), 0);
    CHECK(out.send_response);
    CHECK_EQ_INT(txn_state(t), TXN_PROCEEDING);
    CHECK_EQ_INT(txn_server_on_retransmit(t, 300, &out), 0);
    CHECK(out.send_response);
    CHECK_EQ_INT(respond(t, 200, 1000, &out), 0);
    CHECK(out.send_response);
    CHECK_EQ_INT(txn_state(t), TXN_COMPLETED);
    CHECK_EQ_INT(txn_deadline(t), 1000 + 32000);
    CHECK_EQ_INT(txn_server_on_retransmit(t, 2000, &out), 0);
    CHECK(out.send_response);
    CHECK_EQ_INT(respond(t, 200, 2100, &out), -EPROTO);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_on_time(t, 33000, &out), 0);
    CHECK(out.terminated && !out.timeout && !out.send_response);
    CHECK_EQ_INT(out.timer, 'J');
    txn_free(t);
}

/* ---- reliable transports ---- */

static void test_reliable_client_sends_no_retransmissions(void)
{
    struct txn_out out;
    struct run r;
    struct txn *ict = txn_client_new(TXN_ICT, &TCP, INVITE, sizeof(INVITE) - 1, 0, &out);
    struct txn *nict = txn_client_new(TXN_NICT, &TCP, OPTIONS, sizeof(OPTIONS) - 1, 0, &out);
    CHECK(ict != NULL && nict != NULL);
    if (!ict || !nict) {
        txn_free(ict);
        txn_free(nict);
        return;
    }
    CHECK_EQ_INT(txn_deadline(ict), 32000); /* Timer B only */
    run_clock(ict, 100000, &r);
    CHECK_EQ_INT(r.n, 0);
    CHECK(r.last.timeout && r.last.terminated);
    CHECK_EQ_INT(r.last.timer, 'B');
    CHECK_EQ_INT(txn_deadline(nict), 32000); /* Timer F only */
    run_clock(nict, 100000, &r);
    CHECK_EQ_INT(r.n, 0);
    CHECK(r.last.timeout && r.last.terminated);
    CHECK_EQ_INT(r.last.timer, 'F');
    txn_free(ict);
    txn_free(nict);
}

static void test_reliable_zero_timers_d_and_k_fire_at_once(void)
{
    struct txn_out out;
    struct txn *ict = txn_client_new(TXN_ICT, &TCP, INVITE, sizeof(INVITE) - 1, 0, &out);
    struct txn *nict = txn_client_new(TXN_NICT, &TCP, OPTIONS, sizeof(OPTIONS) - 1, 0, &out);
    CHECK(ict != NULL && nict != NULL);
    if (!ict || !nict) {
        txn_free(ict);
        txn_free(nict);
        return;
    }
    CHECK_EQ_INT(feed(ict, 486, 900, &out), 0);
    CHECK(out.send_ack && out.deliver && !out.terminated);
    CHECK_EQ_INT(txn_state(ict), TXN_COMPLETED);
    CHECK_EQ_INT(txn_deadline(ict), 900);
    CHECK_EQ_INT(txn_on_time(ict, 900, &out), 0);
    CHECK(out.terminated && !out.timeout);
    CHECK_EQ_INT(out.timer, 'D');

    CHECK_EQ_INT(feed(nict, 200, 800, &out), 0);
    CHECK_EQ_INT(txn_deadline(nict), 800);
    CHECK_EQ_INT(txn_on_time(nict, 800, &out), 0);
    CHECK(out.terminated);
    CHECK_EQ_INT(out.timer, 'K');
    txn_free(ict);
    txn_free(nict);
}

static void test_reliable_server_no_timer_g_and_zero_i_j(void)
{
    struct txn_out out;
    struct txn *ist = txn_server_new(TXN_IST, &TCP, 0);
    struct txn *nist = txn_server_new(TXN_NIST, &TCP, 0);
    CHECK(ist != NULL && nist != NULL);
    if (!ist || !nist) {
        txn_free(ist);
        txn_free(nist);
        return;
    }
    CHECK_EQ_INT(respond(ist, 486, 100, &out), 0);
    CHECK_EQ_INT(txn_deadline(ist), 100 + 32000); /* Timer H only */
    CHECK_EQ_INT(txn_server_on_ack(ist, 300, &out), 0);
    CHECK_EQ_INT(txn_state(ist), TXN_CONFIRMED);
    CHECK_EQ_INT(txn_deadline(ist), 300);
    CHECK_EQ_INT(txn_on_time(ist, 300, &out), 0);
    CHECK(out.terminated && !out.send_response);
    CHECK_EQ_INT(out.timer, 'I');

    CHECK_EQ_INT(respond(nist, 200, 400, &out), 0);
    CHECK_EQ_INT(txn_deadline(nist), 400);
    CHECK_EQ_INT(txn_on_time(nist, 400, &out), 0);
    CHECK(out.terminated);
    CHECK_EQ_INT(out.timer, 'J');
    txn_free(ist);
    txn_free(nist);
}

/* ---- protocol violations and bad arguments ---- */

static void test_inputs_invalid_for_state_return_eproto_without_flags(void)
{
    struct txn_out out;
    struct txn *ict = txn_client_new(TXN_ICT, &UDP, INVITE, sizeof(INVITE) - 1, 0, &out);
    struct txn *nict = txn_client_new(TXN_NICT, &UDP, OPTIONS, sizeof(OPTIONS) - 1, 0, &out);
    struct txn *ist = txn_server_new(TXN_IST, &UDP, 0);
    struct txn *nist = txn_server_new(TXN_NIST, &UDP, 0);
    CHECK(ict && nict && ist && nist);
    if (!ict || !nict || !ist || !nist)
        goto done;

    /* ICT: a 1xx or 2xx after a non-2xx final */
    CHECK_EQ_INT(feed(ict, 603, 100, &out), 0);
    CHECK_EQ_INT(feed(ict, 180, 200, &out), -EPROTO);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(feed(ict, 200, 200, &out), -EPROTO);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_last_status(ict), 603);

    /* NICT: anything after Terminated, including time */
    CHECK_EQ_INT(txn_on_time(nict, 32000, &out), 0);
    CHECK(out.terminated);
    CHECK_EQ_INT(feed(nict, 200, 33000, &out), -EPROTO);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_on_time(nict, 40000, &out), -EPROTO);
    CHECK(out_empty(&out));

    /* IST: ACK before any final; a second final; a 1xx after the final */
    CHECK_EQ_INT(txn_server_on_ack(ist, 10, &out), -EPROTO);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(respond(ist, 404, 20, &out), 0);
    CHECK_EQ_INT(respond(ist, 500, 30, &out), -EPROTO);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(respond(ist, 180, 30, &out), -EPROTO);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(txn_last_status(ist), 404);
    CHECK_EQ_INT(txn_server_on_ack(ist, 40, &out), 0);
    CHECK_EQ_INT(respond(ist, 200, 50, &out), -EPROTO);
    CHECK(out_empty(&out));

    /* NIST: a response after the final */
    CHECK_EQ_INT(respond(nist, 200, 10, &out), 0);
    CHECK_EQ_INT(respond(nist, 100, 20, &out), -EPROTO);
    CHECK(out_empty(&out));
done:
    txn_free(ict);
    txn_free(nict);
    txn_free(ist);
    txn_free(nist);
}

static void test_wrong_kind_and_bad_arguments_are_einval(void)
{
    struct txn_out out;
    struct txn *ict = txn_client_new(TXN_ICT, &UDP, INVITE, sizeof(INVITE) - 1, 0, &out);
    struct txn *nist = txn_server_new(TXN_NIST, &UDP, 0);
    struct sipmsg *req = NULL;
    CHECK(txn_client_new(TXN_IST, &UDP, INVITE, sizeof(INVITE) - 1, 0, &out) == NULL);
    CHECK(txn_client_new(TXN_NICT, &UDP, OPTIONS, 0, 0, &out) == NULL);
    CHECK(txn_server_new(TXN_ICT, &UDP, 0) == NULL);
    CHECK(ict && nist);
    if (!ict || !nist)
        goto done;
    CHECK_EQ_INT(txn_server_on_retransmit(ict, 0, &out), -EINVAL);
    CHECK(out_empty(&out));
    CHECK_EQ_INT(respond(ict, 200, 0, &out), -EINVAL);
    CHECK_EQ_INT(txn_server_on_ack(nist, 0, &out), -EINVAL);
    CHECK_EQ_INT(feed(nist, 200, 0, &out), -EINVAL);
    CHECK_EQ_INT(respond(nist, 99, 0, &out), -EINVAL);
    CHECK_EQ_INT(respond(nist, 700, 0, &out), -EINVAL);
    CHECK_EQ_INT(txn_server_respond(nist, 200, RESP_BYTES, 0, 0, &out), -EINVAL);
    CHECK_EQ_INT(txn_state(nist), TXN_TRYING);
    CHECK_EQ_INT(sipmsg_parse(OPTIONS, sizeof(OPTIONS) - 1, NULL, &req, NULL), 0);
    if (req) {
        CHECK_EQ_INT(txn_client_on_response(ict, req, 0, &out), -EINVAL); /* a request is not a response */
        CHECK(out_empty(&out));
    }
    CHECK_EQ_INT(txn_state(ict), TXN_CALLING);
done:
    sipmsg_free(req);
    txn_free(ict);
    txn_free(nist);
}

/* ---- configuration and clock edge cases ---- */

static void test_custom_t1_t2_t4_are_honoured(void)
{
    const struct txn_cfg cfg = {100, 400, 1000, 0};
    struct txn_out out;
    struct run r;
    static const uint64_t ict_want[] = {100, 300, 700, 1500, 3100, 6300};
    static const uint64_t nict_want[] = {100, 300, 700, 1100, 1500, 1900, 2300, 2700, 3100, 3500,
                                         3900, 4300, 4700, 5100, 5500, 5900, 6300};
    static const uint64_t ist_want[] = {100, 300, 700, 1100, 1500};
    struct txn *ict = txn_client_new(TXN_ICT, &cfg, INVITE, sizeof(INVITE) - 1, 0, &out);
    struct txn *nict = txn_client_new(TXN_NICT, &cfg, OPTIONS, sizeof(OPTIONS) - 1, 0, &out);
    struct txn *nict2 = txn_client_new(TXN_NICT, &cfg, OPTIONS, sizeof(OPTIONS) - 1, 0, &out);
    struct txn *ist = txn_server_new(TXN_IST, &cfg, 0);
    CHECK(ict && nict && nict2 && ist);
    if (!ict || !nict || !nict2 || !ist)
        goto done;
    run_clock(ict, 100000, &r);
    check_times(&r, ict_want, 6);
    CHECK_EQ_INT(r.end, 6400);
    CHECK_EQ_INT(r.last.timer, 'B');

    run_clock(nict, 100000, &r);
    check_times(&r, nict_want, 17);
    CHECK_EQ_INT(r.end, 6400);
    CHECK_EQ_INT(r.last.timer, 'F');

    CHECK_EQ_INT(feed(nict2, 200, 50, &out), 0);
    CHECK_EQ_INT(txn_deadline(nict2), 50 + 1000); /* K = T4 */

    CHECK_EQ_INT(respond(ist, 500, 0, &out), 0);
    run_clock(ist, 1500, &r);
    check_times(&r, ist_want, 5);
    CHECK_EQ_INT(txn_deadline(ist), 1900);
    CHECK_EQ_INT(txn_server_on_ack(ist, 1600, &out), 0);
    CHECK_EQ_INT(txn_deadline(ist), 2600); /* I = T4 */
done:
    txn_free(ict);
    txn_free(nict);
    txn_free(nict2);
    txn_free(ist);
}

static void test_late_clock_sends_once_and_timeout_wins(void)
{
    struct txn_out out;
    struct txn *t = txn_client_new(TXN_ICT, &UDP, INVITE, sizeof(INVITE) - 1, 0, &out);
    CHECK(t != NULL);
    if (!t)
        return;
    /* A was due at 500 and 1500; one retransmission, the next one interval later than now */
    CHECK_EQ_INT(txn_on_time(t, 1600, &out), 0);
    CHECK(out.send_request);
    CHECK_EQ_INT(txn_deadline(t), 1600 + 1000);
    /* past Timer B: only the timeout, no retransmission */
    CHECK_EQ_INT(txn_on_time(t, 50000, &out), 0);
    CHECK(out.timeout && out.terminated && !out.send_request);
    CHECK_EQ_INT(out.timer, 'B');
    txn_free(t);
}

static void test_state_names(void)
{
    CHECK(strcmp(txn_state_name(TXN_CALLING), "Calling") == 0);
    CHECK(strcmp(txn_state_name(TXN_ACCEPTED), "Accepted") == 0);
    CHECK(strcmp(txn_state_name(TXN_TERMINATED), "Terminated") == 0);
    CHECK(strcmp(txn_state_name((enum txn_state)42), "?") == 0);
}

int main(void)
{
    RUN(test_ict_timer_a_doubles_and_b_times_out_at_64t1);
    RUN(test_ict_retransmit_reports_timer_a);
    RUN(test_ict_1xx_stops_retransmissions_and_timer_b);
    RUN(test_ict_486_builds_ack_per_17_1_1_3);
    RUN(test_ict_retransmitted_final_in_completed_resends_ack_only);
    RUN(test_ict_2xx_accepted_delivers_retransmissions_until_m);
    RUN(test_ict_rejects_invite_without_headers_for_ack);
    RUN(test_nict_timer_e_caps_at_t2_and_f_times_out_at_64t1);
    RUN(test_nict_after_1xx_retransmits_every_t2);
    RUN(test_nict_final_completes_then_terminates_after_t4);
    RUN(test_ist_timer_g_caps_at_t2_and_h_times_out_at_64t1);
    RUN(test_ist_ack_confirms_then_terminates_after_t4);
    RUN(test_ist_2xx_accepted_absorbs_retransmit_and_ends_at_l);
    RUN(test_ist_retransmitted_invite_resends_last_provisional);
    RUN(test_nist_resends_last_response_and_ends_at_j);
    RUN(test_reliable_client_sends_no_retransmissions);
    RUN(test_reliable_zero_timers_d_and_k_fire_at_once);
    RUN(test_reliable_server_no_timer_g_and_zero_i_j);
    RUN(test_inputs_invalid_for_state_return_eproto_without_flags);
    RUN(test_wrong_kind_and_bad_arguments_are_einval);
    RUN(test_custom_t1_t2_t4_are_honoured);
    RUN(test_late_clock_sends_once_and_timeout_wins);
    RUN(test_state_names);
    return CHECK_SUMMARY();
}
