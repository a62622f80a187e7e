/* Option tags, RSeq/RAck (RFC 3262) and Session-Expires/Min-SE (RFC 4028) header views. */
#include "sip_ext.h"

#include <errno.h>

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static struct sip_str trim(struct sip_str s)
{
    while (s.len && is_ws(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len && is_ws(s.p[s.len - 1]))
        s.len--;
    return s;
}

/* Digits at the front of *s (at most 10), consumed; the value must fit 31 bits. */
static int take_num(struct sip_str *s, uint32_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < s->len && s->p[i] >= '0' && s->p[i] <= '9') {
        if (i >= 10)
            return -EBADMSG;
        v = v * 10 + (uint64_t)(s->p[i] - '0');
        i++;
    }
    if (i == 0 || v > 0x7fffffffu)
        return -EBADMSG;
    s->p += i;
    s->len -= i;
    *out = (uint32_t)v;
    return 0;
}

static size_t skip_ws(struct sip_str *s)
{
    size_t n = 0;
    while (s->len && is_ws(s->p[0])) {
        s->p++;
        s->len--;
        n++;
    }
    return n;
}

int sip_has_option_tag(const struct sipmsg *m, enum sip_hdr_id id, const char *tag)
{
    size_t pos = 0;
    const struct sip_hdr *h;
    while ((h = sipmsg_find(m, id, NULL, &pos)) != NULL) {
        struct sip_str rest = h->value, el;
        while (sip_list_next(&rest, &el) == 0) {
            if (sip_str_ieqc(trim(el), tag))
                return 1;
        }
    }
    return 0;
}

int sip_rseq_parse(struct sip_str in, uint32_t *rseq)
{
    struct sip_str s = trim(in);
    uint32_t v;
    if (take_num(&s, &v) < 0 || s.len != 0 || v == 0)
        return -EBADMSG;
    *rseq = v;
    return 0;
}

int sip_rack_parse(struct sip_str in, struct sip_rack *out)
{
    struct sip_str s = trim(in);
    if (take_num(&s, &out->rseq) < 0 || out->rseq == 0 || skip_ws(&s) == 0 || take_num(&s, &out->cseq) < 0 ||
        skip_ws(&s) == 0 || s.len == 0)
        return -EBADMSG;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '.' || c == '!' || c == '%' || c == '*' || c == '_' || c == '+' || c == '`' || c == '\'' ||
              c == '~'))
            return -EBADMSG;
    }
    out->method = s;
    return 0;
}

int sip_session_expires_parse(struct sip_str in, struct sip_session_expires *out)
{
    struct sip_str s = trim(in);
    out->refresher = SIP_REFRESHER_NONE;
    if (take_num(&s, &out->delta) < 0 || out->delta == 0)
        return -EBADMSG;
    skip_ws(&s);
    if (s.len == 0)
        return 0;
    if (s.p[0] != ';')
        return -EBADMSG;
    struct sip_str name, val;
    while (sip_param_next(&s, &name, &val) == 0) {
        if (!sip_str_ieqc(name, "refresher"))
            continue;
        if (sip_str_ieqc(val, "uac"))
            out->refresher = SIP_REFRESHER_UAC;
        else if (sip_str_ieqc(val, "uas"))
            out->refresher = SIP_REFRESHER_UAS;
        else
            return -EBADMSG;
    }
    return 0;
}
