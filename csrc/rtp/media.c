/* The RTP media engine: one thread, one timer wheel, many streams; see media.h.
 * This file holds the engine (create, shut down, free), its thread's loop and the hand-over of commands;
 * media_cmd.c runs the commands, media_stream.c is the stream API other threads call, media_tx.c and
 * media_rx.c are the send and receive paths.
 *
 * The media thread owns the epoll set, the timer wheel, and every stream's
 * sending and receiving state.  Other threads reach it only through commands
 * (struct media_cmd) that they queue under cmd_lock and wait for: a command
 * lives on the caller's stack and is finished when the media thread sets its
 * `done` flag under cmd_lock.  Statistics are the one piece of stream state
 * that other threads read; the media thread writes them, and the stream
 * table, under table_lock.  The two locks are never held together.
 */
#include "rtp/media.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rtp/media_int.h"

#define MEDIA_EVENTS 256 /* ready sockets taken per epoll_wait */
#define MEDIA_RX_BETWEEN_TIMERS 8 /* sockets read between two looks at the clock */
#define MEDIA_BUCKETS_MIN 64
#define MEDIA_MAX_WAIT_NS 1000000000u /* wake at least once a second */
#define MEDIA_SLICE_NS 100000u         /* the fair scheduler's shortest slice, 0.1 ms */

/* epoll_pwait2 (glibc 2.35, Linux 5.11) takes a nanosecond timeout, so that packets leave on the
 * millisecond they are due rather than up to a millisecond later; epoll_wait is the fallback. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define MEDIA_HAVE_EPOLL_PWAIT2 1
#else
#define MEDIA_HAVE_EPOLL_PWAIT2 0
#endif

/* Write a reason into the caller's buffer (may be NULL); e != 0 appends strerror(e). */
void media_set_err(char *err, size_t errlen, int e, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (e)
        snprintf(err, errlen, "%s: %s", what, strerror(e));
    else
        snprintf(err, errlen, "%s", what);
}


