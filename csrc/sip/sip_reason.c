/* Reason phrases of SIP status codes: RFC 3261 section 21 and the extensions a phone meets
 * (RFC 3262, 3265/6665, 3329, 3903, 4028, 4412, 5079, 5360, 5393, 6228, 8599 ...).  The one table the
 * engine (responses built without a reason) and the Python API (Message.response) use. */
#include "sipmsg.h"

struct reason { short status; const char *text; };

/* sorted by status: looked up by binary search */
static const struct reason REASONS[] = {
    {100, "Trying"}, {180, "Ringing"}, {181, "Call Is Being Forwarded"}, {182, "Queued"},
    {183, "Session Progress"}, {199, "Early Dialog Terminated"},
    {200, "OK"}, {202, "Accepted"}, {204, "No Notification"},
    {300, "Multiple Choices"}, {301, "Moved Permanently"}, {302, "Moved Temporarily"}, {305, "Use Proxy"},
    {380, "Alternative Service"},
    {400, "Bad Request"}, {401, "Unauthorized"}, {402, "Payment Required"}, {403, "Forbidden"},
    {404, "Not Found"}, {405, "Method Not Allowed"}, {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"}, {408, "Request Timeout"}, {410, "Gone"},
    {412, "Conditional Request Failed"}, {413, "Request Entity Too Large"}, {414, "Request-URI Too Long"},
    {415, "Unsupported Media Type"}, {416, "Unsupported URI Scheme"}, {417, "Unknown Resource-Priority"},
    {420, "Bad Extension"}, {421, "Extension Required"}, {422, "Session Interval Too Small"},
    {423, "Interval Too Brief"}, {428, "Use Identity Header"}, {429, "Provide Referrer Identity"},
    {430, "Flow Failed"}, {433, "Anonymity Disallowed"}, {436, "Bad Identity-Info"},
    {437, "Unsupported Certificate"}, {438, "Invalid Identity Header"}, {439, "First Hop Lacks Outbound Support"},
    {440, "Max-Breadth Exceeded"}, {469, "Bad Info Package"}, {470, "Consent Needed"},
    {480, "Temporarily Unavailable"}, {481, "Call/Transaction Does Not Exist"}, {482, "Loop Detected"},
    {483, "Too Many Hops"}, {484, "Address Incomplete"}, {485, "Ambiguous"}, {486, "Busy Here"},
    {487, "Request Terminated"}, {488, "Not Acceptable Here"}, {489, "Bad Event"}, {491, "Request Pending"},
    {493, "Undecipherable"}, {494, "Security Agreement Required"},
    {500, "Server Internal Error"}, {501, "Not Implemented"}, {502, "Bad Gateway"}, {503, "Service Unavailable"},
    {504, "Server Time-out"}, {505, "Version Not Supported"}, {513, "Message Too Large"},
    {555, "Push Notification Service Not Supported"}, {580, "Precondition Failure"},
    {600, "Busy Everywhere"}, {603, "Decline"}, {604, "Does Not Exist Anywhere"}, {606, "Not Acceptable"},
    {607, "Unwanted"}, {608, "Rejected"},
};

const char *sip_reason_phrase(int status)
{
    size_t lo = 0, hi = sizeof REASONS / sizeof REASONS[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (REASONS[mid].status == status)
            return REASONS[mid].text;
        if (REASONS[mid].status < status)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (status < 200) return "Session Progress";
    if (status < 300) return "OK";
    if (status < 400) return "Redirect";
    if (status < 500) return "Client Error";
    if (status < 600) return "Server Error";
    return "Global Failure";
}
