/* Parse rate of the SIP message core against libosip2 on one message file.
 *   bench/parse_bench FILE [N]
 * parses FILE N times (default 200000) with sipmsg_parse (every header indexed and the RFC 3261 checks, which
 * parse Via, From, To, Contact and CSeq), then N times with libosip2's osip_message_parse (which parses every
 * header into its structures), and prints both rates and their ratio; the last line is "msgs/s: X" (ours).
 * Build with `make -C bench parse`. Figures, not a test: nothing here gates CI. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sip/sipmsg.h"

#ifdef HAVE_OSIP
#include <osipparser2/osip_parser.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [N]\n", argv[0]);
        return 2;
    }
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 200000;
    if (n <= 0)
        n = 1;
    size_t len = 0;
    char *data = read_file(argv[1], &len);
    if (data == NULL) {
        perror(argv[1]);
        return 2;
    }
    struct sip_error err;
    struct sipmsg *m = NULL;
    if (sipmsg_parse(data, len, NULL, &m, &err) < 0) {
        fprintf(stderr, "%s does not parse: %s (at byte %zu)\n", argv[1], err.reason, err.offset);
        return 1;
    }
    size_t nh = m->nhdrs;
    sipmsg_free(m);
    /* the two loops alternate in ROUNDS chunks, so that a change in machine load affects both alike */
    enum { ROUNDS = 10 };
    long chunk = n / ROUNDS > 0 ? n / ROUNDS : 1;
    double t_ours = 0, t_osip = 0;
#ifdef HAVE_OSIP
    parser_init();
#endif
    for (int r = 0; r < ROUNDS; r++) {
#ifdef HAVE_OSIP
        double t0 = now();
        for (long i = 0; i < chunk; i++) {
            osip_message_t *om;
            osip_message_init(&om);
            if (osip_message_parse(om, data, len) != 0) {
                fprintf(stderr, "libosip2 cannot parse %s\n", argv[1]);
                return 1;
            }
            osip_message_free(om);
        }
        t_osip += now() - t0;
#endif
        double t1 = now();
        for (long i = 0; i < chunk; i++) {
            if (sipmsg_parse(data, len, NULL, &m, &err) < 0)
                return 1;
            sipmsg_free(m);
        }
        t_ours += now() - t1;
    }
    n = chunk * ROUNDS;
    double rate = (double)n / t_ours;
    double rate_osip = t_osip > 0 ? (double)n / t_osip : 0;
    if (rate_osip > 0)
        printf("libosip2 osip_message_parse: %.0f msgs/s\n", rate_osip);
    printf("file: %s (%zu bytes, %zu headers), %ld parses each\n", argv[1], len, nh, n);
    printf("pysiptest sipmsg_parse: %.0f msgs/s\n", rate);
    if (rate_osip > 0)
        printf("ratio vs libosip2: %.2fx\n", rate / rate_osip);
    printf("msgs/s: %.0f\n", rate);
    free(data);
    return 0;
}
