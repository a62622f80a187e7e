/* Message trace (opt-in): a bounded ring with one summary line per SIP message sent or received.
 *
 * Off by default: then e->trace is NULL and each send or receive costs one pointer test.  When on, each
 * message costs one scan of its header section (bounded by its length) and a few bounded copies into a
 * fixed-size slot; the oldest entry is overwritten when the ring is full.  It is meant for failure reports
 * (the SIP ladder of a scenario), not for capturing whole messages.  Called with engine->lock held. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine_int.h"

#define TRACE_MAX_CAPACITY 65536u

struct engine_trace {
    size_t cap;
    size_t next;   /* slot the next entry goes to */
    uint64_t seq;  /* entries recorded so far (the newest has seq - 1) */
    struct engine_trace_entry *ring;
};

/* Copy at most n bytes of src (len bytes) into dst (dsize bytes), NUL-terminated, control characters as '?'. */
static void copy_printable(char *dst, size_t dsize, const char *src, size_t len)
{
    size_t n = len < dsize - 1 ? len : dsize - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    dst[n] = '\0';
}

/* 1 when the header line [p, p+len) is named name (case-insensitive) or its compact form, followed by ':' */
static int header_value(const char *p, size_t len, const char *name, const char *compact, const char **v,
                        size_t *vlen)
{
    size_t i = 0;
    while (i < len && p[i] != ':')
        i++;
    if (i == len)
        return 0;
    size_t nlen = i;
    while (nlen > 0 && (p[nlen - 1] == ' ' || p[nlen - 1] == '\t'))
        nlen--;
    int match = (strlen(name) == nlen && strncasecmp(p, name, nlen) == 0) ||
                (compact != NULL && strlen(compact) == nlen && strncasecmp(p, compact, nlen) == 0);
    if (!match)
        return 0;
    i++;
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
        i++;
    *v = p + i;
    *vlen = len - i;
    return 1;
}

int engine_trace_enable(struct engine *e, size_t capacity)
{
    if (capacity > TRACE_MAX_CAPACITY)
        return -EINVAL;
    struct engine_trace *t = NULL;
    if (capacity > 0) {
        t = calloc(1, sizeof(*t));
        if (t == NULL)
            return -ENOMEM;
        t->ring = calloc(capacity, sizeof(*t->ring));
        if (t->ring == NULL) {
            free(t);
            return -ENOMEM;
        }
        t->cap = capacity;
    }
    pthread_mutex_lock(&e->lock);
    struct engine_trace *old = e->trace;
    e->trace = t;
    pthread_mutex_unlock(&e->lock);
    engine_trace_free_ring(old);
    return 0;
}

void engine_trace_free_ring(struct engine_trace *t)
{
    if (t == NULL)
        return;
    free(t->ring);
    free(t);
}

void engine_trace_record(struct engine *e, uint32_t transport_id, int outgoing, const struct netaddr *peer,
                         const char *data, size_t len)
{
    struct engine_trace *t = e->trace;
    if (t == NULL || data == NULL)
        return;
    size_t i = 0;
    while (i < len && (data[i] == '\r' || data[i] == '\n'))
        i++;
    if (i == len)
        return; /* a keep-alive */
    struct engine_trace_entry *x = &t->ring[t->next];
    memset(x, 0, sizeof(*x));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    x->t_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    x->seq = t->seq;
    x->transport_id = transport_id;
    x->outgoing = outgoing;
    x->len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    if (peer != NULL) {
        netaddr_format(peer, x->peer_host, sizeof(x->peer_host), &x->peer_port);
    }
    /* the start line, then the header lines up to the empty line */
    int first = 1;
    while (i < len) {
        const char *eol = memchr(data + i, '\n', len - i);
        size_t end = eol ? (size_t)(eol - data) : len;
        size_t llen = end - i;
        if (llen > 0 && data[i + llen - 1] == '\r')
            llen--;
        if (llen == 0)
            break;
        const char *v;
        size_t vlen;
        if (first) {
            copy_printable(x->first_line, sizeof(x->first_line), data + i, llen);
            first = 0;
        } else if (header_value(data + i, llen, "Call-ID", "i", &v, &vlen)) {
            copy_printable(x->call_id, sizeof(x->call_id), v, vlen);
        } else if (header_value(data + i, llen, "CSeq", NULL, &v, &vlen)) {
            copy_printable(x->cseq, sizeof(x->cseq), v, vlen);
        }
        i = end + 1;
    }
    t->next = (t->next + 1) % t->cap;
    t->seq++;
}

int engine_trace_snapshot(struct engine *e, uint32_t transport_id, struct engine_trace_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&e->lock);
    struct engine_trace *t = e->trace;
    if (t == NULL) {
        pthread_mutex_unlock(&e->lock);
        return -ENOENT;
    }
    size_t have = t->seq < t->cap ? (size_t)t->seq : t->cap;
    struct engine_trace_entry *v = have ? malloc(have * sizeof(*v)) : NULL;
    if (have && v == NULL) {
        pthread_mutex_unlock(&e->lock);
        return -ENOMEM;
    }
    size_t start = (t->next + t->cap - have) % t->cap, k = 0;
    for (size_t j = 0; j < have; j++) {
        const struct engine_trace_entry *x = &t->ring[(start + j) % t->cap];
        if (transport_id == 0 || x->transport_id == transport_id)
            v[k++] = *x;
    }
    pthread_mutex_unlock(&e->lock);
    *out = v;
    *n = k;
    return 0;
}
