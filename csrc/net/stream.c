/* Stream connection state: receive framing, keep-alives, bounded write queue, idle deadline. */
#include "net/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void stream_init(struct stream *s, size_t max_msg, size_t max_queue, uint32_t idle_ms, uint64_t now)
{
    memset(s, 0, sizeof(*s));
    s->max_msg = max_msg ? max_msg : STREAM_DEFAULT_MAX_MSG;
    s->max_queue = max_queue ? max_queue : STREAM_DEFAULT_MAX_QUEUE;
    s->idle_ms = idle_ms;
    s->last_active = now;
}

void stream_free(struct stream *s)
{
    free(s->rx);
    free(s->tx);
    s->rx = s->tx = NULL;
    s->rx_off = s->rx_len = s->rx_cap = 0;
    s->tx_off = s->tx_len = s->tx_cap = 0;
}

/* Make room for `need` more bytes after len in buf, moving live bytes [*off, *len) to the front first. */
static int reserve(char **buf, size_t *off, size_t *len, size_t *cap, size_t need)
{
    if (*off > 0) {
        memmove(*buf, *buf + *off, *len - *off);
        *len -= *off;
        *off = 0;
    }
    if (*cap - *len >= need)
        return 0;
    size_t ncap = *cap ? *cap : 4096;
    while (ncap - *len < need) {
        if (ncap > SIZE_MAX / 2)
            return -ENOMEM;
        ncap *= 2;
    }
    char *p = realloc(*buf, ncap);
    if (p == NULL)
        return -ENOMEM;
    *buf = p;
    *cap = ncap;
    return 0;
}

int stream_rx_append(struct stream *s, const char *data, size_t len, uint64_t now)
{
    if (len == 0)
        return 0;
    s->last_active = now;
    size_t live = s->rx_len - s->rx_off;
    /* one message plus what one more read may bring: anything past that is a peer that never frames */
    if (live + len > s->max_msg + 65536u)
        return -E2BIG;
    int rc = reserve(&s->rx, &s->rx_off, &s->rx_len, &s->rx_cap, len);
    if (rc < 0)
        return rc;
    memcpy(s->rx + s->rx_len, data, len);
    s->rx_len += len;
    return 0;
}

int stream_rx_next(struct stream *s, const char **msg, size_t *len, struct sip_error *err)
{
    *msg = NULL;
    *len = 0;
    for (;;) {
        const char *p = s->rx + s->rx_off;
        size_t avail = s->rx_len - s->rx_off;
        if (avail == 0)
            return STREAM_NONE;
        if (p[0] != '\r' && p[0] != '\n')
            break;
        /* keep-alives: CRLFCRLF is a ping, a lone CRLF a pong (RFC 5626 3.5.1); stray CR/LF are skipped */
        if (avail >= 4 && memcmp(p, "\r\n\r\n", 4) == 0) {
            s->rx_off += 4;
            return STREAM_PING;
        }
        if (avail >= 2 && p[0] == '\r' && p[1] == '\n') {
            if (avail < 4 && (avail == 2 || p[2] == '\r'))
                return STREAM_NONE; /* maybe the first half of a ping: wait */
            s->rx_off += 2;
            continue;
        }
        if (avail == 1 && p[0] == '\r')
            return STREAM_NONE;
        s->rx_off += 1;
    }
    size_t skip = 0, mlen = 0;
    int rc = sipmsg_frame(s->rx + s->rx_off, s->rx_len - s->rx_off, s->max_msg, &skip, &mlen, err);
    if (rc == -ENODATA)
        return STREAM_NONE;
    if (rc < 0)
        return rc;
    *msg = s->rx + s->rx_off + skip;
    *len = mlen;
    s->rx_off += skip + mlen;
    if (s->rx_off == s->rx_len)
        s->rx_off = s->rx_len = 0; /* the view stays valid: nothing is moved until the next append */
    return STREAM_MSG;
}

int stream_tx_queue(struct stream *s, const char *data, size_t len, uint64_t now)
{
    if (len == 0)
        return 0;
    if (s->tx_len - s->tx_off + len > s->max_queue)
        return -ENOBUFS;
    int rc = reserve(&s->tx, &s->tx_off, &s->tx_len, &s->tx_cap, len);
    if (rc < 0)
        return rc;
    memcpy(s->tx + s->tx_len, data, len);
    s->tx_len += len;
    s->last_active = now;
    return 0;
}

const char *stream_tx_peek(const struct stream *s, size_t *len)
{
    *len = s->tx_len - s->tx_off;
    return *len ? s->tx + s->tx_off : NULL;
}

void stream_tx_consume(struct stream *s, size_t n, uint64_t now)
{
    size_t live = s->tx_len - s->tx_off;
    if (n > live)
        n = live;
    s->tx_off += n;
    if (s->tx_off == s->tx_len)
        s->tx_off = s->tx_len = 0;
    if (n)
        s->last_active = now;
}

size_t stream_tx_pending(const struct stream *s)
{
    return s->tx_len - s->tx_off;
}

uint64_t stream_idle_deadline(const struct stream *s)
{
    if (s->idle_ms == 0)
        return UINT64_MAX;
    return s->last_active + s->idle_ms;
}

int stream_is_idle(const struct stream *s, uint64_t now)
{
    return stream_tx_pending(s) == 0 && now >= stream_idle_deadline(s);
}
