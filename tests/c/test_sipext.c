/* Extension header views (csrc/sip/sip_ext.c): option tags, RSeq/RAck (RFC 3262), Session-Expires/Min-SE
 * (RFC 4028). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "sip/sip_ext.h"
#include "sip/sipmsg.h"

static const char RESP[] =
    "SIP/2.0 180 Ringing\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa\r\n"
    "From: <sip:a@example.com>;tag=1\r\n"
    "To: <sip:b@example.com>;tag=2\r\n"
    "Call-ID: c1\r\n"
    "CSeq: 7 INVITE\r\n"
    "k: timer , replaces\r\n"
    "Supported: 100REL\r\n"
    "Require: 100rel\r\n"
    "RSeq: 988789\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static void test_option_tags_across_headers_and_compact_form(void)
{
    struct sipmsg *m = NULL;
    CHECK_EQ_INT(sipmsg_parse(RESP, sizeof(RESP) - 1, NULL, &m, NULL), 0);
    CHECK(sip_has_option_tag(m, SIP_HDR_SUPPORTED, "timer"));
    CHECK(sip_has_option_tag(m, SIP_HDR_SUPPORTED, "replaces"));
    CHECK(sip_has_option_tag(m, SIP_HDR_SUPPORTED, "100rel")); /* case-insensitive */
    CHECK(sip_has_option_tag(m, SIP_HDR_REQUIRE, "100rel"));
    CHECK(!sip_has_option_tag(m, SIP_HDR_REQUIRE, "timer"));
    CHECK(!sip_has_option_tag(m, SIP_HDR_SUPPORTED, "time"));
    size_t p = 0;
    const struct sip_hdr *h = sipmsg_find(m, SIP_HDR_RSEQ, NULL, &p);
    uint32_t rseq = 0;
    CHECK(h != NULL);
    CHECK_EQ_INT(sip_rseq_parse(h->value, &rseq), 0);
    CHECK_EQ_INT(rseq, 988789);
    sipmsg_free(m);
}

static void test_rseq_bounds(void)
{
    uint32_t v = 0;
    CHECK_EQ_INT(sip_rseq_parse(sip_str_c(" 1 "), &v), 0);
    CHECK_EQ_INT(v, 1);
    CHECK_EQ_INT(sip_rseq_parse(sip_str_c("2147483647"), &v), 0);
    CHECK_EQ_INT(sip_rseq_parse(sip_str_c("2147483648"), &v), -EBADMSG);
    CHECK_EQ_INT(sip_rseq_parse(sip_str_c("0"), &v), -EBADMSG);
    CHECK_EQ_INT(sip_rseq_parse(sip_str_c("12a"), &v), -EBADMSG);
    CHECK_EQ_INT(sip_rseq_parse(sip_str_c(""), &v), -EBADMSG);
    CHECK_EQ_INT(sip_rseq_parse(sip_str_c("99999999999999999999"), &v), -EBADMSG);
}

static void test_rack_parse(void)
{
    struct sip_rack r;
    CHECK_EQ_INT(sip_rack_parse(sip_str_c("776656 1 INVITE"), &r), 0);
    CHECK_EQ_INT(r.rseq, 776656);
    CHECK_EQ_INT(r.cseq, 1);
    CHECK(sip_str_eqc(r.method, "INVITE"));
    CHECK_EQ_INT(sip_rack_parse(sip_str_c("  5\t 314   INVITE "), &r), 0);
    CHECK_EQ_INT(r.cseq, 314);
    CHECK(sip_str_eqc(r.method, "INVITE"));
    CHECK_EQ_INT(sip_rack_parse(sip_str_c("5 314"), &r), -EBADMSG);
    CHECK_EQ_INT(sip_rack_parse(sip_str_c("5314 INVITE"), &r), -EBADMSG);
    CHECK_EQ_INT(sip_rack_parse(sip_str_c("0 1 INVITE"), &r), -EBADMSG);
    CHECK_EQ_INT(sip_rack_parse(sip_str_c("1 1 INV ITE"), &r), -EBADMSG);
    CHECK_EQ_INT(sip_rack_parse(sip_str_c("x 1 INVITE"), &r), -EBADMSG);
}

static void test_session_expires_and_min_se(void)
{
    struct sip_session_expires se;
    CHECK_EQ_INT(sip_session_expires_parse(sip_str_c("1800;refresher=uac"), &se), 0);
    CHECK_EQ_INT(se.delta, 1800);
    CHECK_EQ_INT(se.refresher, SIP_REFRESHER_UAC);
    CHECK_EQ_INT(sip_session_expires_parse(sip_str_c("90 ; foo=bar; REFRESHER=UAS"), &se), 0);
    CHECK_EQ_INT(se.delta, 90);
    CHECK_EQ_INT(se.refresher, SIP_REFRESHER_UAS);
    CHECK_EQ_INT(sip_session_expires_parse(sip_str_c("4"), &se), 0); /* Min-SE form */
    CHECK_EQ_INT(se.refresher, SIP_REFRESHER_NONE);
    CHECK_EQ_INT(sip_session_expires_parse(sip_str_c("4;refresher=both"), &se), -EBADMSG);
    CHECK_EQ_INT(sip_session_expires_parse(sip_str_c("0"), &se), -EBADMSG);
    CHECK_EQ_INT(sip_session_expires_parse(sip_str_c("4 x"), &se), -EBADMSG);
    CHECK_EQ_INT(sip_session_expires_parse(sip_str_c(";refresher=uac"), &se), -EBADMSG);
}

int main(void)
{
    RUN(test_option_tags_across_headers_and_compact_form);
    RUN(test_rseq_bounds);
    RUN(test_rack_parse);
    RUN(test_session_expires_and_min_se);
    return CHECK_SUMMARY();
}
