/* Stream framing of SIP messages by Content-Length (RFC 3261 section 18.3). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "sip/sip_lex.h"
#include "sip/sipmsg.h"

#define FRAME_DEFAULT_MAX 65535u

/* Is the header line [p, p+n) named Content-Length (or its compact form l)? Returns the value slice. */
static int content_length_line(const char *p, size_t n, struct sip_str *value)
{
    size_t i = 0;
    while (i < n && p[i] != ':' && !sip_lex_ws(p[i]))
        i++;
    size_t name_len = i;
    while (i < n && sip_lex_ws(p[i]))
        i++;
    if (i >= n || p[i] != ':')
        return 0;
    if (sip_hdr_id_of(p, name_len) != SIP_HDR_CONTENT_LENGTH)
        return 0;
    value->p = p + i + 1;
    value->len = n - i - 1;
    return 1;
}

int sipmsg_frame(const char *data, size_t len, size_t max_size, size_t *skip, size_t *msg_len, struct sip_error *err)
{
    if (data == NULL && len)
        return sip_error_set(err, -EINVAL, 0, "no data");
    if (max_size == 0)
        max_size = FRAME_DEFAULT_MAX;
    size_t s = 0;
    while (s < len && (data[s] == '\r' || data[s] == '\n'))
        s++;
    *skip = s;
    *msg_len = 0;
    const char *m = data + s;
    size_t avail = len - s;
    /* find the end of the header block: an empty line (CRLF CRLF, tolerating bare LF) */
    size_t hdr_end = 0, body_start = 0;
    int found = 0;
    for (size_t i = 0; i < avail && i < max_size; i++) {
        if (m[i] != '\n')
            continue;
        if (i + 1 < avail && m[i + 1] == '\n') {
            hdr_end = i + 1;
            body_start = i + 2;
            found = 1;
            break;
        }
        if (i + 2 < avail && m[i + 1] == '\r' && m[i + 2] == '\n') {
            hdr_end = i + 1;
            body_start = i + 3;
            found = 1;
            break;
        }
    }
    if (!found) {
        if (avail >= max_size)
            return sip_error_set(err, -E2BIG, s, "no end of headers within %zu bytes", max_size);
        return -ENODATA;
    }
    /* Content-Length in the header block (folded continuation lines are part of their header) */
    int have_cl = 0;
    uint64_t cl = 0;
    size_t line = 0;
    while (line < hdr_end) {
        size_t eol = line;
        while (eol < hdr_end && m[eol] != '\n')
            eol++;
        size_t n = eol - line;
        if (n && m[line + n - 1] == '\r')
            n--;
        struct sip_str v;
        if (line > 0 && n > 0 && !sip_lex_ws(m[line]) && content_length_line(m + line, n, &v)) {
            v = sip_lex_trim(v);
            if (v.len == 0 || v.len > 10)
                return sip_error_set(err, -EBADMSG, s + line, "bad Content-Length on a stream");
            uint64_t val = 0;
            for (size_t k = 0; k < v.len; k++) {
                if (!sip_lex_digit(v.p[k]))
                    return sip_error_set(err, -EBADMSG, s + line, "bad Content-Length on a stream");
                val = val * 10 + (uint64_t)(v.p[k] - '0');
            }
            if (have_cl && val != cl)
                return sip_error_set(err, -EBADMSG, s + line, "two different Content-Length values on a stream");
            have_cl = 1;
            cl = val;
        }
        line = eol + 1;
    }
    if (!have_cl)
        return sip_error_set(err, -EBADMSG, s, "message on a stream without Content-Length (RFC 3261 18.3)");
    if ((uint64_t)body_start + cl > max_size)
        return sip_error_set(err, -E2BIG, s, "message of %llu bytes exceeds the %zu-byte limit",
                             (unsigned long long)(body_start + cl), max_size);
    if (avail < body_start + cl)
        return -ENODATA;
    *msg_len = body_start + (size_t)cl;
    return 0;
}
