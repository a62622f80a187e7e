/* Unit tests of the SIP message parser, the typed views and sipbuf. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sip/sipmsg.h"

#define S(lit) ((struct sip_str){(lit), sizeof(lit) - 1})

static const char sipp_invite[] =
    "INVITE sip:service@192.168.1.2:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.1.1:5061;branch=z9hG4bK-1234-1-0\r\n"
    "From: sipp <sip:sipp@192.168.1.1:5061>;tag=1234SIPpTag001\r\n"
    "To: service <sip:service@192.168.1.2:5060>\r\n"
    "Call-ID: 1-1234@192.168.1.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: sip:sipp@192.168.1.1:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length:   133\r\n"
    "\r\n"
    "v=0\r\n"
    "o=user1 53655765 2353687637 IN IP4 192.168.1.1\r\n"
    "s=-\r\n"
    "c=IN IP4 192.168.1.1\r\n"
    "t=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n";

static const char kam_response[] =
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1a2b.0;rport=5060;received=192.0.2.7, "
    "SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKxyz\r\n"
    "Via: SIP/2.0/UDP 10.0.0.9:5080;rport;branch=z9hG4bKlast\r\n"
    "Record-Route: <sip:10.0.0.1;lr;r2=on>, <sip:10.0.0.2;transport=tcp;lr;r2=on>\r\n"
    "Record-Route: <sip:proxy.example.com;lr>\r\n"
    "From: \"Alice \\\"A\\\" Smith\" <sip:alice@example.com>;tag=abc\r\n"
    "To: <sip:bob@example.com>;tag=as1f2e3d\r\n"
    "Call-ID: kam-42@10.0.0.9\r\n"
    "CSeq: 2 INVITE\r\n"
    "Server: kamailio (5.7.0 (x86_64/linux))\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static int parse(const char *s, size_t n, struct sipmsg **m, struct sip_error *e)
{
    /* these tests are about the syntax; the RFC 3261 header checks have their own test */
    static const struct sipmsg_limits syntax_only = {0, 0, SIPMSG_SYNTAX_ONLY};
    return sipmsg_parse(s, n, &syntax_only, m, e);
}

static void test_sipp_invite_parses(void)
{
    struct sipmsg *m;
    struct sip_error e;
    CHECK_EQ_INT(parse(sipp_invite, sizeof sipp_invite - 1, &m, &e), 0);
    if (!m)
        return;
    CHECK(m->is_request);
    CHECK_STR(m->method, "INVITE");
    CHECK_STR(m->uri, "sip:service@192.168.1.2:5060");
    CHECK_STR(m->version, "SIP/2.0");
    CHECK_EQ_INT(m->nhdrs, 10);
    CHECK_EQ_INT(m->body.len, 133);
    CHECK(m->body.len >= 3 && memcmp(m->body.p, "v=0", 3) == 0);
    size_t pos = 0;
    const struct sip_hdr *h = sipmsg_find(m, SIP_HDR_CALL_ID, NULL, &pos);
    CHECK(h != NULL);
    if (h)
        CHECK_STR(h->value, "1-1234@192.168.1.1");
    h = sipmsg_find(m, SIP_HDR_SUBJECT, NULL, NULL);
    CHECK(h != NULL);
    CHECK(sipmsg_find(m, SIP_HDR_OTHER, "subject", NULL) == h); /* known name given as text */
    CHECK(sipmsg_find(m, SIP_HDR_OTHER, "s", NULL) == h);
    CHECK(sipmsg_find(m, SIP_HDR_OTHER, "X-Nope", NULL) == NULL);
    pos = 0;
    CHECK(sipmsg_find(m, SIP_HDR_RECORD_ROUTE, NULL, &pos) == NULL);
    CHECK_EQ_INT(pos, m->nhdrs);
    h = sipmsg_find(m, SIP_HDR_CONTENT_LENGTH, NULL, NULL);
    if (h)
        CHECK_STR(h->value, "133");
    struct sip_via v;
    CHECK_EQ_INT(sipmsg_top_via(m, &v, &e), 0);
    CHECK_STR(v.transport, "UDP");
    CHECK_STR(v.host, "192.168.1.1");
    CHECK_EQ_INT(v.port, 5061);
    CHECK_STR(v.branch, "z9hG4bK-1234-1-0");
    CHECK(!v.has_rport);
    struct sip_cseq cs;
    h = sipmsg_find(m, SIP_HDR_CSEQ, NULL, NULL);
    CHECK_EQ_INT(sip_cseq_parse(h->value, &cs, &e), 0);
    CHECK_EQ_INT(cs.num, 1);
    CHECK_STR(cs.method, "INVITE");
    struct sip_nameaddr na;
    h = sipmsg_find(m, SIP_HDR_FROM, NULL, NULL);
    CHECK_EQ_INT(sip_nameaddr_parse(h->value, &na, &e), 0);
    CHECK_STR(na.display, "sipp");
    CHECK_STR(na.uri, "sip:sipp@192.168.1.1:5061");
    CHECK_STR(na.tag, "1234SIPpTag001");
    h = sipmsg_find(m, SIP_HDR_CONTACT, NULL, NULL);
    CHECK_EQ_INT(sip_nameaddr_parse(h->value, &na, &e), 0);
    CHECK_STR(na.uri, "sip:sipp@192.168.1.1:5061");
    CHECK_EQ_INT(na.display.len, 0);
    sipmsg_free(m);
}

