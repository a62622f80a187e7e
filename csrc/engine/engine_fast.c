/* The fast path: routine calls run by the signalling thread without the user.
 *
 * UAS side: a transport's profile (engine_set_profile) says when to send 180 and 200 to an incoming INVITE,
 * which requests to answer 200 by ourselves and when to hang up; in summary mode such a call gives the user
 * one CALL_SUMMARY event at its end and nothing else.  UAC side: the load generator places calls at a rate
 * from a timer and counts their outcomes (engine_load_stats), without any event.
 *
 * How it joins the engine: every event passes engine_fast_on_event() before it is queued (engine.c).  The
 * hook only records what happened and swallows the events of fast calls; what must be sent (180, 200, BYE,
 * 200 to a BYE) is done later from a TK_FAST timer, so that the hook never re-enters the transaction or
 * dialog code that is emitting the event.  Everything here runs under engine->lock.  Call records are
 * handles in three id maps (call id, transaction id, dialog id); a record has one owner (f->calls) and
 * one free path (fcall_finish).
 */
#include "engine_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HIST_BUCKETS 4096
#define LOAD_BURST 256 /* calls placed per timer run at most, so that received messages are not starved */

struct fprofile {
    int32_t ring_ms, answer_ms, hold_ms;
    unsigned auto_200;
    int summary;
    char *store;             /* one allocation: contact, content type, body, header names and values */
    size_t blen;
    const char *body;
    struct engine_hdr *h180; /* Contact + extra */
    size_t n180;
    struct engine_hdr *h200; /* Contact + Content-Type (with a body) + extra */
    size_t n200;
    uint64_t ended, answered; /* fast calls of the transport that ended (kept when the profile is replaced) */
};

enum fc_state { FC_INVITED, FC_ANSWERED, FC_CONFIRMED, FC_BYE_SENT };

struct fcall {
    uint32_t id, transport_id, invite_txn, bye_txn, dialog_id, gen;
    int uac;     /* a load call */
    int summary; /* give a CALL_SUMMARY event at the end */
    enum fc_state state;
    int rang;
    int final_status;
    uint64_t t_invite_us, t_final_us, t_confirm_us;
    uint64_t ring_at, answer_at, hold_at; /* ms deadlines, 0 = none */
    char end_reason[48];
    char call_id[128];
};

struct fresp {
    uint32_t txn_id, call_id;
    int bye;
};

struct fload {
    uint32_t transport_id;
    struct netaddr dst;
    char *ruri, *from_uri, *to_uri, *contact, *body;
    size_t blen;
    double rate, next_due_ms;
    uint64_t max_calls;
    uint32_t max_concurrent;
    int32_t hold_ms;
    int running;
    uint32_t gen;
    uint64_t placed, answered, completed, failed, active;
    uint64_t rtx_base, t_start_us, t_last_end_us;
    uint64_t hist[HIST_BUCKETS];
    uint64_t setup_max_us;
    struct {
        char reason[48];
        uint64_t count;
    } fail[ENGINE_LOAD_REASONS];
    size_t nfail;
};

struct engine_fast {
    struct strmap profiles; /* transport id -> struct fprofile */
    struct strmap calls;    /* call id -> struct fcall (owner) */
    struct strmap by_txn;   /* INVITE or BYE transaction id -> struct fcall */
    struct strmap by_dlg;   /* dialog id -> struct fcall */
    struct fresp *rq;       /* requests to answer 200 at the next TK_FAST id 0 timer */
    size_t nrq, caprq;
    int rq_scheduled;
    struct fload *load;
    int placing;            /* inside a send of ours: transport errors are ours */
    int place_failed;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void *idmap_get(const struct strmap *m, uint32_t id)
{
    unsigned char k[4];
    strmap_idkey(id, k);
    return strmap_get(m, k, 4);
}

static int idmap_put(struct strmap *m, uint32_t id, void *v)
{
    unsigned char k[4];
    strmap_idkey(id, k);
    return strmap_put(m, k, 4, v);
}

static void idmap_del(struct strmap *m, uint32_t id, const void *v)
{
    unsigned char k[4];
    strmap_idkey(id, k);
    if (id && strmap_get(m, k, 4) == v)
        strmap_del(m, k, 4);
}

static struct engine_fast *fast_get(struct engine *e)
{
    if (e->fast == NULL) {
        struct engine_fast *f = calloc(1, sizeof(*f));
        if (f == NULL)
            return NULL;
        strmap_init(&f->profiles);
        strmap_init(&f->calls);
        strmap_init(&f->by_txn);
        strmap_init(&f->by_dlg);
        e->fast = f;
    }
    return e->fast;
}

static void profile_free(struct fprofile *p)
{
    if (p == NULL)
        return;
    free(p->store);
    free(p->h180);
    free(p->h200);
    free(p);
}

static void load_free(struct fload *l)
{
    if (l == NULL)
        return;
    free(l->ruri);
    free(l->from_uri);
    free(l->to_uri);
    free(l->contact);
    free(l->body);
    free(l);
}

void engine_fast_free(struct engine *e)
{
    struct engine_fast *f = e->fast;
    if (f == NULL)
        return;
    size_t i = 0;
    long s;
    while ((s = strmap_next(&f->profiles, &i)) >= 0)
        profile_free(f->profiles.s[s].val);
    i = 0;
    while ((s = strmap_next(&f->calls, &i)) >= 0)
        free(f->calls.s[s].val);
    strmap_free(&f->profiles);
    strmap_free(&f->calls);
    strmap_free(&f->by_txn);
    strmap_free(&f->by_dlg);
    free(f->rq);
    load_free(f->load);
    free(f);
    e->fast = NULL;
}

/* ---- small helpers ------------------------------------------------------------------------------------- */

static int one_line(const char *s, size_t max)
{
    if (s == NULL)
        return 0;
    for (size_t n = 0; s[n]; n++)
        if (n >= max || s[n] == '\r' || s[n] == '\n')
            return 0;
    return 1;
}

static int is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (size_t n = 0; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= 128 || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                          strchr("-.!%*_+`'~", c) != NULL))
            return 0;
    }
    return 1;
}

