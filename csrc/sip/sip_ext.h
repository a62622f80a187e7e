/* Header views of the SIP extensions a phone uses (sans-IO, borrow the buffer they point into):
 * option tags (Supported/Require, RFC 3261 20.37/20.32), RSeq and RAck (RFC 3262 7.1/7.2),
 * Session-Expires and Min-SE (RFC 4028 4/5). */
#ifndef PYSIPTEST_SIP_SIP_EXT_H
#define PYSIPTEST_SIP_SIP_EXT_H

#include <stdint.h>

#include "sipmsg.h"

/* 1 when any header with this id (e.g. SIP_HDR_SUPPORTED, SIP_HDR_REQUIRE) lists option tag `tag`
 * (case-insensitive), else 0.  The compact form "k" of Supported is found through the header id. */
int sip_has_option_tag(const struct sipmsg *m, enum sip_hdr_id id, const char *tag);

/* RSeq: 1*DIGIT, 1 .. 2**31-1.  0 or -EBADMSG. */
int sip_rseq_parse(struct sip_str in, uint32_t *rseq);

struct sip_rack {
    uint32_t rseq;
    uint32_t cseq;
    struct sip_str method;
};
/* RAck: response-num LWS CSeq-num LWS Method.  0 or -EBADMSG. */
int sip_rack_parse(struct sip_str in, struct sip_rack *out);

enum sip_refresher { SIP_REFRESHER_NONE = 0, SIP_REFRESHER_UAC, SIP_REFRESHER_UAS };
struct sip_session_expires {
    uint32_t delta; /* seconds, > 0 */
    enum sip_refresher refresher;
};
/* Session-Expires: delta-seconds *(;se-params), refresher=uac|uas (others ignored).  0 or -EBADMSG.
 * Min-SE is parsed with the same function (its refresher stays NONE). */
int sip_session_expires_parse(struct sip_str in, struct sip_session_expires *out);

#endif
