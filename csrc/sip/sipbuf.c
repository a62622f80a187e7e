/* struct sipbuf: a growable output buffer for building SIP messages.
 *
 * Capacity doubles from SIPBUF_MIN_CAP up to SIPBUF_MAX_CAP; past that an
 * append fails with -E2BIG.  The first failure sticks in b->err and makes
 * later appends no-ops, so builders check once at the end.  The content is
 * kept NUL-terminated (the NUL is not counted in len) for convenience only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip/sipmsg.h"

#define SIPBUF_MIN_CAP 256u
#define SIPBUF_MAX_CAP (1024u * 1024u)

void sipbuf_init(struct sipbuf *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->err = 0;
}

void sipbuf_free(struct sipbuf *b)
{
    free(b->p);
    sipbuf_init(b);
}

/* Make room for `more` bytes plus the trailing NUL; 0 or sets b->err. */
static int sipbuf_reserve(struct sipbuf *b, size_t more)
{
    if (b->err)
        return b->err;
    if (more > SIPBUF_MAX_CAP || b->len + more >= SIPBUF_MAX_CAP) {
        b->err = -E2BIG;
        return b->err;
    }
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : SIPBUF_MIN_CAP;
    while (cap < need)
        cap *= 2;
    if (cap > SIPBUF_MAX_CAP)
        cap = SIPBUF_MAX_CAP;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->err = -ENOMEM;
        return b->err;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void sipbuf_add(struct sipbuf *b, const void *data, size_t len)
{
    if (b->err || sipbuf_reserve(b, len) < 0)
        return;
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

void sipbuf_adds(struct sipbuf *b, struct sip_str s)
{
    sipbuf_add(b, s.p, s.len);
}

void sipbuf_addc(struct sipbuf *b, const char *c)
{
    if (c)
        sipbuf_add(b, c, strlen(c));
}

void sipbuf_addf(struct sipbuf *b, const char *fmt, ...)
{
    if (b->err)
        return;
    if (b->p == NULL && sipbuf_reserve(b, 1) < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->p + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->err = -EINVAL;
        b->p[b->len] = '\0';
        return;
    }
    if ((size_t)n >= room) {
        if (sipbuf_reserve(b, (size_t)n) < 0) {
            b->p[b->len] = '\0';
            return;
        }
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= b->cap - b->len) {
            b->err = -EINVAL;
            b->p[b->len] = '\0';
            return;
        }
    }
    b->len += (size_t)n;
}
