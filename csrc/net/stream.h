/* Sans-IO state of one stream connection (TCP or TLS): the receive buffer with SIP framing
 * (RFC 3261 18.3) and RFC 5626 keep-alives, the bounded write queue, and the idle deadline.
 *
 * No sockets and no clock: the owner appends the bytes it read, takes framed messages out, queues
 * bytes to write and tells how many the socket took; every call that marks activity takes `now`
 * (milliseconds).  Tested with plain calls in tests/c/test_stream.c. */
#ifndef PYSIPTEST_NET_STREAM_H
#define PYSIPTEST_NET_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "sip/sipmsg.h"

#define STREAM_DEFAULT_MAX_MSG 65535u
#define STREAM_DEFAULT_MAX_QUEUE (1024u * 1024u)
#define STREAM_DEFAULT_IDLE_MS 60000u

enum stream_item {
    STREAM_NONE = 0, /* nothing complete yet: read more */
    STREAM_MSG = 1,  /* one framed SIP message */
    STREAM_PING = 2, /* a CRLFCRLF keep-alive ping: answer with one CRLF (RFC 5626 4.4.1) */
};

struct stream {
    char *rx;          /* received bytes not yet taken: rx[rx_off, rx_len) */
    size_t rx_off, rx_len, rx_cap;
    size_t max_msg;    /* framing limit for one message */
    char *tx;          /* queued bytes not yet written: tx[tx_off, tx_len) */
    size_t tx_off, tx_len, tx_cap;
    size_t max_queue;  /* bound of the write queue */
    uint32_t idle_ms;  /* 0: never idle-closed */
    uint64_t last_active;
};

/* max_msg 0 = 65535, max_queue 0 = 1 MiB, idle_ms as given (0 = no idle close). */
void stream_init(struct stream *s, size_t max_msg, size_t max_queue, uint32_t idle_ms, uint64_t now);
void stream_free(struct stream *s);

/* Append received bytes (borrowed).  0 or -ENOMEM; -E2BIG when the buffer would pass max_msg plus one
 * read's worth without a whole message (a peer that never frames). */
int stream_rx_append(struct stream *s, const char *data, size_t len, uint64_t now);

/* The next item.  STREAM_MSG sets *msg and *len to a view valid until the next call on s; STREAM_PING and
 * STREAM_MSG are consumed by this call.  STREAM_NONE when more bytes are needed.  A negative value
 * (-EBADMSG, -E2BIG) means the stream cannot be framed: the owner closes the connection; err says why. */
int stream_rx_next(struct stream *s, const char **msg, size_t *len, struct sip_error *err);

/* Queue bytes to write (borrowed, copied).  0, -ENOBUFS when the queue would pass max_queue (nothing
 * queued), -ENOMEM. */
int stream_tx_queue(struct stream *s, const char *data, size_t len, uint64_t now);
/* The queued bytes not yet written (len 0 when none). */
const char *stream_tx_peek(const struct stream *s, size_t *len);
/* n bytes of the queue were written. */
void stream_tx_consume(struct stream *s, size_t n, uint64_t now);
size_t stream_tx_pending(const struct stream *s);

/* When the connection is idle enough to close: last activity + idle_ms; UINT64_MAX when idle close is
 * off.  A connection with bytes waiting to be written is not idle. */
uint64_t stream_idle_deadline(const struct stream *s);
int stream_is_idle(const struct stream *s, uint64_t now);

#endif
