/* RFC 3262 3 in the engine over loopback: a 2xx given while a reliable provisional with SDP awaits its PRACK
 * is held and sent after the PRACK's 200; a CANCEL drops it; an engine freed with one held leaks nothing
 * (run under ASan/LSan with SAN=1). */
#include "check.h"

#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "sip/sipmsg.h"

#define SDP "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

/* Contact and Content-Type of the uas's 183 and 200 (the Contact is where the uac's PRACK goes) */
static char uas_contact[64];
static const struct engine_hdr sdp_hdrs[] = {{"Contact", uas_contact}, {"Content-Type", "application/sdp"}};

struct pair {
    struct engine *uas, *uac;
    uint32_t ts, tc;
    uint16_t ps, pc;
};

static int pair_open(struct pair *p)
{
    char err[256] = "";
    struct engine_cfg cfg = {.t1_ms = 20};
    p->uas = engine_new(&cfg, err, sizeof(err));
    p->uac = engine_new(&cfg, err, sizeof(err));
    if (!p->uas || !p->uac)
        return -1;
    if (engine_listen_udp(p->uas, "127.0.0.1", 0, &p->ts, &p->ps, err, sizeof(err)) < 0 ||
        engine_listen_udp(p->uac, "127.0.0.1", 0, &p->tc, &p->pc, err, sizeof(err)) < 0)
        return -1;
    snprintf(uas_contact, sizeof(uas_contact), "<sip:uas@127.0.0.1:%u>", p->ps);
    return 0;
}

static void pair_close(struct pair *p)
{
    engine_free(p->uas);
    engine_free(p->uac);
}

/* The CSeq method of an event's message is m (responses: also the status). */
static int is_resp(const struct engine_event *ev, int status, const char *m)
{
    if (ev->kind != ENGINE_EV_RESPONSE || ev->status != status || ev->msg == NULL)
        return 0;
    size_t pos = 0;
    const struct sip_hdr *h = sipmsg_find(ev->msg, SIP_HDR_CSEQ, NULL, &pos);
    struct sip_cseq cq;
    return h && sip_cseq_parse(h->value, &cq, NULL) == 0 && sip_str_eqc(cq.method, m);
}

static int is_req(const struct engine_event *ev, const char *m)
{
    return ev->kind == ENGINE_EV_REQUEST && ev->msg && sip_str_eqc(ev->msg->method, m);
}

/* Wait up to ~2 s for an event of e matching pred(arg); the ones before it are appended to log (kind*1000 +
 * status, up to 16).  Returns the event (caller frees) or NULL. */
static struct engine_event *wait_for(struct engine *e, int (*pred)(const struct engine_event *, const void *),
                                     const void *arg, int *log, size_t *nlog)
{
    for (int i = 0; i < 200; i++) {
        engine_wait(e, 10);
        struct engine_event *head = NULL, *found = NULL;
        engine_take(e, 1, &head);
        if (head == NULL)
            continue;
        if (pred(head, arg))
            found = head;
        else {
            if (log && *nlog < 16)
                log[(*nlog)++] = (int)head->kind * 1000 + head->status;
            engine_event_free(head);
        }
        if (found)
            return found;
    }
    return NULL;
}

static int pred_invite(const struct engine_event *ev, const void *arg)
{
    (void)arg;
    return is_req(ev, "INVITE");
}

static int pred_resp(const struct engine_event *ev, const void *arg)
{
    const int *sm = arg; /* {status, method index} */
    static const char *methods[] = {"INVITE", "PRACK", "CANCEL"};
    return is_resp(ev, sm[0], methods[sm[1]]);
}

static int pred_any_final_invite(const struct engine_event *ev, const void *arg)
{
    (void)arg;
    return ev->kind == ENGINE_EV_RESPONSE && ev->status >= 200 && is_resp(ev, ev->status, "INVITE");
}

/* INVITE from uac to uas with Supported: 100rel; the uas's INVITE transaction id. */
static uint32_t invite(struct pair *p, const char *call_id, uint32_t *uac_txn)
{
    char to[80], contact[80], err[256] = "";
    snprintf(to, sizeof(to), "<sip:uas@127.0.0.1:%u>", p->ps);
    snprintf(contact, sizeof(contact), "<sip:uac@127.0.0.1:%u>", p->pc);
    struct engine_hdr h[] = {{"From", "<sip:uac@127.0.0.1>;tag=uac1"}, {"To", to}, {"Call-ID", call_id},
                             {"CSeq", "1 INVITE"}, {"Contact", contact}, {"Supported", "100rel"},
                             {"Content-Type", "application/sdp"}};
    char ruri[64];
    snprintf(ruri, sizeof(ruri), "sip:uas@127.0.0.1:%u", p->ps);
    if (engine_request(p->uac, p->tc, "127.0.0.1", p->ps, "INVITE", ruri, h, sizeof(h) / sizeof(h[0]), SDP,
                       strlen(SDP), uac_txn, err, sizeof(err)) < 0)
        return 0;
    struct engine_event *ev = wait_for(p->uas, pred_invite, NULL, NULL, NULL);
    uint32_t txn = ev ? ev->txn_id : 0;
    engine_event_free(ev);
    return txn;
}


static uint32_t rseq_of(const struct engine_event *ev)
{
    size_t pos = 0;
    const struct sip_hdr *h = ev && ev->msg ? sipmsg_find(ev->msg, SIP_HDR_RSEQ, NULL, &pos) : NULL;
    if (h == NULL || h->value.len == 0 || h->value.len > 10)
        return 0;
    char buf[11];
    memcpy(buf, h->value.p, h->value.len);
    buf[h->value.len] = '\0';
    return (uint32_t)strtoul(buf, NULL, 10);
}

