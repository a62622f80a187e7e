/* RFC 3261 section 12 dialog state, sans-IO.
 *
 * A dialog is created from the INVITE and the response that established it
 * (UAC side) or from the INVITE and the local tag of our response (UAS side).
 * It keeps the Call-ID, tags, local and remote URIs, the remote target, the
 * route set and the CSeq counters, and builds in-dialog requests.  The owner
 * (the engine) decides where the bytes go using dialog_next_hop().
 */
#ifndef PYSIPTEST_SIP_DIALOG_H
#define PYSIPTEST_SIP_DIALOG_H

#include <stddef.h>
#include <stdint.h>

#include "sipmsg.h"

enum dialog_state { DIALOG_EARLY, DIALOG_CONFIRMED, DIALOG_TERMINATED };

struct dialog {
    enum dialog_state state;
    int is_uac;
    char *call_id;
    char *local_tag;
    char *remote_tag;
    char *local_uri;     /* our From (UAC) / To (UAS) header value without the tag parameter */
    char *remote_uri;    /* the peer's one, likewise */
    char *remote_target; /* URI from the peer's Contact (without <>) */
    char **route;        /* route set, each a name-addr value like "<sip:10.0.0.1;lr>" */
    size_t nroute;
    uint32_t local_cseq;
    uint32_t remote_cseq; /* 0 = none seen yet */
};

/* UAC: req is our INVITE, resp a 101-299 response with a To tag. 0, -EBADMSG, -ENOMEM. *out owned by caller. */
int dialog_new_uac(const struct sipmsg *req, const struct sipmsg *resp, struct dialog **out);
/* UAS: req is the received INVITE; local_tag our To tag. */
int dialog_new_uas(const struct sipmsg *req, const char *local_tag, struct dialog **out);
void dialog_free(struct dialog *d);
/* Subscriber: sub is our SUBSCRIBE or REFER, notify a NOTIFY that arrived before the 2xx (RFC 6665 4.1.2.4): the
 * remote tag is the NOTIFY's From tag, the target its Contact, the route set its Record-Route (not reversed). */
int dialog_new_notify(const struct sipmsg *sub, const struct sipmsg *notify, struct dialog **out);

/* Target refresh: take the remote target from msg's Contact if it has one. 0 or negative. */
int dialog_refresh_target(struct dialog *d, const struct sipmsg *msg);
/* UAC: confirm an early dialog with a 2xx, taking its route set (reversed Record-Route) and target again. */
int dialog_confirm_uac(struct dialog *d, const struct sipmsg *resp);

/* Build an in-dialog request.
 * cseq: 0 to use ++local_cseq, else this number (the ACK for a 2xx uses the INVITE's).
 * via: the complete Via header value for the top Via (borrowed).
 * extra: preformatted header lines "Name: value\r\n..." (may be NULL).
 * Writes the whole message to out. Returns the CSeq used (>0) or a negative error. */
long dialog_build_request(struct dialog *d, const char *method, uint32_t cseq, const char *via, const char *extra,
                          const char *body, size_t blen, const char *content_type, struct sipbuf *out);

/* Next hop of in-dialog requests: host of the first route if any, else of the remote target.
 * host gets a NUL-terminated copy (hostlen bytes), *port the port or 5060/5061 when absent. 0 or -EINVAL. */
int dialog_next_hop(const struct dialog *d, char *host, size_t hostlen, uint16_t *port);

/* Dialog matching key: Call-ID, local tag, remote tag joined by NUL bytes into key (keylen bytes);
 * returns the key length or -E2BIG. */
long dialog_key(struct sip_str call_id, struct sip_str local_tag, struct sip_str remote_tag, char *key,
                size_t keylen);

#endif
