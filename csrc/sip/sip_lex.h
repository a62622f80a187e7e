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
static const unsigned char sip_lex_token_table[256] = {
    ['!'] = 1, ['%'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1, ['`'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
    ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
    ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static inline int sip_lex_token(char ch)
{
    return sip_lex_token_table[(unsigned char)ch];
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