/* tmpl with each "%n" replaced by n; 0 or -E2BIG. */
static int expand(const char *tmpl, uint64_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '%' && p[1] == 'n') {
            int w = snprintf(out + o, outlen - o, "%llu", (unsigned long long)n);
            if (w < 0 || (size_t)w >= outlen - o)
                return -E2BIG;
            o += (size_t)w;
            p++;
            continue;
        }
        if (o + 1 >= outlen)
            return -E2BIG;
        out[o++] = *p;
    }
    out[o] = '\0';
    return 0;
}

static void default_contact(const struct transport *tp, const char *user, char *out, size_t n)
{
    int v6 = netaddr_is_ipv6(&tp->local);
    snprintf(out, n, "<%s:%s@%s%s%s:%u%s>", tp->kind == TP_TLS ? "sips" : "sip", user, v6 ? "[" : "", tp->host,
             v6 ? "]" : "", tp->port, tp->kind == TP_TCP ? ";transport=tcp" : "");
}

static void schedule_call(struct engine *e, struct fcall *c)
{
    uint64_t d = UINT64_MAX;
    if (c->state == FC_INVITED) {
        if (c->ring_at && !c->rang)
            d = c->ring_at;
        if (c->answer_at && c->answer_at < d)
            d = c->answer_at;
    } else if (c->state == FC_CONFIRMED && c->hold_at) {
        d = c->hold_at;
    }
    c->gen++;
    if (d != UINT64_MAX)
        (void)timerheap_push(&e->timers, (struct timer_entry){.deadline = d, .kind = TK_FAST, .id = c->id,
                                                               .gen = c->gen});
}

static void bind_dialog(struct engine *e, struct fcall *c, uint32_t did)
{
    if (did == 0 || did == c->dialog_id)
        return;
    idmap_del(&e->fast->by_dlg, c->dialog_id, c);
    c->dialog_id = did;
    (void)idmap_put(&e->fast->by_dlg, did, c);
    struct edialog *d = engine_dialog_get(e, did);
    if (d)
        d->quiet = c->summary || c->uac;
}

/* ---- load statistics ----------------------------------------------------------------------------------- */

static size_t hist_bucket(uint64_t us)
{
    if (us < 100000)
        return (size_t)(us / 100);
    uint64_t b = 1000 + (us - 100000) / 10000;
    return b >= HIST_BUCKETS ? HIST_BUCKETS - 1 : (size_t)b;
}

static double hist_value_ms(size_t b)
{
    if (b < 1000)
        return (double)b * 0.1 + 0.05;
    return 100.0 + (double)(b - 1000) * 10.0 + 5.0;
}

static void load_fail(struct fload *l, const char *reason)
{
    l->failed++;
    for (size_t i = 0; i < l->nfail; i++)
        if (strcmp(l->fail[i].reason, reason) == 0) {
            l->fail[i].count++;
            return;
        }
    /* the last entry collects the reasons that do not fit */
    size_t i = l->nfail < ENGINE_LOAD_REASONS - 1 ? l->nfail : ENGINE_LOAD_REASONS - 1;
    if (i == l->nfail) {
        l->nfail++;
        snprintf(l->fail[i].reason, sizeof(l->fail[i].reason), "%s", i == ENGINE_LOAD_REASONS - 1 ? "other" : reason);
    }
    l->fail[i].count++;
}

static void load_schedule(struct engine *e, struct fload *l, uint64_t at)
{
    l->gen++;
    (void)timerheap_push(&e->timers, (struct timer_entry){.deadline = at, .kind = TK_LOAD, .id = 1, .gen = l->gen});
}

/* ---- the end of a call --------------------------------------------------------------------------------- */

