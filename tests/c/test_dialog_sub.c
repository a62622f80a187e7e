/* Subscription dialogs (RFC 6665 4.1.2.4): a dialog made from our SUBSCRIBE and a NOTIFY that arrived before
 * the 2xx (csrc/sip/dialog.c dialog_new_notify), and the in-dialog request it builds. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "sip/dialog.h"
#include "sip/sipmsg.h"

static const char SUB[] =
    "SUBSCRIBE sip:mwi@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKs1\r\n"
    "From: \"Al\" <sip:alice@example.com>;tag=ours\r\n"
    "To: <sip:mwi@example.com>\r\n"
    "Call-ID: sub1\r\n"
    "CSeq: 4 SUBSCRIBE\r\n"
    "Contact: <sip:alice@10.0.0.1>\r\n"
    "Event: message-summary\r\n"
    "Content-Length: 0\r\n\r\n";

static const char NOTIFY[] =
    "NOTIFY sip:alice@10.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKn1\r\n"
    "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    "From: <sip:mwi@example.com>;tag=theirs\r\n"
    "To: <sip:alice@example.com>;tag=ours\r\n"
    "Call-ID: sub1\r\n"
    "CSeq: 1 NOTIFY\r\n"
    "Contact: <sip:mwi@10.0.0.9:5070>\r\n"
    "Event: message-summary\r\n"
    "Subscription-State: active;expires=60\r\n"
    "Content-Length: 0\r\n\r\n";

static void test_notify_first_makes_the_subscriber_dialog(void)
{
    struct sipmsg *sub = NULL, *notify = NULL;
    CHECK_EQ_INT(sipmsg_parse(SUB, sizeof(SUB) - 1, NULL, &sub, NULL), 0);
    CHECK_EQ_INT(sipmsg_parse(NOTIFY, sizeof(NOTIFY) - 1, NULL, &notify, NULL), 0);
    struct dialog *d = NULL;
    CHECK_EQ_INT(dialog_new_notify(sub, notify, &d), 0);
    CHECK(d != NULL);
    CHECK(strcmp(d->local_tag, "ours") == 0);
    CHECK(strcmp(d->remote_tag, "theirs") == 0);
    CHECK(strcmp(d->remote_target, "sip:mwi@10.0.0.9:5070") == 0);
    CHECK_EQ_INT(d->nroute, 2);
    CHECK(strcmp(d->route[0], "<sip:p1.example.com;lr>") == 0); /* as received, not reversed */
    CHECK_EQ_INT(d->local_cseq, 4);
    CHECK(d->is_uac && d->state == DIALOG_CONFIRMED);
    struct sipbuf b;
    sipbuf_init(&b);
    CHECK_EQ_INT(dialog_build_request(d, "SUBSCRIBE", 0, "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKr", NULL, NULL, 0,
                                      NULL, &b), 5);
    CHECK(b.len > 0 && memmem(b.p, b.len, "To: <sip:mwi@example.com>;tag=theirs\r\n", 38) != NULL);
    CHECK(memmem(b.p, b.len, "Route: <sip:p1.example.com;lr>\r\n", 32) != NULL);
    sipbuf_free(&b);
    dialog_free(d);
    sipmsg_free(sub);
    sipmsg_free(notify);
}

static void test_notify_without_contact_or_tags_is_refused(void)
{
    static const char BAD[] =
        "NOTIFY sip:alice@10.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKn2\r\n"
        "From: <sip:mwi@example.com>;tag=theirs\r\n"
        "To: <sip:alice@example.com>;tag=ours\r\n"
        "Call-ID: sub1\r\nCSeq: 2 NOTIFY\r\nContent-Length: 0\r\n\r\n";
    static const char NOTAG[] =
        "NOTIFY sip:alice@10.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKn3\r\n"
        "From: <sip:mwi@example.com>\r\n"
        "To: <sip:alice@example.com>;tag=ours\r\n"
        "Call-ID: sub1\r\nCSeq: 2 NOTIFY\r\nContact: <sip:x@10.0.0.9>\r\nContent-Length: 0\r\n\r\n";
    struct sipmsg *sub = NULL, *n1 = NULL, *n2 = NULL;
    CHECK_EQ_INT(sipmsg_parse(SUB, sizeof(SUB) - 1, NULL, &sub, NULL), 0);
    CHECK_EQ_INT(sipmsg_parse(BAD, sizeof(BAD) - 1, NULL, &n1, NULL), 0);
    CHECK_EQ_INT(sipmsg_parse(NOTAG, sizeof(NOTAG) - 1, NULL, &n2, NULL), 0);
    struct dialog *d = NULL;
    CHECK_EQ_INT(dialog_new_notify(sub, n1, &d), -EBADMSG);
    CHECK_EQ_INT(dialog_new_notify(sub, n2, &d), -EBADMSG);
    CHECK(d == NULL);
    sipmsg_free(sub);
    sipmsg_free(n1);
    sipmsg_free(n2);
}

int main(void)
{
    RUN(test_notify_first_makes_the_subscriber_dialog);
    RUN(test_notify_without_contact_or_tags_is_refused);
    return CHECK_SUMMARY();
}