/* Wait for sockets or commands until the wheel's next due millisecond (TWHEEL_NEVER: no timer). */
static int media_wait(struct media *m, struct epoll_event *evs, int nevs, uint64_t due_ms)
{
    if (due_ms == TWHEEL_NEVER)
        return epoll_wait(m->epfd, evs, nevs, (int)(MEDIA_MAX_WAIT_NS / 1000000u));
    uint64_t now_ns = media_mono_ns();
    uint64_t due_ns = due_ms * 1000000u;
    uint64_t wait_ns = due_ns > now_ns ? due_ns - now_ns : 0;
    if (wait_ns > MEDIA_MAX_WAIT_NS)
        wait_ns = MEDIA_MAX_WAIT_NS;
#if MEDIA_HAVE_EPOLL_PWAIT2
    if (!m->no_pwait2) {
        struct timespec ts = {(time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u)};
        int n = epoll_pwait2(m->epfd, evs, nevs, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        m->no_pwait2 = 1;
    }
#endif
    return epoll_wait(m->epfd, evs, nevs, (int)((wait_ns + 999999u) / 1000000u)); /* rounded up: never early */
}

/* Ask the fair scheduler (EEVDF, Linux 6.6+) for a short time slice for this thread: its deadline then comes
 * early, so that when it wakes for a packet it preempts a busy process at once instead of waiting up to a
 * default slice (about 3 ms).  It runs briefly at each wake-up anyway.  Normal priority, no privilege; an
 * older kernel refuses or ignores it, and nothing else changes.  A policy other than SCHED_OTHER inherited
 * from the creating thread (chrt) is kept. */
static void media_short_slice(void)
{
#ifdef SYS_sched_setattr
    if (sched_getscheduler(0) != SCHED_OTHER)
        return; /* inherited a real-time (or batch, idle) policy: keep it */
    struct { /* the kernel's struct sched_attr, first version (glibc has no wrapper) */
        uint32_t size, sched_policy;
        uint64_t sched_flags;
        int32_t sched_nice;
        uint32_t sched_priority;
        uint64_t sched_runtime, sched_deadline, sched_period;
    } attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.sched_policy = SCHED_OTHER;
    attr.sched_runtime = MEDIA_SLICE_NS;
    (void)syscall(SYS_sched_setattr, 0, &attr, 0u);
#endif
}

static void *media_thread_main(void *arg)
{
    struct media *m = arg;
    struct epoll_event evs[MEDIA_EVENTS];
    /* wake-ups within a microsecond of the deadline (the default slack is 50 us) */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
    media_short_slice();
    twheel_init(&m->wheel, media_mono_ms());
    /* media_new waits for this: a set_realtime after it cannot be undone by the prologue above */
    pthread_mutex_lock(&m->cmd_lock);
    m->started = 1;
    pthread_cond_broadcast(&m->cmd_cond);
    pthread_mutex_unlock(&m->cmd_lock);
    for (;;) {
        m->round++;
        uint64_t now = media_mono_ms();
        struct twheel_timer *t;
        while ((t = twheel_pop(&m->wheel, now)) != NULL)
            media_tx_timer(m, t->arg, t, now);
        media_tx_flush(m); /* every packet of this millisecond */
        int n = media_wait(m, evs, MEDIA_EVENTS, twheel_next_due(&m->wheel));
        if (n < 0)
            continue; /* EINTR; nothing else can fail on a valid epoll fd */
        int commands = 0;
        /* Sockets first, then commands: a CLOSE frees a stream that a later event could name. */
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                commands = 1;
            else
                media_rx_ready(m, evs[i].data.ptr);
            /* a long batch of reads must not make packets late: every few sockets, send what fell due */
            if ((i + 1) % MEDIA_RX_BETWEEN_TIMERS == 0 && media_mono_ms() != now) {
                now = media_mono_ms();
                while ((t = twheel_pop(&m->wheel, now)) != NULL)
                    media_tx_timer(m, t->arg, t, now);
                media_tx_flush(m);
            }
        }
        media_tx_flush(m); /* the echoes; before commands, which may free a queued packet's stream */
        if (commands) {
            uint64_t v;
            while (read(m->evfd, &v, sizeof v) < 0 && errno == EINTR) {
            }
            if (media_process_commands(m))
                break;
        }
    }
    /* Stopping: forget every stream. */
    pthread_mutex_lock(&m->table_lock);
    m->closed = 1;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct media_stream *s = m->buckets[i];
        while (s != NULL) {
            struct media_stream *next = s->hnext;
            media_stream_destroy(m, s);
            s = next;
        }
        m->buckets[i] = NULL;
    }
    m->count = 0;
    pthread_mutex_unlock(&m->table_lock);
    return NULL;
}

/* Queue the n commands of cmds with one wake-up, and wait until the
 * media thread has run them all: one hand-over instead of one per command, which is what makes starting
 * thousands of streams quick on a loaded machine.  0, or -ESHUTDOWN (then none was queued). */
