/* libFuzzer target for the SIP message core: sipmsg_parse, every typed view on every header, stream framing
 * (sipmsg_frame) and the URI parser on the raw input. Built by fuzz/Makefile with
 * clang -fsanitize=fuzzer,address,undefined; seeded from the shared corpus (see docs/fuzzing.md). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sip/sipmsg.h"

/* Touch every byte of a slice, so that a slice pointing outside the buffer trips ASan. */
static volatile unsigned char sink;
static void touch(struct sip_str s)
{
    for (size_t i = 0; i < s.len; i++)
        sink ^= (unsigned char)s.p[i];
}

static void views_of_value(struct sip_str v)
{
    struct sip_error err;
    struct sip_uri u;
    struct sip_via via;
    struct sip_nameaddr na;
    struct sip_cseq cs;
    struct sip_str rest = v, elem, name, val;
    int guard = 0;
    while (sip_list_next(&rest, &elem) == 0 && guard++ < 64) {
        touch(elem);
        if (sip_via_parse(elem, &via, &err) == 0) {
            touch(via.protocol), touch(via.transport), touch(via.host), touch(via.params);
            touch(via.branch), touch(via.received);
        }
        if (sip_nameaddr_parse(elem, &na, &err) == 0) {
            touch(na.display), touch(na.uri), touch(na.params), touch(na.tag);
            if (sip_uri_parse(na.uri, &u, &err) == 0) {
                touch(u.scheme), touch(u.user), touch(u.password), touch(u.host), touch(u.params), touch(u.headers);
                struct sip_str pr = u.params;
                int g2 = 0;
                while (sip_param_next(&pr, &name, &val) == 0 && g2++ < 64)
                    touch(name), touch(val);
            }
            struct sip_str pr = na.params;
            int g2 = 0;
            while (sip_param_next(&pr, &name, &val) == 0 && g2++ < 64)
                touch(name), touch(val);
        }
    }
    if (sip_cseq_parse(v, &cs, &err) == 0)
        touch(cs.method);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    struct sip_error err;
    struct sipmsg *m = NULL;
    /* the index alone on odd inputs, then the full checks (views over every header) */
    struct sipmsg_limits syntax = {.max_size = 0, .max_headers = 64, .flags = SIPMSG_SYNTAX_ONLY};
    struct sipmsg_limits lim = {.max_size = 0, .max_headers = 64, .flags = 0};
    if (sipmsg_parse(d, size, (size & 1) ? &syntax : &lim, &m, &err) == 0) {
        touch(m->method), touch(m->uri), touch(m->reason), touch(m->version), touch(m->body);
        for (size_t i = 0; i < m->nhdrs; i++) {
            touch(m->hdrs[i].name);
            touch(m->hdrs[i].value);
            views_of_value(m->hdrs[i].value);
        }
        if (m->is_request) {
            struct sip_uri u;
            sip_uri_parse(m->uri, &u, &err);
        }
        struct sip_via top;
        sipmsg_top_via(m, &top, &err);
        sipmsg_find(m, SIP_HDR_OTHER, "X-Unknown", NULL);
        sipmsg_free(m);
    } else {
        err.reason[sizeof err.reason - 1] = '\0';
        sink ^= (unsigned char)strlen(err.reason);
    }
    /* stream framing over the same bytes: frame message after message */
    size_t off = 0;
    for (int n = 0; n < 16 && off <= size; n++) {
        size_t skip = 0, mlen = 0;
        if (sipmsg_frame(d + off, size - off, 4096, &skip, &mlen, &err) != 0)
            break;
        if (skip + mlen == 0 || off + skip + mlen > size)
            __builtin_trap(); /* framing must stay inside the data and make progress */
        struct sipmsg *fm = NULL;
        if (sipmsg_parse(d + off + skip, mlen, NULL, &fm, &err) == 0)
            sipmsg_free(fm);
        off += skip + mlen;
    }
    /* the URI parser on the raw input */
    if (size < 1024) {
        struct sip_uri u;
        sip_uri_parse((struct sip_str){d, size}, &u, &err);
    }
    return 0;
}