/* INVITE, reliable 183 with SDP (the uac does not PRACK by itself), 200 given and held.  Returns the uas
 * INVITE txn; *early = the uac's early dialog, *rseq = the 183's RSeq, *uac_txn = the uac's INVITE txn. */
static uint32_t held_call(struct pair *p, const char *call_id, uint32_t *early, uint32_t *rseq, uint32_t *uac_txn)
{
    char err[256] = "";
    uint32_t did = 0, did2 = 0;
    CHECK_EQ_INT(engine_set_auto_prack(p->uac, p->tc, 0), 0);
    uint32_t txn = invite(p, call_id, uac_txn);
    CHECK(txn != 0);
    CHECK_EQ_INT(engine_respond_ex(p->uas, txn, 183, NULL, sdp_hdrs, 2, SDP, strlen(SDP), ENGINE_RESPOND_RELIABLE,
                                   &did, err, sizeof(err)),
                 0);
    CHECK(did != 0);
    int s183[2] = {183, 0};
    struct engine_event *r = wait_for(p->uac, pred_resp, s183, NULL, NULL);
    CHECK(r != NULL);
    *early = r ? r->dialog_id : 0;
    *rseq = rseq_of(r);
    CHECK(*rseq != 0);
    engine_event_free(r);
    CHECK_EQ_INT(engine_respond(p->uas, txn, 200, NULL, sdp_hdrs, 2, SDP, strlen(SDP), &did2, err, sizeof(err)), 0);
    CHECK_EQ_INT(did2, did);
    /* a second 2xx while one is held is refused */
    CHECK(engine_respond(p->uas, txn, 200, NULL, sdp_hdrs, 2, SDP, strlen(SDP), &did2, err, sizeof(err)) < 0);
    CHECK(strstr(err, "waiting for the PRACK") != NULL);
    return txn;
}

/* Drain e's events for ms milliseconds; the number of final responses to INVITE among them. */
static int finals_within(struct engine *e, int ms)
{
    int n = 0;
    for (int i = 0; i < ms / 10; i++) {
        engine_wait(e, 10);
        struct engine_event *head = NULL;
        engine_take(e, 16, &head);
        while (head) {
            struct engine_event *next = head->next;
            n += pred_any_final_invite(head, NULL);
            engine_event_free(head);
            head = next;
        }
    }
    return n;
}

static void test_2xx_is_held_until_the_prack_then_follows_its_200(void)
{
    struct pair p;
    CHECK_EQ_INT(pair_open(&p), 0);
    uint32_t early = 0, rseq = 0, ctx = 0, ptx = 0;
    held_call(&p, "held-1", &early, &rseq, &ctx);
    CHECK_EQ_INT(finals_within(p.uac, 300), 0); /* 15 T1 and no 200 */
    char rack[48], err[256] = "";
    snprintf(rack, sizeof(rack), "%u 1 INVITE", rseq);
    struct engine_hdr h = {"RAck", rack};
    CHECK_EQ_INT(engine_dialog_request(p.uac, early, "PRACK", &h, 1, NULL, 0, &ptx, err, sizeof(err)), 0);
    int s200p[2] = {200, 1}, log[16];
    size_t nlog = 0;
    struct engine_event *r = wait_for(p.uac, pred_resp, s200p, log, &nlog);
    CHECK(r != NULL);
    engine_event_free(r);
    for (size_t i = 0; i < nlog; i++)
        CHECK(log[i] % 1000 < 200); /* nothing final before the PRACK's 200 */
    int s200i[2] = {200, 0};
    r = wait_for(p.uac, pred_resp, s200i, NULL, NULL);
    CHECK(r != NULL);
    CHECK(r && r->msg && r->msg->body.len == strlen(SDP));
    engine_event_free(r);
    pair_close(&p);
}

static void test_cancel_drops_the_held_2xx(void)
{
    struct pair p;
    CHECK_EQ_INT(pair_open(&p), 0);
    uint32_t early = 0, rseq = 0, ctx = 0, cancel = 0;
    char err[256] = "";
    held_call(&p, "held-2", &early, &rseq, &ctx);
    CHECK_EQ_INT(engine_cancel(p.uac, ctx, &cancel, err, sizeof(err)), 0);
    int s487[2] = {487, 0};
    struct engine_event *r = wait_for(p.uac, pred_resp, s487, NULL, NULL);
    CHECK(r != NULL);
    engine_event_free(r);
    CHECK_EQ_INT(finals_within(p.uac, 200), 0); /* never the 200 */
    pair_close(&p);
}

static void test_engine_freed_with_a_held_2xx_leaks_nothing(void)
{
    struct pair p;
    CHECK_EQ_INT(pair_open(&p), 0);
    uint32_t early = 0, rseq = 0, ctx = 0;
    held_call(&p, "held-3", &early, &rseq, &ctx);
    pair_close(&p); /* LSan (SAN=1) checks the held copy is freed with its transaction */
}

int main(void)
{
    RUN(test_2xx_is_held_until_the_prack_then_follows_its_200);
    RUN(test_cancel_drops_the_held_2xx);
    RUN(test_engine_freed_with_a_held_2xx_leaks_nothing);
    return CHECK_SUMMARY();
}