static void test_kamailio_response_with_record_route_and_vias(void)
{
    struct sipmsg *m;
    struct sip_error e;
    CHECK_EQ_INT(parse(kam_response, sizeof kam_response - 1, &m, &e), 0);
    if (!m)
        return;
    CHECK(!m->is_request);
    CHECK_EQ_INT(m->status, 200);
    CHECK_STR(m->reason, "OK");
    CHECK_EQ_INT(m->body.len, 0);
    struct sip_via v;
    CHECK_EQ_INT(sipmsg_top_via(m, &v, &e), 0);
    CHECK_STR(v.host, "10.0.0.1");
    CHECK_EQ_INT(v.port, 0);
    CHECK(v.has_rport);
    CHECK_EQ_INT(v.rport, 5060);
    CHECK_STR(v.received, "192.0.2.7");
    CHECK_STR(v.branch, "z9hG4bK1a2b.0");

    /* walk all three Via elements across two headers */
    const char *hosts[] = {"10.0.0.1", "2001:db8::1", "10.0.0.9"};
    size_t pos = 0, n = 0;
    const struct sip_hdr *h;
    while ((h = sipmsg_find(m, SIP_HDR_VIA, NULL, &pos)) != NULL) {
        struct sip_str rest = h->value, el;
        while (sip_list_next(&rest, &el) == 0) {
            CHECK(n < 3);
            if (n >= 3)
                break;
            CHECK_EQ_INT(sip_via_parse(el, &v, &e), 0);
            CHECK_STR(v.host, hosts[n]);
            if (n == 1) {
                CHECK(v.host_is_ipv6);
                CHECK_EQ_INT(v.port, 5070);
                CHECK_STR(v.transport, "TCP");
            }
            if (n == 2) {
                CHECK(v.has_rport);
                CHECK_EQ_INT(v.rport, 0);
                CHECK_STR(v.branch, "z9hG4bKlast");
            }
            n++;
        }
    }
    CHECK_EQ_INT(n, 3);

    pos = 0;
    n = 0;
    while ((h = sipmsg_find(m, SIP_HDR_RECORD_ROUTE, NULL, &pos)) != NULL) {
        struct sip_str rest = h->value, el;
        while (sip_list_next(&rest, &el) == 0) {
            struct sip_nameaddr na;
            CHECK_EQ_INT(sip_nameaddr_parse(el, &na, &e), 0);
            if (n == 1)
                CHECK_STR(na.uri, "sip:10.0.0.2;transport=tcp;lr;r2=on");
            n++;
        }
    }
    CHECK_EQ_INT(n, 3);

    struct sip_nameaddr na;
    h = sipmsg_find(m, SIP_HDR_FROM, NULL, NULL);
    CHECK_EQ_INT(sip_nameaddr_parse(h->value, &na, &e), 0);
    CHECK_STR(na.display, "Alice \\\"A\\\" Smith");
    CHECK_STR(na.tag, "abc");
    h = sipmsg_find(m, SIP_HDR_TO, NULL, NULL);
    CHECK_EQ_INT(sip_nameaddr_parse(h->value, &na, &e), 0);
    CHECK_STR(na.tag, "as1f2e3d");
    h = sipmsg_find(m, SIP_HDR_OTHER, "SERVER", NULL);
    CHECK(h != NULL);
    sipmsg_free(m);
}