int media_submit_many(struct media *m, struct media_cmd *cmds, size_t n)
{
    pthread_mutex_lock(&m->cmd_lock);
    if (m->stopping) {
        pthread_mutex_unlock(&m->cmd_lock);
        return -ESHUTDOWN;
    }
    for (size_t i = 0; i < n; i++) {
        struct media_cmd *c = &cmds[i];
        c->next = NULL;
        c->done = 0;
        c->result = 0;
        if (m->cmd_tail)
            m->cmd_tail->next = c;
        else
            m->cmd_head = c;
        m->cmd_tail = c;
    }
    pthread_mutex_unlock(&m->cmd_lock);
    uint64_t one = 1;
    while (write(m->evfd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&m->cmd_lock);
    for (size_t i = 0; i < n; i++)
        while (!cmds[i].done)
            pthread_cond_wait(&m->cmd_cond, &m->cmd_lock);
    pthread_mutex_unlock(&m->cmd_lock);
    return 0;
}

/* Queue c and wait until the media thread has run it. */
int media_submit(struct media *m, struct media_cmd *c)
{
    int r = media_submit_many(m, c, 1);
    return r < 0 ? r : c->result;
}

/* ---- public API ---- */

struct media *media_new(char *err, size_t errlen)
{
    struct media *m = calloc(1, sizeof *m);
    if (m == NULL) {
        media_set_err(err, errlen, 0, "no memory for the media engine");
        return NULL;
    }
    m->epfd = -1;
    m->evfd = -1;
    m->next_id = 1;
    m->nbuckets = MEDIA_BUCKETS_MIN;
    media_rx_init(m);
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    int locks = 0;
    if (m->buckets == NULL) {
        media_set_err(err, errlen, 0, "no memory for the stream table");
        goto fail;
    }
    if (pthread_mutex_init(&m->cmd_lock, NULL) != 0)
        goto fail_lock;
    locks = 1;
    if (pthread_mutex_init(&m->table_lock, NULL) != 0)
        goto fail_lock;
    locks = 2;
    if (pthread_cond_init(&m->cmd_cond, NULL) != 0)
        goto fail_lock;
    locks = 3;
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (m->epfd < 0) {
        media_set_err(err, errlen, errno, "epoll_create1");
        goto fail;
    }
    m->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->evfd < 0) {
        media_set_err(err, errlen, errno, "eventfd");
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->evfd, &ev) < 0) {
        media_set_err(err, errlen, errno, "epoll_ctl");
        goto fail;
    }
    /* The media thread takes no signals: they belong to the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&m->thread, NULL, media_thread_main, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        media_set_err(err, errlen, r, "cannot start the media thread");
        goto fail;
    }
    pthread_setname_np(m->thread, "pysip-media"); /* found by name for CPU figures */
    pthread_mutex_lock(&m->cmd_lock);
    while (!m->started)
        pthread_cond_wait(&m->cmd_cond, &m->cmd_lock);
    pthread_mutex_unlock(&m->cmd_lock);
    return m;

fail_lock:
    media_set_err(err, errlen, 0, "cannot initialise the media engine's locks");
fail:
    if (m->evfd >= 0)
        close(m->evfd);
    if (m->epfd >= 0)
        close(m->epfd);
    if (locks >= 3)
        pthread_cond_destroy(&m->cmd_cond);
    if (locks >= 2)
        pthread_mutex_destroy(&m->table_lock);
    if (locks >= 1)
        pthread_mutex_destroy(&m->cmd_lock);
    free(m->buckets);
    free(m);
    return NULL;
}

int media_set_realtime(struct media *m, int priority, char *err, size_t errlen)
{
    if (m == NULL || priority < 0 || priority > 99) {
        media_set_err(err, errlen, 0, "priority must be 0 (normal scheduling) or 1..99 (SCHED_FIFO)");
        return -EINVAL;
    }
    struct sched_param sp;
    memset(&sp, 0, sizeof sp);
    sp.sched_priority = priority;
    /* under cmd_lock: media_shutdown joins the thread only after it set `stopping` under this lock */
    pthread_mutex_lock(&m->cmd_lock);
    int r = m->stopping ? ESHUTDOWN : pthread_setschedparam(m->thread, priority ? SCHED_FIFO : SCHED_OTHER, &sp);
    pthread_mutex_unlock(&m->cmd_lock);
    if (r == ESHUTDOWN)
        media_set_err(err, errlen, 0, "the media engine is closed");
    else if (r != 0)
        media_set_err(err, errlen, r, "cannot set the media thread's scheduling (SCHED_FIFO needs CAP_SYS_NICE)");
    return -r;
}

void media_shutdown(struct media *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->cmd_lock);
    int already = m->stopping;
    m->stopping = 1;
    pthread_mutex_unlock(&m->cmd_lock);
    if (already)
        return;
    uint64_t one = 1;
    while (write(m->evfd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    pthread_join(m->thread, NULL);
}

void media_free(struct media *m)
{
    if (m == NULL)
        return;
    media_shutdown(m);
    close(m->evfd);
    close(m->epfd);
    pthread_cond_destroy(&m->cmd_cond);
    pthread_mutex_destroy(&m->table_lock);
    pthread_mutex_destroy(&m->cmd_lock);
    free(m->buckets);
    free(m);
}
