/* Numeric socket addresses (csrc/net/netaddr.c): the hand-written IPv4 formatter against inet_ntop for every
 * digit count, IPv6, ports, and short output buffers. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "net/netaddr.h"

static void test_ipv4_format_matches_inet_ntop(void)
{
    static const char *addrs[] = {"0.0.0.0", "127.0.0.1", "255.255.255.255", "10.0.100.9", "1.22.133.4",
                                  "192.168.1.10", "99.100.101.9"};
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        struct netaddr a;
        CHECK(netaddr_set(&a, addrs[i], 5060) == 0);
        char h[64], ref[64];
        uint16_t port = 0;
        netaddr_format(&a, h, sizeof(h), &port);
        inet_ntop(AF_INET, &((struct sockaddr_in *)&a.ss)->sin_addr, ref, sizeof(ref));
        CHECK(strcmp(h, ref) == 0);
        CHECK(strcmp(h, addrs[i]) == 0);
        CHECK_EQ_INT(port, 5060);
    }
}

static void test_ipv4_format_into_a_short_buffer_is_empty_not_truncated(void)
{
    struct netaddr a;
    CHECK(netaddr_set(&a, "255.255.255.255", 1) == 0);
    char h[8] = "xxxxxxx";
    netaddr_format(&a, h, sizeof(h), NULL);
    CHECK(h[0] == '\0');
    char exact[16];
    netaddr_format(&a, exact, sizeof(exact), NULL);
    CHECK(strcmp(exact, "255.255.255.255") == 0);
}

static void test_set_port_and_ipv6(void)
{
    struct netaddr a;
    CHECK(netaddr_set(&a, "[::1]", 5060) == 0);
    netaddr_set_port(&a, 5070);
    char h[64];
    uint16_t port = 0;
    netaddr_format(&a, h, sizeof(h), &port);
    CHECK(strcmp(h, "::1") == 0);
    CHECK_EQ_INT(port, 5070);
    CHECK(netaddr_set(&a, "127.0.0.1", 1) == 0);
    netaddr_set_port(&a, 65535);
    CHECK_EQ_INT(netaddr_port(&a), 65535);
}

int main(void)
{
    RUN(test_ipv4_format_matches_inet_ntop);
    RUN(test_ipv4_format_into_a_short_buffer_is_empty_not_truncated);
    RUN(test_set_port_and_ipv6);
    return CHECK_SUMMARY();
}