static void test_compact_forms_and_header_ids(void)
{
    static const char msg[] = "OPTIONS sip:a@b SIP/2.0\r\n"
                              "v: SIP/2.0/TCP h;branch=z9hG4bKc\r\n"
                              "f: <sip:x@y>;tag=1\r\n"
                              "t: <sip:a@b>\r\n"
                              "i: cid\r\n"
                              "m: <sip:x@h>\r\n"
                              "l: 0\r\n"
                              "\r\n";
    struct sipmsg *m;
    CHECK_EQ_INT(parse(msg, sizeof msg - 1, &m, NULL), 0);
    if (!m)
        return;
    const struct sip_hdr *h = sipmsg_find(m, SIP_HDR_CALL_ID, NULL, NULL);
    CHECK(h && sip_str_eqc(h->value, "cid"));
    CHECK(h && sip_str_eqc(h->name, "i"));
    CHECK(sipmsg_find(m, SIP_HDR_VIA, NULL, NULL) == &m->hdrs[0]);
    CHECK(sipmsg_find(m, SIP_HDR_CONTACT, NULL, NULL) != NULL);
    sipmsg_free(m);

    struct {
        const char *n;
        enum sip_hdr_id id;
    } ids[] = {{"v", SIP_HDR_VIA},           {"F", SIP_HDR_FROM},
               {"t", SIP_HDR_TO},            {"i", SIP_HDR_CALL_ID},
               {"m", SIP_HDR_CONTACT},       {"l", SIP_HDR_CONTENT_LENGTH},
               {"c", SIP_HDR_CONTENT_TYPE},  {"k", SIP_HDR_SUPPORTED},
               {"s", SIP_HDR_SUBJECT},       {"e", SIP_HDR_CONTENT_ENCODING},
               {"o", SIP_HDR_EVENT},         {"r", SIP_HDR_REFER_TO},
               {"u", SIP_HDR_ALLOW_EVENTS},  {"b", SIP_HDR_REFERRED_BY},
               {"x", SIP_HDR_SESSION_EXPIRES}, {"call-id", SIP_HDR_CALL_ID},
               {"CSEQ", SIP_HDR_CSEQ},       {"record-route", SIP_HDR_RECORD_ROUTE},
               {"RAck", SIP_HDR_RACK},       {"X-Custom", SIP_HDR_OTHER},
               {"q", SIP_HDR_OTHER},         {"Vi", SIP_HDR_OTHER}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        CHECK_EQ_INT(sip_hdr_id_of(ids[i].n, strlen(ids[i].n)), ids[i].id);
    CHECK_EQ_INT(sip_hdr_id_of(NULL, 0), SIP_HDR_OTHER);
}

static void test_folding_and_ws_before_colon(void)
{
    static const char msg[] = "INVITE sip:a@b SIP/2.0\r\n"
                              "Subject: first\r\n"
                              "  second\r\n"
                              "\tthird\r\n"
                              "Content-Length   : 4\r\n"
                              "cseq: 0009\r\n"
                              "  INVITE\r\n"
                              "Via  : SIP  /   2.0\r\n"
                              " /UDP\r\n"
                              "    192.0.2.2;branch=\r\n"
                              " z9hG4bK30239\r\n"
                              "\r\n"
                              "body";
    struct sipmsg *m;
    struct sip_error e;
    CHECK_EQ_INT(parse(msg, sizeof msg - 1, &m, &e), 0);
    if (!m)
        return;
    CHECK_EQ_INT(m->nhdrs, 4);
    CHECK_STR(m->hdrs[0].value, "first    second  \tthird");
    CHECK_STR(m->hdrs[1].name, "Content-Length");
    CHECK_EQ_INT(m->hdrs[1].id, SIP_HDR_CONTENT_LENGTH);
    CHECK_STR(m->body, "body");
    struct sip_cseq cs;
    CHECK_EQ_INT(sip_cseq_parse(m->hdrs[2].value, &cs, &e), 0);
    CHECK_EQ_INT(cs.num, 9);
    CHECK_STR(cs.method, "INVITE");
    struct sip_via v;
    CHECK_EQ_INT(sipmsg_top_via(m, &v, &e), 0);
    CHECK_STR(v.transport, "UDP");
    CHECK_STR(v.host, "192.0.2.2");
    CHECK_STR(v.branch, "z9hG4bK30239");
    sipmsg_free(m);
}

static void test_list_split_respects_quotes_and_angles(void)
{
    struct sip_str rest = S("\"Doe, John \\\"jd, \\\\\" <sip:j@x;a=1,2>;q=0.5 , <sip:k@y?h=a,b>,,  sip:z@w ,");
    struct sip_str el;
    CHECK_EQ_INT(sip_list_next(&rest, &el), 0);
    CHECK_STR(el, "\"Doe, John \\\"jd, \\\\\" <sip:j@x;a=1,2>;q=0.5");
    CHECK_EQ_INT(sip_list_next(&rest, &el), 0);
    CHECK_STR(el, "<sip:k@y?h=a,b>");
    CHECK_EQ_INT(sip_list_next(&rest, &el), 0);
    CHECK_STR(el, "sip:z@w");
    CHECK_EQ_INT(sip_list_next(&rest, &el), -ENOENT);
    struct sip_str empty = {NULL, 0};
    CHECK_EQ_INT(sip_list_next(&empty, &el), -ENOENT);
    struct sip_str unterminated = S("\"a, b");
    CHECK_EQ_INT(sip_list_next(&unterminated, &el), 0);
    CHECK_STR(el, "\"a, b");
}

static void test_uri_forms(void)
{
    struct sip_uri u;
    struct sip_error e;
    CHECK_EQ_INT(sip_uri_parse(S("sip:alice:secret@example.com:5061;transport=tcp;lr?subject=hi&x=y"), &u, &e), 0);
    CHECK_STR(u.scheme, "sip");
    CHECK_STR(u.user, "alice");
    CHECK_STR(u.password, "secret");
    CHECK_STR(u.host, "example.com");
    CHECK_EQ_INT(u.port, 5061);
    CHECK_STR(u.params, "transport=tcp;lr");
    CHECK_STR(u.headers, "subject=hi&x=y");
    struct sip_str v;
    CHECK_EQ_INT(sip_param_find(u.params, "TRANSPORT", &v), 0);
    CHECK_STR(v, "tcp");
    CHECK_EQ_INT(sip_param_find(u.params, "lr", &v), 0);
    CHECK_EQ_INT(v.len, 0);
    CHECK_EQ_INT(sip_param_find(u.params, "maddr", &v), -ENOENT);

    CHECK_EQ_INT(sip_uri_parse(S("sips:[2001:db8::10]:5071"), &u, &e), 0);
    CHECK_STR(u.scheme, "sips");
    CHECK_STR(u.host, "2001:db8::10");
    CHECK(u.host_is_ipv6);
    CHECK_EQ_INT(u.port, 5071);
    CHECK_EQ_INT(u.user.len, 0);

    CHECK_EQ_INT(sip_uri_parse(S("sip:user;par=u%40example.net@example.com"), &u, &e), 0);
    CHECK_STR(u.user, "user;par=u%40example.net");
    CHECK_STR(u.host, "example.com");
    CHECK_EQ_INT(u.params.len, 0);

    CHECK_EQ_INT(sip_uri_parse(S("tel:+1-212-555-1212;phone-context=example.com"), &u, &e), 0);
    CHECK_STR(u.scheme, "tel");
    CHECK_STR(u.user, "+1-212-555-1212");
    CHECK_STR(u.params, "phone-context=example.com");

    CHECK_EQ_INT(sip_uri_parse(S("urn:service:sos"), &u, &e), 0);
    CHECK_STR(u.scheme, "urn");
    CHECK_STR(u.user, "service:sos");

    CHECK_EQ_INT(sip_uri_parse(S("sip:h:0"), &u, &e), -EBADMSG);
    CHECK_EQ_INT(sip_uri_parse(S("sip:h:65536"), &u, &e), -EBADMSG);
    CHECK_EQ_INT(sip_uri_parse(S("sip:h:65535"), &u, &e), 0);
    CHECK_EQ_INT(sip_uri_parse(S("sip:h:5x"), &u, &e), -EBADMSG);
    CHECK_EQ_INT(sip_uri_parse(S("sip:[::1"), &u, &e), -EBADMSG);
    CHECK_EQ_INT(sip_uri_parse(S("sip:a b@h"), &u, &e), -EBADMSG);
    CHECK_EQ_INT(sip_uri_parse(S("nocolon"), &u, &e), -EBADMSG);
    CHECK_EQ_INT(sip_uri_parse(S("sip:"), &u, &e), -EBADMSG);
    CHECK_EQ_INT(sip_uri_parse(S("sip:@host"), &u, &e), -EBADMSG);
    CHECK_EQ_INT(sip_uri_parse(S(""), &u, &e), -EBADMSG);
    CHECK(strlen(e.reason) > 0);
}

static void test_params_with_lws_and_quotes(void)
{
    struct sip_str v;
    struct sip_str p = S("  tag    = 1918181833n ; q = 0.33;x=\"a;b\" ; flag");
    CHECK_EQ_INT(sip_param_find(p, "tag", &v), 0);
    CHECK_STR(v, "1918181833n");
    CHECK_EQ_INT(sip_param_find(p, "Q", &v), 0);
    CHECK_STR(v, "0.33");
    CHECK_EQ_INT(sip_param_find(p, "x", &v), 0);
    CHECK_STR(v, "a;b");
    CHECK_EQ_INT(sip_param_find(p, "flag", &v), 0);
    CHECK_EQ_INT(v.len, 0);
    CHECK_EQ_INT(sip_param_find(p, "b\"", &v), -ENOENT);
    struct sip_str rest = p, n;
    int count = 0;
    while (sip_param_next(&rest, &n, &v) == 0)
        count++;
    CHECK_EQ_INT(count, 4);
}

static void test_via_variants(void)
{
    struct sip_via v;
    struct sip_error e;
    CHECK_EQ_INT(sip_via_parse(S("SIP/2.0/UDP 192.0.2.1:5060;rport=1234;received=10.1.1.1;branch=z9hG4bKa"), &v, &e),
                 0);
    CHECK_STR(v.protocol, "SIP/2.0");
    CHECK_EQ_INT(v.rport, 1234);
    CHECK(v.has_rport);
    CHECK_STR(v.received, "10.1.1.1");
    CHECK_STR(v.params, "rport=1234;received=10.1.1.1;branch=z9hG4bKa");
    CHECK_EQ_INT(sip_via_parse(S("SIP / 2.0 / TLS  host.example.com : 5061 ; branch = z9hG4bKb"), &v, &e), 0);
    CHECK_STR(v.transport, "TLS");
    CHECK_STR(v.host, "host.example.com");
    CHECK_EQ_INT(v.port, 5061);
    CHECK_STR(v.branch, "z9hG4bKb");
    CHECK_EQ_INT(sip_via_parse(S("SIP/2.0/UDP [::1]:5062;branch=x"), &v, &e), 0);
    CHECK(v.host_is_ipv6);
    CHECK_STR(v.host, "::1");
    CHECK_EQ_INT(v.port, 5062);
    CHECK_EQ_INT(sip_via_parse(S("SIP/2.0/UDP"), &v, &e), -EBADMSG);
    CHECK_EQ_INT(sip_via_parse(S("SIP/2.0 UDP h"), &v, &e), -EBADMSG);
    CHECK_EQ_INT(sip_via_parse(S("SIP/2.0/UDP h:99999"), &v, &e), -EBADMSG);
    CHECK_EQ_INT(sip_via_parse(S("SIP/2.0/UDP h;rport=abc"), &v, &e), -EBADMSG);
    CHECK_EQ_INT(sip_via_parse(S("SIP/2.0/UDP h junk"), &v, &e), -EBADMSG);
}

static void test_nameaddr_variants(void)
{
    struct sip_nameaddr na;
    struct sip_error e;
    CHECK_EQ_INT(sip_nameaddr_parse(S("\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8"),
                                    &na, &e),
                 0);
    CHECK_STR(na.display, "J Rosenberg \\\\\\\"");
    CHECK_STR(na.uri, "sip:jdrosen@example.com");
    CHECK_STR(na.tag, "98asjd8");
    CHECK_EQ_INT(sip_nameaddr_parse(S("A. Bell<sip:a.g.bell@example.com>;tag=q;expires=60"), &na, &e), 0);
    CHECK_STR(na.display, "A. Bell");
    CHECK_STR(na.params, "tag=q;expires=60");
    CHECK_EQ_INT(sip_nameaddr_parse(S("sip:u@h;tag=1"), &na, &e), 0);
    CHECK_STR(na.uri, "sip:u@h");
    CHECK_STR(na.tag, "1");
    CHECK_EQ_INT(sip_nameaddr_parse(S("<sip:u@h;lr>"), &na, &e), 0);
    CHECK_STR(na.uri, "sip:u@h;lr");
    CHECK_EQ_INT(na.params.len, 0);
    CHECK_EQ_INT(na.tag.len, 0);
    CHECK_EQ_INT(sip_nameaddr_parse(S("*"), &na, &e), 0);
    CHECK_STR(na.uri, "*");
    /* rejected */
    CHECK_EQ_INT(sip_nameaddr_parse(S("\"Mr. J. User <sip:j.user@example.com>"), &na, &e), -EBADMSG);
    CHECK(strstr(e.reason, "unterminated") != NULL);
    CHECK_EQ_INT(sip_nameaddr_parse(S("Bell, Alexander <sip:a@b>"), &na, &e), -EBADMSG);
    CHECK_EQ_INT(sip_nameaddr_parse(S("<sip:a@b"), &na, &e), -EBADMSG);
    CHECK_EQ_INT(sip_nameaddr_parse(S("<sip:a@b> junk"), &na, &e), -EBADMSG);
    /* RFC 4475 3.1.2.14: no LWS inside <>; RFC 3261 20.10: an addr-spec URI with '?' needs <> */
    CHECK_EQ_INT(sip_nameaddr_parse(S("< sip:t.watson@example.org >"), &na, &e), -EBADMSG);
    CHECK(strstr(e.reason, "whitespace inside <>") != NULL);
    CHECK_EQ_INT(sip_nameaddr_parse(S("sip:u@h?Route=%3Csip:x%3E"), &na, &e), -EBADMSG);
    CHECK_EQ_INT(sip_nameaddr_parse(S(""), &na, &e), -EBADMSG);
    CHECK_EQ_INT(sip_nameaddr_parse(S("\"x\" sip:a@b"), &na, &e), -EBADMSG);
}

static void test_cseq_bounds(void)
{
    struct sip_cseq cs;
    struct sip_error e;
    CHECK_EQ_INT(sip_cseq_parse(S("2147483647 INVITE"), &cs, &e), 0);
    CHECK_EQ_INT(cs.num, 2147483647u);
    CHECK_EQ_INT(sip_cseq_parse(S("2147483648 INVITE"), &cs, &e), -EBADMSG);
    CHECK_EQ_INT(sip_cseq_parse(S("36893488147419103232 REGISTER"), &cs, &e), -EBADMSG);
    CHECK(strstr(e.reason, "2**31") != NULL);
    CHECK_EQ_INT(sip_cseq_parse(S("9292394834772304023312 OPTIONS"), &cs, &e), -EBADMSG);
    CHECK_EQ_INT(sip_cseq_parse(S("INVITE"), &cs, &e), -EBADMSG);
    CHECK_EQ_INT(sip_cseq_parse(S("1INVITE"), &cs, &e), -EBADMSG);
    CHECK_EQ_INT(sip_cseq_parse(S("1 INVITE extra"), &cs, &e), -EBADMSG);
    CHECK_EQ_INT(sip_cseq_parse(S("1 "), &cs, &e), -EBADMSG);
}

static void expect_reject(const char *msg, int code, const char *reason_part)
{
    struct sipmsg *m = (struct sipmsg *)1;
    struct sip_error e;
    int rc = parse(msg, strlen(msg), &m, &e);
    CHECK_EQ_INT(rc, code);
    CHECK(m == NULL);
    CHECK_EQ_INT(e.code, code);
    if (reason_part && strstr(e.reason, reason_part) == NULL) {
        fprintf(stderr, "reason \"%s\" lacks \"%s\"\n", e.reason, reason_part);
        CHECK(0);
    }
    if (rc == 0)
        sipmsg_free(m);
}

static void test_malformed_messages_rejected(void)
{
    expect_reject("", -ENODATA, "empty");
    expect_reject("\r\n\r\n", -ENODATA, "empty");
    expect_reject("INVITE sip:a@b SIP/2.0", -ENODATA, "not terminated");
    expect_reject("INVITE sip:a@b SIP/2.0\r\nTo: x", -ENODATA, "line 2");
    expect_reject("garbage\r\n\r\n", -EBADMSG, "start line");
    expect_reject("INVITE  sip:a@b SIP/2.0\r\n\r\n", -EBADMSG, "Request-URI");
    expect_reject("INVITE sip:a@b SIP/2.0  \r\n\r\n", -EBADMSG, "whitespace");
    expect_reject("INVITE sip:a@b HTTP/1.1\r\n\r\n", -EBADMSG, "version");
    expect_reject("SIP/2.0 4294967301 big\r\n\r\n", -EBADMSG, "3 digits");
    expect_reject("SIP/2.0 099 low\r\n\r\n", -EBADMSG, "100..699");
    expect_reject("SIP/2.0 700 high\r\n\r\n", -EBADMSG, "100..699");
    expect_reject("SIP/2.0 20 OK\r\n\r\n", -EBADMSG, "3 digits");
    expect_reject("SIP/x 200 OK\r\n\r\n", -EBADMSG, "version");
    expect_reject("INVITE sip:a@b SIP/2.0\r\nTo: a\r\nFrom b\r\n\r\n", -EBADMSG, "header line 3 has no colon");
    expect_reject("INVITE sip:a@b SIP/2.0\r\n : a\r\n\r\n", -EBADMSG, "whitespace");
    expect_reject("INVITE sip:a@b SIP/2.0\r\nBad Name: a\r\n\r\n", -EBADMSG, "invalid character");
    expect_reject("INVITE sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n", -EBADMSG, "negative");
    expect_reject("INVITE sip:a@b SIP/2.0\r\nContent-Length: 1x\r\n\r\nab", -EBADMSG, "not a number");
    expect_reject("INVITE sip:a@b SIP/2.0\r\nContent-Length: 2\r\nl: 3\r\n\r\nabc", -EBADMSG, "different");
    expect_reject("INVITE sip:a@b SIP/2.0\r\nContent-Length: 9999\r\n\r\nabc", -EBADMSG,
                  "Content-Length 9999 exceeds the 3 body bytes present");
    expect_reject("INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999999999\r\n\r\nabc", -EBADMSG,
                  "too large");
}

static void test_content_length_datagram_semantics(void)
{
    struct sipmsg *m;
    static const char two[] = "OPTIONS sip:a@b SIP/2.0\r\nl: 2\r\nContent-Length: 2\r\n\r\nabOPTIONS sip:x SIP/2.0\r\n";
    CHECK_EQ_INT(parse(two, sizeof two - 1, &m, NULL), 0);
    if (m) {
        CHECK_STR(m->body, "ab");
        CHECK_EQ_INT(m->len, sizeof two - 1 - strlen("OPTIONS sip:x SIP/2.0\r\n"));
        sipmsg_free(m);
    }
    static const char nocl[] = "MESSAGE sip:a@b SIP/2.0\r\nTo: x\r\n\r\nhello";
    CHECK_EQ_INT(parse(nocl, sizeof nocl - 1, &m, NULL), 0);
    if (m) {
        CHECK_STR(m->body, "hello");
        sipmsg_free(m);
    }
    /* missing blank line: data ends right after the headers */
    static const char noblank[] = "OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n";
    CHECK_EQ_INT(parse(noblank, sizeof noblank - 1, &m, NULL), 0);
    if (m) {
        CHECK_EQ_INT(m->nhdrs, 1);
        CHECK_EQ_INT(m->body.len, 0);
        sipmsg_free(m);
    }
    /* leading CRLFs (keepalives) before the start line, bare LF line ends */
    static const char lf[] = "\r\n\r\nSIP/2.0 180 Ringing\nVia: SIP/2.0/UDP h\nContent-Length: 0\n\n";
    CHECK_EQ_INT(parse(lf, sizeof lf - 1, &m, NULL), 0);
    if (m) {
        CHECK_EQ_INT(m->status, 180);
        CHECK_STR(m->reason, "Ringing");
        CHECK_EQ_INT(m->nhdrs, 2);
        sipmsg_free(m);
    }
    static const char empty_reason[] = "SIP/2.0 100 \r\n\r\n";
    CHECK_EQ_INT(parse(empty_reason, sizeof empty_reason - 1, &m, NULL), 0);
    if (m) {
        CHECK_EQ_INT(m->reason.len, 0);
        sipmsg_free(m);
    }
    /* binary body with NULs */
    static const char bin[] = "MESSAGE sip:a@b SIP/2.0\r\nl: 3\r\n\r\na\0b";
    CHECK_EQ_INT(parse(bin, sizeof bin - 1, &m, NULL), 0);
    if (m) {
        CHECK_EQ_INT(m->body.len, 3);
        CHECK(m->body.p[1] == '\0');
        sipmsg_free(m);
    }
}

static void test_limits_give_e2big(void)
{
    struct sipmsg *m;
    struct sip_error e;
    struct sipmsg_limits lim = {.max_size = 100, .max_headers = 0};
    CHECK_EQ_INT(sipmsg_parse(sipp_invite, sizeof sipp_invite - 1, &lim, &m, &e), -E2BIG);
    CHECK(m == NULL);
    lim = (struct sipmsg_limits){.max_size = 0, .max_headers = 5};
    CHECK_EQ_INT(sipmsg_parse(sipp_invite, sizeof sipp_invite - 1, &lim, &m, &e), -E2BIG);
    CHECK(strstr(e.reason, "more than 5 header") != NULL);
    lim = (struct sipmsg_limits){.max_size = 0, .max_headers = 10};
    CHECK_EQ_INT(sipmsg_parse(sipp_invite, sizeof sipp_invite - 1, &lim, &m, &e), 0);
    sipmsg_free(m);

    /* default size limit 65535 */
    size_t big = 70000;
    char *p = malloc(big);
    CHECK(p != NULL);
    if (!p)
        return;
    memset(p, 'a', big);
    memcpy(p, "MESSAGE sip:a@b SIP/2.0\r\n\r\n", 27);
    CHECK_EQ_INT(sipmsg_parse(p, big, NULL, &m, &e), -E2BIG);
    /* many headers: default limit 256 */
    size_t n = 0;
    n += (size_t)snprintf(p, big, "MESSAGE sip:a@b SIP/2.0\r\n");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(p + n, big - n, "X-H%d: v\r\n", i);
    n += (size_t)snprintf(p + n, big - n, "\r\n");
    CHECK_EQ_INT(sipmsg_parse(p, n, NULL, &m, &e), -E2BIG);
    free(p);
}

static void test_every_prefix_parses_or_fails_cleanly(void)
{
    const char *msgs[] = {sipp_invite, kam_response};
    for (size_t k = 0; k < 2; k++) {
        size_t n = strlen(msgs[k]);
        /* copy each prefix into its own exact-size allocation so ASan sees any overread */
        for (size_t len = 0; len <= n; len++) {
            char *p = malloc(len ? len : 1);
            if (!p)
                return;
            memcpy(p, msgs[k], len);
            struct sipmsg *m = NULL;
            struct sip_error e;
            int rc = sipmsg_parse(p, len, NULL, &m, &e);
            if (rc == 0) {
                CHECK(m != NULL);
                struct sip_via v;
                (void)sipmsg_top_via(m, &v, &e);
                sipmsg_free(m);
            } else {
                CHECK(m == NULL);
                CHECK(rc == -EBADMSG || rc == -ENODATA);
                CHECK(e.reason[0] != '\0');
            }
            free(p);
        }
    }
    /* full message minus its body bytes fails on Content-Length */
    struct sipmsg *m;
    struct sip_error e;
    CHECK_EQ_INT(parse(sipp_invite, sizeof sipp_invite - 11, &m, &e), -EBADMSG);
    CHECK(strstr(e.reason, "Content-Length 133 exceeds the 123 body bytes present") != NULL);
}

static void test_garbage_never_crashes(void)
{
    uint32_t x = 12345;
    char buf[512];
    for (int round = 0; round < 3000; round++) {
        size_t n = 0;
        size_t len = (size_t)(x % sizeof buf);
        const char *alphabet = "\r\n :;,<>\"\\@[]/SIP2.0INVTEvl=0123456789\t";
        size_t an = strlen(alphabet);
        if (round % 2)
            n = (size_t)snprintf(buf, sizeof buf, "%s", round % 4 == 1 ? "INVITE sip:a@b SIP/2.0\r\n" : "SIP/2.0 200 OK\r\n");
        for (; n < len; n++) {
            x = x * 1103515245u + 12345u;
            buf[n] = (x >> 16) % 4 == 0 ? (char)(x >> 8) : alphabet[(x >> 8) % an];
        }
        x = x * 1103515245u + 12345u;
        char *p = malloc(n ? n : 1);
        if (!p)
            return;
        memcpy(p, buf, n);
        struct sipmsg *m = NULL;
        int rc = sipmsg_parse(p, n, NULL, &m, NULL);
        if (rc == 0) {
            struct sip_via v;
            struct sip_error e;
            (void)sipmsg_top_via(m, &v, &e);
            for (size_t i = 0; i < m->nhdrs; i++) {
                struct sip_str rest = m->hdrs[i].value, el;
                struct sip_nameaddr na;
                struct sip_cseq cs;
                struct sip_uri u;
                while (sip_list_next(&rest, &el) == 0) {
                    (void)sip_nameaddr_parse(el, &na, &e);
                    (void)sip_via_parse(el, &v, &e);
                    (void)sip_uri_parse(el, &u, &e);
                }
                (void)sip_cseq_parse(m->hdrs[i].value, &cs, &e);
            }
            sipmsg_free(m);
        } else {
            CHECK(m == NULL);
        }
        free(p);
    }
}

static void test_sipbuf(void)
{
    struct sipbuf b;
    sipbuf_init(&b);
    sipbuf_addc(&b, "SIP/2.0 ");
    sipbuf_addf(&b, "%d %s\r\n", 200, "OK");
    sipbuf_adds(&b, S("Via: x\r\n"));
    sipbuf_add(&b, "\r\n", 2);
    CHECK_EQ_INT(b.err, 0);
    CHECK_STR(b, "SIP/2.0 200 OK\r\nVia: x\r\n\r\n");
    /* growth through addf of a long string */
    char big[3000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sipbuf_addf(&b, "%s|", big);
    CHECK_EQ_INT(b.err, 0);
    CHECK_EQ_INT(b.len, 26 + 3000);
    CHECK(b.p[b.len - 1] == '|' && b.p[b.len] == '\0');
    sipbuf_free(&b);
    CHECK(b.p == NULL && b.len == 0);

    /* hard cap: -E2BIG sticks, later appends are no-ops */
    sipbuf_init(&b);
    char *chunk = calloc(1, 300000);
    CHECK(chunk != NULL);
    if (!chunk)
        return;
    for (int i = 0; i < 5; i++)
        sipbuf_add(&b, chunk, 300000);
    CHECK_EQ_INT(b.err, -E2BIG);
    size_t len = b.len;
    CHECK(len <= 1024 * 1024);
    sipbuf_addc(&b, "x");
    sipbuf_addf(&b, "%d", 1);
    CHECK_EQ_INT(b.len, len);
    sipbuf_free(&b);
    free(chunk);
}

static void test_str_helpers(void)
{
    CHECK(sip_str_eq(S("abc"), S("abc")));
    CHECK(!sip_str_eq(S("abc"), S("abC")));
    CHECK(sip_str_ieq(S("abc"), S("aBC")));
    CHECK(!sip_str_ieq(S("abc"), S("ab")));
    CHECK(sip_str_eqc(S("Via"), "Via"));
    CHECK(sip_str_ieqc(S("Via"), "VIA"));
    CHECK(sip_str_eq((struct sip_str){NULL, 0}, S("")));
    struct sip_str c = sip_str_c(NULL);
    CHECK_EQ_INT(c.len, 0);
}

/* ---- stream framing (sipmsg_frame) ---- */

static const char frame_msg[] = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
                                "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
                                "Content-Length: 5\r\n\r\nhello";

static void test_frame_whole_and_every_partial_prefix(void)
{
    size_t n = sizeof frame_msg - 1, skip, len;
    struct sip_error e;
    CHECK_EQ_INT(sipmsg_frame(frame_msg, n, 0, &skip, &len, &e), 0);
    CHECK_EQ_INT(skip, 0);
    CHECK_EQ_INT(len, n);
    for (size_t k = 0; k < n; k++) { /* every cut before the end needs more data, never reads past k */
        char *cut = malloc(k ? k : 1);
        memcpy(cut, frame_msg, k);
        CHECK_EQ_INT(sipmsg_frame(cut, k, 0, &skip, &len, &e), -ENODATA);
        free(cut);
    }
}

static void test_frame_two_messages_and_keepalives(void)
{
    char buf[1024];
    size_t n1 = sizeof frame_msg - 1;
    size_t n = 0;
    memcpy(buf + n, "\r\n\r\n", 4), n += 4; /* RFC 5626 keep-alive CRLFs */
    memcpy(buf + n, frame_msg, n1), n += n1;
    memcpy(buf + n, frame_msg, n1), n += n1;
    memcpy(buf + n, "OPTIONS", 7), n += 7; /* the start of a third */
    size_t skip, len, off = 0;
    struct sip_error e;
    CHECK_EQ_INT(sipmsg_frame(buf, n, 0, &skip, &len, &e), 0);
    CHECK_EQ_INT(skip, 4);
    CHECK_EQ_INT(len, n1);
    struct sipmsg *m = NULL;
    CHECK_EQ_INT(sipmsg_parse(buf + skip, len, NULL, &m, &e), 0);
    CHECK(m && m->body.len == 5 && memcmp(m->body.p, "hello", 5) == 0);
    sipmsg_free(m);
    off = skip + len;
    CHECK_EQ_INT(sipmsg_frame(buf + off, n - off, 0, &skip, &len, &e), 0);
    CHECK_EQ_INT(skip, 0);
    CHECK_EQ_INT(len, n1);
    off += len;
    CHECK_EQ_INT(sipmsg_frame(buf + off, n - off, 0, &skip, &len, &e), -ENODATA);
    CHECK_EQ_INT(sipmsg_frame("\r\n\r\n", 4, 0, &skip, &len, &e), -ENODATA); /* only keep-alives */
    CHECK_EQ_INT(skip, 4);
    CHECK_EQ_INT(sipmsg_frame("", 0, 0, &skip, &len, &e), -ENODATA);
}

static void test_frame_errors(void)
{
    size_t skip, len;
    struct sip_error e;
    static const char no_cl[] = "OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
    CHECK_EQ_INT(sipmsg_frame(no_cl, sizeof no_cl - 1, 0, &skip, &len, &e), -EBADMSG);
    CHECK(strstr(e.reason, "without Content-Length") != NULL);
    static const char neg[] = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n"; /* RFC 4475 ncl */
    CHECK_EQ_INT(sipmsg_frame(neg, sizeof neg - 1, 0, &skip, &len, &e), -EBADMSG);
    static const char two[] = "OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\nContent-Length: 13\r\n\r\n"; /* mcl01 */
    CHECK_EQ_INT(sipmsg_frame(two, sizeof two - 1, 0, &skip, &len, &e), -EBADMSG);
    CHECK(strstr(e.reason, "two different") != NULL);
    static const char compact[] = "OPTIONS sip:a@b SIP/2.0\r\nl : 2\r\n\r\nhi";
    CHECK_EQ_INT(sipmsg_frame(compact, sizeof compact - 1, 0, &skip, &len, &e), 0);
    CHECK_EQ_INT(len, sizeof compact - 1);
    static const char big[] = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n";
    CHECK_EQ_INT(sipmsg_frame(big, sizeof big - 1, 0, &skip, &len, &e), -E2BIG);
    CHECK_EQ_INT(sipmsg_frame(frame_msg, sizeof frame_msg - 1, 40, &skip, &len, &e), -E2BIG);
    /* a Content-Length inside a folded continuation or the start line is not a header */
    static const char folded[] = "OPTIONS sip:a@b SIP/2.0\r\nSubject: x\r\n Content-Length: 3\r\nl: 0\r\n\r\n";
    CHECK_EQ_INT(sipmsg_frame(folded, sizeof folded - 1, 0, &skip, &len, &e), 0);
    CHECK_EQ_INT(len, sizeof folded - 1);
    /* bare LF line ends frame too */
    static const char lf[] = "OPTIONS sip:a@b SIP/2.0\nl: 1\n\nx";
    CHECK_EQ_INT(sipmsg_frame(lf, sizeof lf - 1, 0, &skip, &len, &e), 0);
    CHECK_EQ_INT(len, sizeof lf - 1);
}

static void test_check_rejects_and_marks(void)
{
    struct sipmsg *m = NULL;
    struct sip_error e;
    static const char base[] = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=abc\r\nFrom: <sip:a@b>;tag=1\r\n"
                               "To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nDate: Fri, 01 Jan 2010 16:00:00 EST\r\n"
                               "Max-Forwards: 70\r\nl: 0\r\n\r\n";
    CHECK_EQ_INT(sipmsg_parse(base, sizeof base - 1, NULL, &m, &e), 0);
    CHECK(m && m->nwarnings == 2);
    sipmsg_free(m);
    static const char mf[] = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\n"
                             "To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 256\r\n\r\n";
    CHECK_EQ_INT(sipmsg_parse(mf, sizeof mf - 1, NULL, &m, &e), -EBADMSG);
    CHECK(strstr(e.reason, "above 255") != NULL);
    struct sipmsg_limits lim = {0, 0, SIPMSG_SYNTAX_ONLY};
    CHECK_EQ_INT(sipmsg_parse(mf, sizeof mf - 1, &lim, &m, &e), 0);
    sipmsg_free(m);
}

static void test_every_known_header_name_maps_to_its_id(void)
{
    static const struct { const char *name; enum sip_hdr_id id; } names[] = {
        {"Via", SIP_HDR_VIA}, {"FROM", SIP_HDR_FROM}, {"to", SIP_HDR_TO}, {"call-id", SIP_HDR_CALL_ID},
        {"CSeq", SIP_HDR_CSEQ}, {"Contact", SIP_HDR_CONTACT}, {"Max-Forwards", SIP_HDR_MAX_FORWARDS},
        {"content-length", SIP_HDR_CONTENT_LENGTH}, {"Content-Type", SIP_HDR_CONTENT_TYPE},
        {"Route", SIP_HDR_ROUTE}, {"Record-Route", SIP_HDR_RECORD_ROUTE}, {"Expires", SIP_HDR_EXPIRES},
        {"Supported", SIP_HDR_SUPPORTED}, {"Require", SIP_HDR_REQUIRE}, {"Event", SIP_HDR_EVENT},
        {"Subject", SIP_HDR_SUBJECT}, {"Refer-To", SIP_HDR_REFER_TO}, {"Session-Expires", SIP_HDR_SESSION_EXPIRES},
        {"Content-Encoding", SIP_HDR_CONTENT_ENCODING}, {"Allow-Events", SIP_HDR_ALLOW_EVENTS},
        {"Referred-By", SIP_HDR_REFERRED_BY}, {"RSeq", SIP_HDR_RSEQ}, {"RAck", SIP_HDR_RACK},
        {"User-Agent", SIP_HDR_USER_AGENT}, {"v", SIP_HDR_VIA}, {"L", SIP_HDR_CONTENT_LENGTH},
        {"Proxy-Require", SIP_HDR_OTHER}, {"Call-IDs", SIP_HDR_OTHER}, {"Tx", SIP_HDR_OTHER}, {"q", SIP_HDR_OTHER},
        {"Content-Encodings", SIP_HDR_OTHER},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK_EQ_INT(sip_hdr_id_of(names[i].name, strlen(names[i].name)), names[i].id);
}

#define CHECK_REASON(status, text) CHECK(strcmp(sip_reason_phrase(status), (text)) == 0)

static void test_reason_phrases(void)
{
    CHECK_REASON(100, "Trying");
    CHECK_REASON(420, "Bad Extension");
    CHECK_REASON(422, "Session Interval Too Small");
    CHECK_REASON(423, "Interval Too Brief");
    CHECK_REASON(489, "Bad Event");
    CHECK_REASON(491, "Request Pending");
    CHECK_REASON(504, "Server Time-out");
    CHECK_REASON(608, "Rejected");
    /* codes the table does not know get their class */
    CHECK_REASON(189, "Session Progress");
    CHECK_REASON(299, "OK");
    CHECK_REASON(399, "Redirect");
    CHECK_REASON(499, "Client Error");
    CHECK_REASON(599, "Server Error");
    CHECK_REASON(699, "Global Failure");
}

int main(void)
{
    RUN(test_reason_phrases);
    RUN(test_sipp_invite_parses);
    RUN(test_kamailio_response_with_record_route_and_vias);
    RUN(test_compact_forms_and_header_ids);
    RUN(test_folding_and_ws_before_colon);
    RUN(test_list_split_respects_quotes_and_angles);
    RUN(test_uri_forms);
    RUN(test_params_with_lws_and_quotes);
    RUN(test_via_variants);
    RUN(test_nameaddr_variants);
    RUN(test_cseq_bounds);
    RUN(test_malformed_messages_rejected);
    RUN(test_content_length_datagram_semantics);
    RUN(test_limits_give_e2big);
    RUN(test_every_prefix_parses_or_fails_cleanly);
    RUN(test_garbage_never_crashes);
    RUN(test_sipbuf);
    RUN(test_str_helpers);
    RUN(test_frame_whole_and_every_partial_prefix);
    RUN(test_frame_two_messages_and_keepalives);
    RUN(test_frame_errors);
    RUN(test_every_known_header_name_maps_to_its_id);
    RUN(test_check_rejects_and_marks);
    return CHECK_SUMMARY();
}
