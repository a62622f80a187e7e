#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

int netaddr_setn(struct netaddr *a, const char *host, size_t hostlen, uint16_t port)
{
    char buf[INET6_ADDRSTRLEN + 1];
    if (host == NULL)
        return -EINVAL;
    if (hostlen >= 2 && host[0] == '[' && host[hostlen - 1] == ']') {
        host++;
        hostlen -= 2;
    }
    if (hostlen == 0 || hostlen >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, host, hostlen);
    buf[hostlen] = '\0';
    memset(a, 0, sizeof(*a));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->ss;
    if (inet_pton(AF_INET, buf, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a->len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, buf, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a->len = sizeof(*v6);
        return 0;
    }
    return -EINVAL;
}

int netaddr_set(struct netaddr *a, const char *host, uint16_t port)
{
    if (host == NULL)
        return -EINVAL;
    return netaddr_setn(a, host, strnlen(host, INET6_ADDRSTRLEN + 3), port);
}

/* Dotted quad without inet_ntop (glibc formats it with sprintf; this runs for every response). */
static void format_v4(const unsigned char *b, char *host, size_t hostlen)
{
    char t[16];
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            t[n++] = (char)('0' + v / 100);
        if (v >= 10)
            t[n++] = (char)('0' + v / 10 % 10);
        t[n++] = (char)('0' + v % 10);
        t[n++] = i < 3 ? '.' : '\0';
    }
    if (n <= hostlen)
        memcpy(host, t, n);
}

void netaddr_set_port(struct netaddr *a, uint16_t port)
{
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
    else if (a->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
}

void netaddr_format(const struct netaddr *a, char *host, size_t hostlen, uint16_t *port)
{
    if (host && hostlen)
        host[0] = '\0';
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&a->ss;
        if (host)
            format_v4((const unsigned char *)&v4->sin_addr, host, hostlen);
        if (port)
            *port = ntohs(v4->sin_port);
    } else if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&a->ss;
        if (host)
            inet_ntop(AF_INET6, &v6->sin6_addr, host, (socklen_t)hostlen);
        if (port)
            *port = ntohs(v6->sin6_port);
    } else if (port) {
        *port = 0;
    }
}

uint16_t netaddr_port(const struct netaddr *a)
{
    uint16_t p = 0;
    netaddr_format(a, NULL, 0, &p);
    return p;
}

int netaddr_is_ipv6(const struct netaddr *a)
{
    return a->ss.ss_family == AF_INET6;
}

int netaddr_eq(const struct netaddr *a, const struct netaddr *b)
{
    if (a->ss.ss_family != b->ss.ss_family)
        return 0;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->ss, *y = (const struct sockaddr_in *)&b->ss;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->ss, *y = (const struct sockaddr_in6 *)&b->ss;
        return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}
