/* Character classes and small slice helpers shared by the csrc/sip parsers.
 * Internal to csrc/sip: not part of the public interface in sipmsg.h. */
#ifndef PYSIPTEST_SIP_SIP_LEX_H
#define PYSIPTEST_SIP_SIP_LEX_H

#include <string.h>

#include "sip/sipmsg.h"

static inline int sip_lex_ws(char c)
{
    return c == ' ' || c == '\t';
}

static inline int sip_lex_lws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static inline int sip_lex_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline int sip_lex_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline char sip_lex_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* RFC 3261 token: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" */
static inline int sip_lex_token(char ch)
{
    unsigned char c = (unsigned char)ch;
    if (sip_lex_alpha((char)c) || sip_lex_digit((char)c))
        return 1;
    return c != 0 && strchr("-.!%*_+`'~", c) != NULL;
}

/* The slice without leading and trailing LWS (SP, HTAB, CR, LF). */
static inline struct sip_str sip_lex_trim(struct sip_str s)
{
    while (s.len && sip_lex_lws(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len && sip_lex_lws(s.p[s.len - 1]))
        s.len--;
    return s;
}

/* Fill err (if non-NULL) and return code. Defined in sipmsg.c. */
int sip_error_set(struct sip_error *err, int code, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