/* Report and free c; status 0 keeps c->final_status; reason NULL keeps c->end_reason. */
static void fcall_finish(struct engine *e, struct fcall *c, int status, const char *reason)
{
    struct engine_fast *f = e->fast;
    if (status)
        c->final_status = status;
    if (reason && c->end_reason[0] == '\0')
        snprintf(c->end_reason, sizeof(c->end_reason), "%s", reason);
    uint64_t t = now_us();
    if (c->uac && f->load) {
        struct fload *l = f->load;
        if (l->active)
            l->active--;
        l->t_last_end_us = t;
        if (c->final_status >= 200 && c->final_status < 300)
            l->completed++;
        if (l->running && (l->max_concurrent == 0 || l->active < l->max_concurrent))
            load_schedule(e, l, engine_now_ms());
    }
    if (!c->uac) {
        struct fprofile *p = idmap_get(&f->profiles, c->transport_id);
        if (p) {
            p->ended++;
            p->answered += c->final_status >= 200 && c->final_status < 300;
        }
    }
    if (c->summary == 1) {
        struct engine_event *ev = engine_event_new(ENGINE_EV_CALL_SUMMARY);
        if (ev) {
            ev->transport_id = c->transport_id;
            ev->dialog_id = c->dialog_id;
            ev->txn_id = c->invite_txn;
            ev->status = c->final_status;
            uint64_t setup = (c->t_confirm_us ? c->t_confirm_us : c->t_final_us);
            setup = setup > c->t_invite_us ? (setup - c->t_invite_us) / 1000 : 0;
            uint64_t talk = c->t_confirm_us && t > c->t_confirm_us ? (t - c->t_confirm_us) / 1000 : 0;
            snprintf(ev->info, sizeof(ev->info), "%s %llu %llu %.64s %s", c->uac ? "out" : "in",
                     (unsigned long long)setup, (unsigned long long)talk, c->call_id[0] ? c->call_id : "-",
                     c->end_reason[0] ? c->end_reason : "ended");
            engine_push_event(e, ev);
        }
    }
    idmap_del(&f->by_txn, c->invite_txn, c);
    idmap_del(&f->by_txn, c->bye_txn, c);
    idmap_del(&f->by_dlg, c->dialog_id, c);
    idmap_del(&f->calls, c->id, c);
    free(c);
}

static struct fcall *fcall_new(struct engine *e, uint32_t transport_id)
{
    struct fcall *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->id = engine_new_id(e);
    c->transport_id = transport_id;
    if (idmap_put(&e->fast->calls, c->id, c) < 0) {
        free(c);
        return NULL;
    }
    return c;
}

/* ---- profiles ------------------------------------------------------------------------------------------ */

