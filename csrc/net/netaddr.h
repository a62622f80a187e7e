/* Socket address helpers: numeric IPv4/IPv6 only (name resolution is the Python layer's job). */
#ifndef PYSIPTEST_NET_NETADDR_H
#define PYSIPTEST_NET_NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct netaddr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* host: NUL-terminated numeric address ("127.0.0.1", "::1", "[::1]"). 0 or -EINVAL. */
int netaddr_set(struct netaddr *a, const char *host, uint16_t port);
/* Same from a bounded slice (host need not be NUL-terminated). */
int netaddr_setn(struct netaddr *a, const char *host, size_t hostlen, uint16_t port);
/* Numeric host without brackets into host (hostlen bytes incl. NUL), port into *port. */
void netaddr_format(const struct netaddr *a, char *host, size_t hostlen, uint16_t *port);
uint16_t netaddr_port(const struct netaddr *a);
void netaddr_set_port(struct netaddr *a, uint16_t port);
int netaddr_is_ipv6(const struct netaddr *a);
int netaddr_eq(const struct netaddr *a, const struct netaddr *b);

#endif