int engine_set_profile(struct engine *e, uint32_t transport_id, const struct engine_profile *p, char *err,
                       size_t errlen)
{
    if (p) {
        if (p->ring_delay_ms < -1 || p->answer_delay_ms < -1 || p->hold_ms < -1 || p->ring_delay_ms > 86400000 ||
            p->answer_delay_ms > 86400000 || p->hold_ms > 86400000) {
            engine_set_err(err, errlen, "delays must be -1 (none) or 0..86400000 ms");
            return -EINVAL;
        }
        if (p->summary < 0 || p->summary > ENGINE_SUMMARY_COUNT) {
            engine_set_err(err, errlen, "summary must be 0, 1 or %d (counters only)", ENGINE_SUMMARY_COUNT);
            return -EINVAL;
        }
        if (p->auto_200 & ~(unsigned)(ENGINE_AUTO_BYE | ENGINE_AUTO_OPTIONS | ENGINE_AUTO_NOTIFY | ENGINE_AUTO_INFO)) {
            engine_set_err(err, errlen, "unknown auto-answer bits 0x%x", p->auto_200);
            return -EINVAL;
        }
        if ((p->contact && !one_line(p->contact, 1024)) || (p->content_type && !one_line(p->content_type, 256)) ||
            (p->blen && p->body == NULL) || p->blen > 65536 || p->nhdrs > 64 || (p->nhdrs && p->hdrs == NULL)) {
            engine_set_err(err, errlen, "contact, content type, body (at most 64 KiB) or headers (at most 64) invalid");
            return -EINVAL;
        }
        for (size_t i = 0; i < p->nhdrs; i++) {
            if (!is_token(p->hdrs[i].name) || !one_line(p->hdrs[i].value, 8192) ||
                strcasecmp(p->hdrs[i].name, "Content-Length") == 0 || strcasecmp(p->hdrs[i].name, "Via") == 0) {
                engine_set_err(err, errlen, "header %zu: a token name (not Via/Content-Length) and a one-line value",
                               i);
                return -EINVAL;
            }
        }
    }
    pthread_mutex_lock(&e->lock);
    struct transport *tp = engine_transport(e, transport_id);
    struct engine_fast *f = tp ? fast_get(e) : NULL;
    if (tp == NULL || f == NULL) {
        pthread_mutex_unlock(&e->lock);
        engine_set_err(err, errlen, tp ? "out of memory" : "unknown transport id %u", transport_id);
        return tp ? -ENOMEM : -ENOENT;
    }
    struct fprofile *np = NULL;
    int rc = 0;
    if (p) {
        char contact[320];
        if (p->contact && p->contact[0])
            snprintf(contact, sizeof(contact), "%s", p->contact);
        else
            default_contact(tp, "fast", contact, sizeof(contact));
        const char *ctype = p->content_type && p->content_type[0] ? p->content_type : "application/sdp";
        size_t need = strlen(contact) + 1 + strlen(ctype) + 1 + p->blen + 1;
        for (size_t i = 0; i < p->nhdrs; i++)
            need += strlen(p->hdrs[i].name) + 1 + strlen(p->hdrs[i].value) + 1;
        np = calloc(1, sizeof(*np));
        if (np) {
            np->store = malloc(need);
            np->h180 = calloc(p->nhdrs + 1, sizeof(*np->h180));
            np->h200 = calloc(p->nhdrs + 2, sizeof(*np->h200));
        }
        if (np == NULL || np->store == NULL || np->h180 == NULL || np->h200 == NULL) {
            profile_free(np);
            pthread_mutex_unlock(&e->lock);
            engine_set_err(err, errlen, "out of memory");
            return -ENOMEM;
        }
        char *w = np->store;
#define COPY(dst, src)                                                                                             \
    do {                                                                                                           \
        size_t l_ = strlen(src) + 1;                                                                               \
        memcpy(w, src, l_);                                                                                        \
        dst = w;                                                                                                   \
        w += l_;                                                                                                   \
    } while (0)
        const char *cc, *ct;
        COPY(cc, contact);
        COPY(ct, ctype);
        np->body = w;
        if (p->blen)
            memcpy(w, p->body, p->blen);
        w[p->blen] = '\0';
        w += p->blen + 1;
        np->blen = p->blen;
        np->h180[np->n180++] = (struct engine_hdr){"Contact", cc};
        np->h200[np->n200++] = (struct engine_hdr){"Contact", cc};
        if (p->blen)
            np->h200[np->n200++] = (struct engine_hdr){"Content-Type", ct};
        for (size_t i = 0; i < p->nhdrs; i++) {
            const char *n, *v;
            COPY(n, p->hdrs[i].name);
            COPY(v, p->hdrs[i].value);
            np->h180[np->n180++] = (struct engine_hdr){n, v};
            np->h200[np->n200++] = (struct engine_hdr){n, v};
        }
#undef COPY
        np->ring_ms = p->ring_delay_ms;
        np->answer_ms = p->answer_delay_ms;
        np->hold_ms = p->hold_ms;
        np->auto_200 = p->auto_200;
        np->summary = p->summary;
    }
    unsigned char k[4];
    strmap_idkey(transport_id, k);
    struct fprofile *old = strmap_del(&f->profiles, k, 4);
    if (old && np) {
        np->ended = old->ended;
        np->answered = old->answered;
    }
    profile_free(old);
    if (np && strmap_put(&f->profiles, k, 4, np) < 0) {
        profile_free(np);
        engine_set_err(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

int engine_fast_counts(struct engine *e, uint32_t transport_id, uint64_t *ended, uint64_t *answered)
{
    pthread_mutex_lock(&e->lock);
    const struct fprofile *p = e->fast ? idmap_get(&e->fast->profiles, transport_id) : NULL;
    if (p) {
        *ended = p->ended;
        *answered = p->answered;
    }
    pthread_mutex_unlock(&e->lock);
    return p ? 0 : -ENOENT;
}

/* ---- the event hook ------------------------------------------------------------------------------------ */

static unsigned method_bit(struct sip_str m)
{
    if (sip_str_eqc(m, "BYE"))
        return ENGINE_AUTO_BYE;
    if (sip_str_eqc(m, "OPTIONS"))
        return ENGINE_AUTO_OPTIONS;
    if (sip_str_eqc(m, "NOTIFY"))
        return ENGINE_AUTO_NOTIFY;
    if (sip_str_eqc(m, "INFO"))
        return ENGINE_AUTO_INFO;
    return 0;
}

static void queue_200(struct engine *e, uint32_t txn_id, uint32_t call_id, int bye)
{
    struct engine_fast *f = e->fast;
    if (f->nrq == f->caprq) {
        size_t nc = f->caprq ? f->caprq * 2 : 64;
        struct fresp *n = realloc(f->rq, nc * sizeof(*n));
        if (n == NULL)
            return; /* the request stays unanswered: the peer retransmits, Timer F reports it */
        f->rq = n;
        f->caprq = nc;
    }
    f->rq[f->nrq++] = (struct fresp){txn_id, call_id, bye};
    if (!f->rq_scheduled) {
        f->rq_scheduled = 1;
        (void)timerheap_push(&e->timers, (struct timer_entry){.deadline = 0, .kind = TK_FAST, .id = 0, .gen = 0});
    }
}

static const struct fprofile *profile_of(struct engine *e, uint32_t transport_id)
{
    return idmap_get(&e->fast->profiles, transport_id);
}

static int on_incoming_invite(struct engine *e, struct engine_event *ev)
{
    const struct fprofile *p = profile_of(e, ev->transport_id);
    if (p == NULL || (p->ring_ms < 0 && p->answer_ms < 0) || ev->txn_id == 0)
        return 0;
    struct fcall *c = fcall_new(e, ev->transport_id);
    if (c == NULL)
        return 0;
    if (idmap_put(&e->fast->by_txn, ev->txn_id, c) < 0) {
        idmap_del(&e->fast->calls, c->id, c);
        free(c);
        return 0;
    }
    c->invite_txn = ev->txn_id;
    c->summary = p->answer_ms >= 0 ? p->summary : 0;
    c->t_invite_us = now_us();
    uint64_t now = engine_now_ms();
    /* deadlines are CLOCK_MONOTONIC milliseconds (never 0 in practice); 0 means none */
    if (p->ring_ms >= 0)
        c->ring_at = now + (uint64_t)p->ring_ms;
    if (p->answer_ms >= 0)
        c->answer_at = now + (uint64_t)p->answer_ms;
    /* 180 or 200 at once: they go out at the end of this loop iteration, so no 100 Trying is needed */
    e->fast_responds_now = p->ring_ms == 0 || p->answer_ms == 0;
    size_t pos = 0;
    const struct sip_hdr *h = sipmsg_find(ev->msg, SIP_HDR_CALL_ID, NULL, &pos);
    if (h)
        snprintf(c->call_id, sizeof(c->call_id), "%.*s", (int)(h->value.len < 127 ? h->value.len : 127), h->value.p);
    schedule_call(e, c);
    return c->summary;
}

/* "transport error: <cause>" from a TRANSPORT_ERROR's info ("TLS handshake with H:P failed: certificate verify
 * failed (self-signed certificate)"): the cause after the last "failed: ", without its parenthesis when the
 * whole does not fit, so that load statistics say what went wrong and count it under one reason. */
static void transport_reason(const char *info, char *out, size_t n)
{
    const char *cause = info, *p = info;
    while ((p = strstr(p, "failed: ")) != NULL) {
        p += 8;
        cause = p;
    }
    size_t len = strnlen(cause, sizeof(((struct engine_event *)0)->info));
    const char *paren = memchr(cause, '(', len);
    if (len + 17 >= n && paren != NULL && paren > cause)
        len = (size_t)(paren - cause) - (paren[-1] == ' ');
    if (len == 0)
        snprintf(out, n, "transport error");
    else
        snprintf(out, n, "transport error: %.*s", (int)len, cause);
}

int engine_fast_on_event(struct engine *e, struct engine_event *ev)
{
    struct engine_fast *f = e->fast;
    switch (ev->kind) {
    case ENGINE_EV_REQUEST: {
        if (ev->msg == NULL)
            return 0;
        struct sip_str m = ev->msg->method;
        if (sip_str_eqc(m, "INVITE") && ev->dialog_id == 0)
            return on_incoming_invite(e, ev);
        struct fcall *c = ev->dialog_id ? idmap_get(&f->by_dlg, ev->dialog_id) : NULL;
        if (sip_str_eqc(m, "ACK")) {
            if (c == NULL)
                return 0;
            if (c->state == FC_ANSWERED && !c->uac) {
                c->state = FC_CONFIRMED;
                c->t_confirm_us = now_us();
                const struct fprofile *p = profile_of(e, c->transport_id);
                if (p && p->hold_ms >= 0)
                    c->hold_at = engine_now_ms() + (uint64_t)p->hold_ms;
                schedule_call(e, c);
            }
            return c->summary || c->uac;
        }
        unsigned bit = method_bit(m);
        if (c) {
            /* the user does not know this call: we answer its in-dialog requests, a re-INVITE excepted */
            if (sip_str_eqc(m, "INVITE") || ev->txn_id == 0)
                return 0;
            queue_200(e, ev->txn_id, bit == ENGINE_AUTO_BYE ? c->id : 0, bit == ENGINE_AUTO_BYE);
            return c->summary || c->uac;
        }
        const struct fprofile *p = profile_of(e, ev->transport_id);
        if (p && bit && bit != ENGINE_AUTO_BYE && (p->auto_200 & bit) && ev->dialog_id == 0) {
            queue_200(e, ev->txn_id, 0, 0);
            return p->summary;
        }
        return 0;
    }
    case ENGINE_EV_RESPONSE: {
        struct fcall *c = ev->txn_id ? idmap_get(&f->by_txn, ev->txn_id) : NULL;
        if (c == NULL)
            return 0;
        int quiet = c->summary || c->uac;
        if (ev->txn_id == c->bye_txn) {
            if (ev->status >= 200)
                fcall_finish(e, c, 0, "BYE sent");
            return quiet;
        }
        if (!c->uac || ev->txn_id != c->invite_txn)
            return quiet;
        struct fload *l = f->load;
        if (ev->status > 100 && ev->status < 200) {
            bind_dialog(e, c, ev->dialog_id);
        } else if (ev->status >= 200 && ev->status < 300) {
            if (c->state == FC_INVITED) {
                c->t_final_us = c->t_confirm_us = now_us();
                c->final_status = ev->status;
                c->state = FC_CONFIRMED;
                bind_dialog(e, c, ev->dialog_id);
                if (l) {
                    uint64_t us = c->t_final_us - c->t_invite_us;
                    l->answered++;
                    l->hist[hist_bucket(us)]++;
                    if (us > l->setup_max_us)
                        l->setup_max_us = us;
                }
                uint64_t hold = l ? (uint64_t)l->hold_ms : 0;
                c->hold_at = engine_now_ms() + hold;
                schedule_call(e, c);
            }
        } else if (ev->status >= 300) {
            char reason[48];
            int rl = ev->msg ? (int)(ev->msg->reason.len < 40 ? ev->msg->reason.len : 40) : 0;
            snprintf(reason, sizeof(reason), "%d %.*s", ev->status, rl, rl ? ev->msg->reason.p : "");
            if (l)
                load_fail(l, reason);
            fcall_finish(e, c, ev->status, reason);
        }
        return quiet;
    }
    case ENGINE_EV_TIMEOUT:
    case ENGINE_EV_TRANSPORT_ERROR: {
        if (f->placing && ev->kind == ENGINE_EV_TRANSPORT_ERROR) {
            f->place_failed = 1;
            return 1;
        }
        struct fcall *c = ev->txn_id ? idmap_get(&f->by_txn, ev->txn_id) : NULL;
        if (c == NULL && ev->dialog_id)
            c = idmap_get(&f->by_dlg, ev->dialog_id);
        if (c == NULL)
            return 0;
        int quiet = c->summary || c->uac;
        char reason[48];
        if (ev->kind == ENGINE_EV_TIMEOUT)
            snprintf(reason, sizeof(reason), "%.40s", ev->info[0] ? ev->info : "timeout");
        else
            transport_reason(ev->info, reason, sizeof(reason));
        if (c->uac && ev->txn_id == c->invite_txn && c->state == FC_INVITED) {
            if (f->load)
                load_fail(f->load, reason);
            fcall_finish(e, c, ev->kind == ENGINE_EV_TIMEOUT ? 408 : 503, reason);
        } else if (ev->txn_id && ev->txn_id == c->bye_txn) {
            char r[48];
            snprintf(r, sizeof(r), "BYE %.40s", reason);
            fcall_finish(e, c, 0, r);
        } else if (!c->uac && ev->txn_id == 0 && c->state == FC_ANSWERED) {
            /* our 2xx got no ACK (Timer H): hang up now */
            snprintf(c->end_reason, sizeof(c->end_reason), "no ACK");
            c->state = FC_CONFIRMED;
            c->hold_at = engine_now_ms();
            schedule_call(e, c);
        }
        return quiet;
    }
    case ENGINE_EV_CANCELLED: {
        struct fcall *c = ev->txn_id ? idmap_get(&f->by_txn, ev->txn_id) : NULL;
        if (c == NULL)
            return 0;
        int quiet = c->summary;
        fcall_finish(e, c, 487, "CANCEL received");
        return quiet;
    }
    case ENGINE_EV_DIALOG_ENDED: {
        struct fcall *c = idmap_get(&f->by_dlg, ev->dialog_id);
        return c ? (c->summary || c->uac) : 0;
    }
    default:
        return 0;
    }
}

/* ---- timers: the actions ------------------------------------------------------------------------------- */

static void send_bye(struct engine *e, struct fcall *c)
{
    struct engine_fast *f = e->fast;
    uint32_t txn = 0;
    f->placing = 1;
    f->place_failed = 0;
    int rc = engine_dialog_request_locked(e, c->dialog_id, "BYE", NULL, 0, NULL, 0, &txn, NULL, 0);
    f->placing = 0;
    if (rc < 0 || f->place_failed || engine_txn_get(e, txn) == NULL) {
        fcall_finish(e, c, 0, "BYE send failed");
        return;
    }
    c->state = FC_BYE_SENT;
    c->bye_txn = txn;
    if (idmap_put(&f->by_txn, txn, c) < 0)
        fcall_finish(e, c, 0, "out of memory");
}

static void run_call(struct engine *e, struct fcall *c, uint64_t now)
{
    const struct fprofile *p = c->uac ? NULL : profile_of(e, c->transport_id);
    if (c->state == FC_INVITED && !c->uac) {
        uint32_t did = 0;
        if (c->ring_at && !c->rang && now >= c->ring_at && (!c->answer_at || c->ring_at <= c->answer_at)) {
            c->rang = 1;
            if (p && engine_respond_locked(e, c->invite_txn, 180, NULL, p->h180, p->n180, NULL, 0, &did, NULL, 0) == 0)
                bind_dialog(e, c, did);
            if (!c->answer_at) { /* the user answers: our part is done (the user saw the INVITE) */
                fcall_finish(e, c, 0, NULL);
                return;
            }
        }
        if (c->answer_at && now >= c->answer_at) {
            if (p == NULL || engine_respond_locked(e, c->invite_txn, 200, NULL, p->h200, p->n200, p->body, p->blen,
                                                   &did, NULL, 0) < 0) {
                fcall_finish(e, c, 500, "cannot answer");
                return;
            }
            bind_dialog(e, c, did);
            c->state = FC_ANSWERED;
            c->final_status = 200;
            c->t_final_us = now_us();
            idmap_del(&e->fast->by_txn, c->invite_txn, c);
        }
    } else if (c->state == FC_CONFIRMED && c->hold_at && now >= c->hold_at) {
        c->hold_at = 0;
        send_bye(e, c);
        return;
    }
    schedule_call(e, c);
}

static void run_responses(struct engine *e)
{
    struct engine_fast *f = e->fast;
    f->rq_scheduled = 0;
    /* answering may queue more (it never does today); take the batch first */
    size_t n = f->nrq;
    for (size_t i = 0; i < n && i < f->nrq; i++) {
        struct fresp r = f->rq[i];
        uint32_t did = 0;
        (void)engine_respond_locked(e, r.txn_id, 200, NULL, NULL, 0, NULL, 0, &did, NULL, 0);
        if (r.bye) {
            struct fcall *c = idmap_get(&f->calls, r.call_id);
            if (c)
                fcall_finish(e, c, 0, "BYE received");
        }
    }
    if (f->nrq > n)
        memmove(f->rq, f->rq + n, (f->nrq - n) * sizeof(*f->rq));
    f->nrq -= n;
}

static void place_call(struct engine *e, struct fload *l)
{
    struct engine_fast *f = e->fast;
    uint64_t n = ++l->placed;
    char ruri[512], from[600], to[600], cid[96], tag[13], rnd[17];
    char from_uri[512], to_uri[512];
    if (expand(l->ruri, n, ruri, sizeof(ruri)) < 0 || expand(l->from_uri, n, from_uri, sizeof(from_uri)) < 0 ||
        expand(l->to_uri, n, to_uri, sizeof(to_uri)) < 0) {
        load_fail(l, "template too long");
        return;
    }
    engine_rand_hex(e, tag, 12);
    engine_rand_hex(e, rnd, 16);
    snprintf(from, sizeof(from), "<%s>;tag=%s", from_uri, tag);
    snprintf(to, sizeof(to), "<%s>", to_uri);
    snprintf(cid, sizeof(cid), "%s-%llu@pysiptest", rnd, (unsigned long long)n);
    struct engine_hdr h[6] = {{"From", from}, {"To", to}, {"Call-ID", cid}, {"CSeq", "1 INVITE"},
                              {"Contact", l->contact}, {"Content-Type", "application/sdp"}};
    struct fcall *c = fcall_new(e, l->transport_id);
    if (c == NULL) {
        load_fail(l, "out of memory");
        return;
    }
    c->uac = 1;
    c->t_invite_us = now_us();
    snprintf(c->call_id, sizeof(c->call_id), "%s", cid);
    uint32_t txn = 0;
    f->placing = 1;
    f->place_failed = 0;
    int rc = engine_request_locked(e, l->transport_id, &l->dst, "INVITE", ruri, h, l->blen ? 6 : 5, l->body, l->blen,
                                   &txn, NULL, 0);
    f->placing = 0;
    l->active++;
    if (rc < 0 || f->place_failed || engine_txn_get(e, txn) == NULL) {
        load_fail(l, "send failed");
        fcall_finish(e, c, 503, "send failed");
        return;
    }
    c->invite_txn = txn;
    if (idmap_put(&f->by_txn, txn, c) < 0) {
        load_fail(l, "out of memory");
        fcall_finish(e, c, 503, "out of memory");
    }
}

static void run_load(struct engine *e, struct fload *l, uint64_t now)
{
    int placed = 0;
    while (l->running && placed < LOAD_BURST && (double)now >= l->next_due_ms &&
           (l->max_concurrent == 0 || l->active < l->max_concurrent) && (l->max_calls == 0 || l->placed < l->max_calls)) {
        place_call(e, l);
        placed++;
        l->next_due_ms += 1000.0 / l->rate;
    }
    if (l->max_calls && l->placed >= l->max_calls)
        l->running = 0;
    if (!l->running)
        return;
    /* not behind more than a second: a stall is not made up with a burst */
    if (l->next_due_ms < (double)now - 1000.0)
        l->next_due_ms = (double)now - 1000.0;
    if (l->max_concurrent && l->active >= l->max_concurrent)
        return; /* the end of a call schedules the next run */
    uint64_t at = l->next_due_ms < (double)now ? now : (uint64_t)l->next_due_ms;
    if ((double)at < l->next_due_ms)
        at++;
    load_schedule(e, l, at);
}

void engine_fast_on_timer(struct engine *e, const struct timer_entry *te, uint64_t now)
{
    struct engine_fast *f = e->fast;
    if (f == NULL)
        return;
    if (te->kind == TK_LOAD) {
        if (f->load && te->gen == f->load->gen)
            run_load(e, f->load, now);
        return;
    }
    if (te->id == 0) {
        run_responses(e);
        return;
    }
    struct fcall *c = idmap_get(&f->calls, te->id);
    if (c && c->gen == te->gen)
        run_call(e, c, now);
}

/* ---- load API ------------------------------------------------------------------------------------------ */

int engine_load_start(struct engine *e, const struct engine_load_cfg *cfg, char *err, size_t errlen)
{
    if (cfg == NULL || !(cfg->rate > 0 && cfg->rate <= 100000)) {
        engine_set_err(err, errlen, "rate must be between 0 and 100000 calls per second");
        return -EINVAL;
    }
    if (cfg->hold_ms < 0 || cfg->hold_ms > 86400000) {
        engine_set_err(err, errlen, "hold must be 0..86400000 ms");
        return -EINVAL;
    }
    if (cfg->ruri == NULL || cfg->ruri[0] == '\0' || !one_line(cfg->ruri, 400) || strchr(cfg->ruri, ' ') ||
        cfg->from_uri == NULL || cfg->from_uri[0] == '\0' || !one_line(cfg->from_uri, 400) ||
        (cfg->to_uri && !one_line(cfg->to_uri, 400)) || (cfg->contact && !one_line(cfg->contact, 400)) ||
        strpbrk(cfg->from_uri, "<>") || (cfg->to_uri && strpbrk(cfg->to_uri, "<>"))) {
        engine_set_err(err, errlen, "request URI, From and To must be one-line URIs (no <>, at most 400 bytes)");
        return -EINVAL;
    }
    if ((cfg->blen && cfg->body == NULL) || cfg->blen > 65536) {
        engine_set_err(err, errlen, "body must be at most 64 KiB");
        return -EINVAL;
    }
    struct netaddr dst;
    if (cfg->host == NULL || netaddr_set(&dst, cfg->host, cfg->port) < 0 || cfg->port == 0) {
        engine_set_err(err, errlen, "destination '%.64s' port %u is not a numeric address and port",
                       cfg->host ? cfg->host : "", cfg->port);
        return -EINVAL;
    }
    struct fload *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    l->dst = dst;
    l->transport_id = cfg->transport_id;
    l->rate = cfg->rate;
    l->max_calls = cfg->max_calls;
    l->max_concurrent = cfg->max_concurrent;
    l->hold_ms = cfg->hold_ms;
    l->ruri = strdup(cfg->ruri);
    l->from_uri = strdup(cfg->from_uri);
    l->to_uri = strdup(cfg->to_uri && cfg->to_uri[0] ? cfg->to_uri : cfg->ruri);
    l->blen = cfg->blen;
    l->body = malloc(cfg->blen + 1);
    if (l->body && cfg->blen)
        memcpy(l->body, cfg->body, cfg->blen);
    pthread_mutex_lock(&e->lock);
    struct transport *tp = engine_transport(e, cfg->transport_id);
    struct engine_fast *f = tp ? fast_get(e) : NULL;
    int rc = 0;
    if (tp == NULL) {
        engine_set_err(err, errlen, "unknown transport id %u", cfg->transport_id);
        rc = -ENOENT;
    } else if (dst.ss.ss_family != tp->local.ss.ss_family) {
        engine_set_err(err, errlen, "the destination is not of the transport's address family");
        rc = -EINVAL;
    } else if (f && f->load && (f->load->running || f->load->active)) {
        engine_set_err(err, errlen, "a load run is under way on this engine");
        rc = -EBUSY;
    } else if (f == NULL || !l->ruri || !l->from_uri || !l->to_uri || !l->body) {
        rc = -ENOMEM;
    }
    if (rc == 0) {
        char contact[320];
        if (cfg->contact && cfg->contact[0])
            snprintf(contact, sizeof(contact), "%s", cfg->contact);
        else
            default_contact(tp, "load", contact, sizeof(contact));
        l->contact = strdup(contact);
        if (l->contact == NULL)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        pthread_mutex_unlock(&e->lock);
        load_free(l);
        return rc;
    }
    load_free(f->load);
    f->load = l;
    l->running = 1;
    l->rtx_base = e->retransmissions;
    l->t_start_us = now_us();
    uint64_t now = engine_now_ms();
    l->next_due_ms = (double)now;
    load_schedule(e, l, now);
    pthread_mutex_unlock(&e->lock);
    engine_wake(e);
    return 0;
}

int engine_load_stop(struct engine *e)
{
    pthread_mutex_lock(&e->lock);
    int rc = -ENOENT;
    if (e->fast && e->fast->load) {
        e->fast->load->running = 0;
        e->fast->load->gen++;
        rc = 0;
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

static double percentile(const struct fload *l, uint64_t total, double q)
{
    if (total == 0)
        return 0.0;
    uint64_t rank = (uint64_t)(q * (double)total);
    if ((double)rank < q * (double)total)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t acc = 0;
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        acc += l->hist[b];
        if (acc >= rank) {
            double v = hist_value_ms(b), mx = (double)l->setup_max_us / 1000.0;
            return v > mx ? mx : v;
        }
    }
    return (double)l->setup_max_us / 1000.0;
}

int engine_load_stats(struct engine *e, struct engine_load_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&e->lock);
    const struct fload *l = e->fast ? e->fast->load : NULL;
    if (l == NULL) {
        pthread_mutex_unlock(&e->lock);
        return -ENOENT;
    }
    out->running = l->running;
    out->started = l->placed;
    out->answered = l->answered;
    out->completed = l->completed;
    out->failed = l->failed;
    out->active = l->active;
    out->retransmissions = e->retransmissions - l->rtx_base;
    uint64_t end = (l->running || l->active || l->t_last_end_us == 0) ? now_us() : l->t_last_end_us;
    out->elapsed_s = (double)(end - l->t_start_us) / 1e6;
    out->nfail = l->nfail;
    memcpy(out->fail, l->fail, sizeof(out->fail));
    uint64_t total = 0;
    for (size_t b = 0; b < HIST_BUCKETS; b++)
        total += l->hist[b];
    out->setup_p50_ms = percentile(l, total, 0.50);
    out->setup_p95_ms = percentile(l, total, 0.95);
    out->setup_p99_ms = percentile(l, total, 0.99);
    out->setup_max_ms = (double)l->setup_max_us / 1000.0;
    pthread_mutex_unlock(&e->lock);
    return 0;
}
