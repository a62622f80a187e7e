/* _core.Message: an immutable parsed SIP message, and the module functions
 * parse() and parse_uri().
 *
 * A Message owns one struct sipmsg (csrc/sip/sipmsg.h).  Strings handed to
 * Python are decoded as UTF-8 with errors="surrogateescape", so no byte of
 * the wire is lost; None stands for "not applicable" (the method of a
 * response) or "absent".  Parse failures raise _core.ParseError with .offset
 * and .reason; wrong arguments raise TypeError or ValueError.
 */
#include "module.h"

#include <errno.h>
#include <string.h>

#include "sip/sipmsg.h"

typedef struct {
    PyObject_HEAD
    struct sipmsg *m; /* owned */
} MessageObject;

/* ---- conversions ---- */

static PyObject *str_or_none(struct sip_str s, int none_if_empty)
{
    if (s.len == 0 && none_if_empty)
        Py_RETURN_NONE;
    if (s.len > PY_SSIZE_T_MAX)
        return PyErr_NoMemory();
    return PyUnicode_DecodeUTF8(s.len ? s.p : "", (Py_ssize_t)s.len, "surrogateescape");
}

static PyObject *str_of(struct sip_str s)
{
    return str_or_none(s, 0);
}

/* Raise the exception that matches a negative code from the C library. */
static PyObject *raise_sip_error(struct pysip_state *st, int rc, const struct sip_error *e)
{
    if (rc == -ENOMEM)
        return PyErr_NoMemory();
    return pysip_raise_parse_error(st, e->offset, e->reason[0] ? e->reason : "malformed SIP data");
}

/* {name: value or None} for a ;-separated parameter slice, in wire order. */
static PyObject *params_dict(struct sip_str params)
{
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    struct sip_str rest = params, n, v;
    while (sip_param_next(&rest, &n, &v) == 0) {
        PyObject *k = str_of(n);
        PyObject *val = str_or_none(v, 1);
        if (k == NULL || val == NULL || PyDict_SetItem(d, k, val) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(val);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(val);
    }
    return d;
}

/* {name: value or None} for URI headers "a=1&b=2". */
static PyObject *uri_headers_dict(struct sip_str h)
{
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    size_t i = 0;
    while (i < h.len) {
        size_t e = i;
        while (e < h.len && h.p[e] != '&')
            e++;
        if (e > i) {
            const char *eq = memchr(h.p + i, '=', e - i);
            struct sip_str n = {h.p + i, eq ? (size_t)(eq - (h.p + i)) : e - i};
            struct sip_str v = {eq ? eq + 1 : NULL, eq ? (size_t)(h.p + e - eq - 1) : 0};
            PyObject *k = str_of(n);
            PyObject *val = eq ? str_of(v) : (Py_INCREF(Py_None), Py_None);
            if (k == NULL || val == NULL || PyDict_SetItem(d, k, val) < 0) {
                Py_XDECREF(k);
                Py_XDECREF(val);
                Py_DECREF(d);
                return NULL;
            }
            Py_DECREF(k);
            Py_DECREF(val);
        }
        i = e + 1;
    }
    return d;
}

/* A display name with its quoted-pairs resolved (\" -> ", \\ -> \). */
static PyObject *unescape_display(struct sip_str s)
{
    if (s.len == 0)
        Py_RETURN_NONE;
    if (memchr(s.p, '\\', s.len) == NULL)
        return str_of(s);
    PyObject *raw = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)s.len);
    if (raw == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(raw);
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] == '\\' && i + 1 < s.len)
            i++;
        out[n++] = s.p[i];
    }
    PyObject *r = PyUnicode_DecodeUTF8(out, (Py_ssize_t)n, "surrogateescape");
    Py_DECREF(raw);
    return r;
}

/* A header name argument as UTF-8 bytes (borrowed from the str object). */
static int name_arg(PyObject *arg, struct sip_str *out)
{
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "header name must be str, not %.100s", Py_TYPE(arg)->tp_name);
        return -1;
    }
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(arg, &n);
    if (p == NULL)
        return -1;
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "header name must not be empty");
        return -1;
    }
    out->p = p;
    out->len = (size_t)n;
    return 0;
}

/* Does header h have this name (long and compact forms equivalent)? */
static int hdr_matches(const struct sip_hdr *h, enum sip_hdr_id id, struct sip_str name)
{
    if (id != SIP_HDR_OTHER)
        return h->id == id;
    return h->id == SIP_HDR_OTHER && sip_str_ieq(h->name, name);
}

/* Headers whose value is one item even when it contains commas (dates, auth params, addresses). */
static int is_single_valued(const struct sip_hdr *h)
{
    switch (h->id) {
    case SIP_HDR_FROM:
    case SIP_HDR_TO:
    case SIP_HDR_CALL_ID:
    case SIP_HDR_CSEQ:
    case SIP_HDR_MAX_FORWARDS:
    case SIP_HDR_CONTENT_LENGTH:
    case SIP_HDR_CONTENT_TYPE:
    case SIP_HDR_EXPIRES:
    case SIP_HDR_SUBJECT:
    case SIP_HDR_REFER_TO:
    case SIP_HDR_REFERRED_BY:
    case SIP_HDR_SESSION_EXPIRES:
    case SIP_HDR_RSEQ:
    case SIP_HDR_RACK:
    case SIP_HDR_USER_AGENT:
    case SIP_HDR_EVENT:
        return 1;
    default:
        break;
    }
    static const char *const names[] = {
        "Date",          "Server",              "Organization",        "Timestamp",    "Retry-After",
        "Min-Expires",   "WWW-Authenticate",    "Authorization",       "Proxy-Authenticate",
        "Proxy-Authorization", "Authentication-Info", "Replaces",      "Min-SE",       "Subscription-State",
        "Priority",      "Reply-To",            "MIME-Version",        "Content-Disposition", "Identity",
        "P-Asserted-Identity-Display", "Reason-Phrase",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (sip_str_ieqc(h->name, names[i]))
            return 1;
    return 0;
}

/* ---- the type ---- */

static struct pysip_state *msg_state(MessageObject *self)
{
    return pysip_state_from_type(Py_TYPE(self));
}

static void message_dealloc(MessageObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    sipmsg_free(self->m);
    self->m = NULL;
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *message_repr(MessageObject *self)
{
    const struct sipmsg *m = self->m;
    PyObject *a = str_of(m->is_request ? m->method : m->reason);
    PyObject *b = m->is_request ? str_of(m->uri) : PyLong_FromLong(m->status);
    PyObject *r = NULL;
    if (a && b)
        r = m->is_request ? PyUnicode_FromFormat("<Message %U %U>", a, b) : PyUnicode_FromFormat("<Message %S %U>", b, a);
    Py_XDECREF(a);
    Py_XDECREF(b);
    return r;
}

static PyObject *message_get_is_request(MessageObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->m->is_request);
}

static PyObject *message_get_method(MessageObject *self, void *closure)
{
    (void)closure;
    if (!self->m->is_request)
        Py_RETURN_NONE;
    return str_of(self->m->method);
}

static PyObject *message_get_uri(MessageObject *self, void *closure)
{
    (void)closure;
    if (!self->m->is_request)
        Py_RETURN_NONE;
    return str_of(self->m->uri);
}

static PyObject *message_get_status(MessageObject *self, void *closure)
{
    (void)closure;
    if (self->m->is_request)
        Py_RETURN_NONE;
    return PyLong_FromLong(self->m->status);
}

static PyObject *message_get_reason(MessageObject *self, void *closure)
{
    (void)closure;
    if (self->m->is_request)
        Py_RETURN_NONE;
    return str_of(self->m->reason);
}

static PyObject *message_get_version(MessageObject *self, void *closure)
{
    (void)closure;
    return str_of(self->m->version);
}

static PyObject *message_get_headers(MessageObject *self, void *closure)
{
    (void)closure;
    const struct sipmsg *m = self->m;
    PyObject *list = PyList_New((Py_ssize_t)m->nhdrs);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < m->nhdrs; i++) {
        PyObject *n = str_of(m->hdrs[i].name);
        PyObject *v = n ? str_of(m->hdrs[i].value) : NULL;
        PyObject *t = v ? PyTuple_Pack(2, n, v) : NULL;
        Py_XDECREF(n);
        Py_XDECREF(v);
        if (t == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
}

static PyObject *message_get_warnings(MessageObject *self, void *closure)
{
    (void)closure;
    const struct sipmsg *m = self->m;
    PyObject *list = PyList_New((Py_ssize_t)m->nwarnings);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < m->nwarnings; i++) {
        PyObject *w = PyUnicode_FromFormat("%s (at byte %zu)", m->warnings[i].what, m->warnings[i].offset);
        if (w == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, w);
    }
    return list;
}

static PyObject *message_get_body(MessageObject *self, void *closure)
{
    (void)closure;
    return PyBytes_FromStringAndSize(self->m->body.len ? self->m->body.p : "", (Py_ssize_t)self->m->body.len);
}

static PyObject *message_get_call_id(MessageObject *self, void *closure)
{
    (void)closure;
    const struct sip_hdr *h = sipmsg_find(self->m, SIP_HDR_CALL_ID, NULL, NULL);
    if (h == NULL)
        Py_RETURN_NONE;
    return str_of(h->value);
}

static PyObject *message_get_content_length(MessageObject *self, void *closure)
{
    (void)closure;
    const struct sip_hdr *h = sipmsg_find(self->m, SIP_HDR_CONTENT_LENGTH, NULL, NULL);
    if (h == NULL)
        Py_RETURN_NONE;
    /* the parser validated the digits and that the value fits the data */
    return PyLong_FromSize_t(self->m->body.len);
}

static PyObject *message_header_impl(MessageObject *self, struct sip_str name)
{
    enum sip_hdr_id id = sip_hdr_id_of(name.p, name.len);
    for (size_t i = 0; i < self->m->nhdrs; i++)
        if (hdr_matches(&self->m->hdrs[i], id, name))
            return str_of(self->m->hdrs[i].value);
    Py_RETURN_NONE;
}

static PyObject *message_header(MessageObject *self, PyObject *arg)
{
    struct sip_str name;
    if (name_arg(arg, &name) < 0)
        return NULL;
    return message_header_impl(self, name);
}

static int list_append_str(PyObject *list, struct sip_str s)
{
    PyObject *v = str_of(s);
    if (v == NULL)
        return -1;
    int rc = PyList_Append(list, v);
    Py_DECREF(v);
    return rc;
}

static PyObject *message_headers_all_impl(MessageObject *self, struct sip_str name)
{
    enum sip_hdr_id id = sip_hdr_id_of(name.p, name.len);
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < self->m->nhdrs; i++) {
        const struct sip_hdr *h = &self->m->hdrs[i];
        if (!hdr_matches(h, id, name))
            continue;
        if (is_single_valued(h)) {
            if (list_append_str(list, h->value) < 0)
                goto fail;
            continue;
        }
        struct sip_str rest = h->value, el;
        int n = 0;
        while (sip_list_next(&rest, &el) == 0) {
            if (list_append_str(list, el) < 0)
                goto fail;
            n++;
        }
        if (n == 0 && list_append_str(list, h->value) < 0) /* present but empty */
            goto fail;
    }
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *message_headers_all(MessageObject *self, PyObject *arg)
{
    struct sip_str name;
    if (name_arg(arg, &name) < 0)
        return NULL;
    return message_headers_all_impl(self, name);
}

static PyObject *via_dict(const struct sip_via *v)
{
    PyObject *rport;
    if (!v->has_rport)
        rport = Py_NewRef(Py_None);
    else if (v->rport == 0)
        rport = Py_NewRef(Py_True);
    else
        rport = PyLong_FromLong(v->rport);
    PyObject *port = v->port ? PyLong_FromLong(v->port) : Py_NewRef(Py_None);
    PyObject *transport = str_of(v->transport);
    PyObject *host = str_of(v->host);
    PyObject *branch = str_or_none(v->branch, 1);
    PyObject *received = str_or_none(v->received, 1);
    PyObject *params = params_dict(v->params);
    PyObject *d = NULL;
    if (rport && port && transport && host && branch && received && params)
        d = Py_BuildValue("{sOsOsOsOsOsOsO}", "transport", transport, "host", host, "port", port, "branch", branch,
                          "received", received, "rport", rport, "params", params);
    Py_XDECREF(rport);
    Py_XDECREF(port);
    Py_XDECREF(transport);
    Py_XDECREF(host);
    Py_XDECREF(branch);
    Py_XDECREF(received);
    Py_XDECREF(params);
    return d;
}

static PyObject *message_via_impl(MessageObject *self, Py_ssize_t index)
{
    Py_ssize_t n = 0;
    size_t pos = 0;
    const struct sip_hdr *h;
    while ((h = sipmsg_find(self->m, SIP_HDR_VIA, NULL, &pos)) != NULL) {
        struct sip_str rest = h->value, el;
        while (sip_list_next(&rest, &el) == 0) {
            if (n++ != index)
                continue;
            struct sip_via v;
            struct sip_error e = {0};
            int rc = sip_via_parse(el, &v, &e);
            if (rc < 0) {
                e.offset += (size_t)(el.p - self->m->buf);
                return raise_sip_error(msg_state(self), rc, &e);
            }
            return via_dict(&v);
        }
    }
    Py_RETURN_NONE;
}

static PyObject *message_via(MessageObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"index", NULL};
    Py_ssize_t index = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|n:via", kwlist, &index))
        return NULL;
    if (index < 0) {
        PyErr_Format(PyExc_ValueError, "Via index must be >= 0, not %zd", index);
        return NULL;
    }
    return message_via_impl(self, index);
}

static PyObject *message_nameaddr_impl(MessageObject *self, struct sip_str name)
{
    enum sip_hdr_id id = sip_hdr_id_of(name.p, name.len);
    for (size_t i = 0; i < self->m->nhdrs; i++) {
        const struct sip_hdr *h = &self->m->hdrs[i];
        if (!hdr_matches(h, id, name))
            continue;
        struct sip_str el = h->value;
        if (!is_single_valued(h)) {
            struct sip_str rest = h->value;
            if (sip_list_next(&rest, &el) < 0)
                el = h->value;
        }
        struct sip_nameaddr na;
        struct sip_error e = {0};
        int rc = sip_nameaddr_parse(el, &na, &e);
        if (rc < 0) {
            e.offset += (size_t)(el.p - self->m->buf);
            return raise_sip_error(msg_state(self), rc, &e);
        }
        PyObject *display = unescape_display(na.display);
        PyObject *uri = str_of(na.uri);
        PyObject *tag = str_or_none(na.tag, 1);
        PyObject *params = params_dict(na.params);
        PyObject *d = NULL;
        if (display && uri && tag && params)
            d = Py_BuildValue("{sOsOsOsO}", "display", display, "uri", uri, "tag", tag, "params", params);
        Py_XDECREF(display);
        Py_XDECREF(uri);
        Py_XDECREF(tag);
        Py_XDECREF(params);
        return d;
    }
    Py_RETURN_NONE;
}

static PyObject *message_nameaddr(MessageObject *self, PyObject *arg)
{
    struct sip_str name;
    if (name_arg(arg, &name) < 0)
        return NULL;
    return message_nameaddr_impl(self, name);
}

static PyObject *message_cseq(MessageObject *self, PyObject *unused)
{
    (void)unused;
    const struct sip_hdr *h = sipmsg_find(self->m, SIP_HDR_CSEQ, NULL, NULL);
    if (h == NULL)
        Py_RETURN_NONE;
    struct sip_cseq cs;
    struct sip_error e = {0};
    int rc = sip_cseq_parse(h->value, &cs, &e);
    if (rc < 0) {
        e.offset += (size_t)(h->value.p - self->m->buf);
        return raise_sip_error(msg_state(self), rc, &e);
    }
    PyObject *method = str_of(cs.method);
    if (method == NULL)
        return NULL;
    PyObject *r = Py_BuildValue("(kO)", (unsigned long)cs.num, method);
    Py_DECREF(method);
    return r;
}

static PyObject *message_bytes(MessageObject *self, PyObject *unused)
{
    (void)unused;
    return PyBytes_FromStringAndSize(self->m->buf, (Py_ssize_t)self->m->len);
}

static PyMethodDef message_methods[] = {
    {"header", (PyCFunction)message_header, METH_O,
     "header(name) -> str | None\n\nValue of the first header called name (case-insensitive; compact and long "
     "forms are equivalent), or None."},
    {"headers_all", (PyCFunction)message_headers_all, METH_O,
     "headers_all(name) -> list[str]\n\nValues of every header called name, list headers split into their "
     "comma-separated elements (never inside quotes or <>)."},
    {"via", (PyCFunction)(void (*)(void))message_via, METH_VARARGS | METH_KEYWORDS,
     "via(index=0) -> dict | None\n\nThe index-th Via element counted across all Via headers, as a dict with "
     "transport, host, port, branch, received, rport and params; None when there are fewer."},
    {"nameaddr", (PyCFunction)message_nameaddr, METH_O,
     "nameaddr(name) -> dict | None\n\nThe first element of that header (From, To, Contact, Route ...) as a dict "
     "with display, uri, tag and params; raises ParseError when malformed."},
    {"cseq", (PyCFunction)message_cseq, METH_NOARGS,
     "cseq() -> (int, str) | None\n\nThe CSeq number and method; raises ParseError when malformed or >= 2**31."},
    {"__bytes__", (PyCFunction)message_bytes, METH_NOARGS, "The message bytes (folded header lines joined)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef message_getset[] = {
    {"is_request", (getter)message_get_is_request, NULL, "True for a request, False for a response.", NULL},
    {"method", (getter)message_get_method, NULL, "Request method, None for a response.", NULL},
    {"uri", (getter)message_get_uri, NULL, "Request-URI, None for a response.", NULL},
    {"status", (getter)message_get_status, NULL, "Status code, None for a request.", NULL},
    {"reason", (getter)message_get_reason, NULL, "Reason phrase, None for a request.", NULL},
    {"version", (getter)message_get_version, NULL, "SIP version from the start line, e.g. 'SIP/2.0'.", NULL},
    {"headers", (getter)message_get_headers, NULL, "List of (name, value) in wire order, names as written.", NULL},
    {"body", (getter)message_get_body, NULL, "The body bytes.", NULL},
    {"warnings", (getter)message_get_warnings, NULL,
     "What the parser accepted as a tolerant element (RFC 4475), e.g. a Date not in GMT: list of str.", NULL},
    {"call_id", (getter)message_get_call_id, NULL, "Call-ID value or None.", NULL},
    {"content_length", (getter)message_get_content_length, NULL, "Content-Length value or None when absent.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot message_slots[] = {
    {Py_tp_dealloc, message_dealloc},
    {Py_tp_repr, message_repr},
    {Py_tp_methods, message_methods},
    {Py_tp_getset, message_getset},
    {Py_tp_doc, "An immutable parsed SIP message; create one with pysiptest._core.parse(data)."},
    {0, NULL},
};

static PyType_Spec message_spec = {
    .name = "pysiptest._core.Message",
    .basicsize = sizeof(MessageObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = message_slots,
};

PyObject *pysip_message_wrap(struct pysip_state *st, struct sipmsg *m)
{
    if (m == NULL) {
        PyErr_SetString(PyExc_SystemError, "pysip_message_wrap: no message");
        return NULL;
    }
    if (st == NULL || st->MessageType == NULL) {
        sipmsg_free(m);
        PyErr_SetString(PyExc_SystemError, "pysiptest._core.Message type is not initialised");
        return NULL;
    }
    PyTypeObject *cls = st->MessageClass ? st->MessageClass : st->MessageType;
    MessageObject *self = (MessageObject *)cls->tp_alloc(cls, 0);
    if (self == NULL) {
        sipmsg_free(m);
        return NULL;
    }
    self->m = m;
    return (PyObject *)self;
}

int pysip_message_add_types(PyObject *module, struct pysip_state *st)
{
    st->MessageType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &message_spec, NULL);
    if (st->MessageType == NULL)
        return -1;
    return PyModule_AddType(module, st->MessageType);
}

/* ---- module functions ---- */

static PyObject *parse_impl(PyObject *module, const char *data, size_t len, size_t max_size, size_t max_headers,
                           int strict)
{
    struct pysip_state *st = pysip_state_from_module(module);
    struct sipmsg_limits lim = {.max_size = max_size, .max_headers = max_headers,
                                .flags = strict ? 0u : SIPMSG_SYNTAX_ONLY};
    struct sipmsg *m = NULL;
    struct sip_error e = {0};
    int rc = sipmsg_parse(data, len, &lim, &m, &e);
    if (rc < 0)
        return raise_sip_error(st, rc, &e);
    return pysip_message_wrap(st, m);
}

static PyObject *pysip_parse(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"data", "max_size", "max_headers", "strict", NULL};
    Py_buffer buf;
    Py_ssize_t max_size = 0, max_headers = 0;
    int strict = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*|nn$p:parse", kwlist, &buf, &max_size, &max_headers, &strict))
        return NULL;
    PyObject *r = NULL;
    if (max_size < 0 || max_headers < 0)
        PyErr_SetString(PyExc_ValueError, "max_size and max_headers must be >= 0 (0 means the default)");
    else
        r = parse_impl(module, buf.buf, (size_t)buf.len, (size_t)max_size, (size_t)max_headers, strict);
    PyBuffer_Release(&buf);
    return r;
}

static PyObject *parse_uri_impl(PyObject *module, const char *p, size_t len)
{
    struct pysip_state *st = pysip_state_from_module(module);
    struct sip_uri u;
    struct sip_error e = {0};
    int rc = sip_uri_parse((struct sip_str){p, len}, &u, &e);
    if (rc < 0)
        return raise_sip_error(st, rc, &e);
    PyObject *scheme = str_of(u.scheme);
    PyObject *user = str_or_none(u.user, 1);
    PyObject *password = str_or_none(u.password, 1);
    PyObject *host = str_or_none(u.host, 1);
    PyObject *port = u.port ? PyLong_FromLong(u.port) : Py_NewRef(Py_None);
    PyObject *params = params_dict(u.params);
    PyObject *headers = uri_headers_dict(u.headers);
    PyObject *d = NULL;
    if (scheme && user && password && host && port && params && headers)
        d = Py_BuildValue("{sOsOsOsOsOsOsO}", "scheme", scheme, "user", user, "password", password, "host", host,
                          "port", port, "params", params, "headers", headers);
    Py_XDECREF(scheme);
    Py_XDECREF(user);
    Py_XDECREF(password);
    Py_XDECREF(host);
    Py_XDECREF(port);
    Py_XDECREF(params);
    Py_XDECREF(headers);
    return d;
}

static PyObject *pysip_parse_uri(PyObject *module, PyObject *arg)
{
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "parse_uri() argument must be str, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    PyObject *b = PyUnicode_AsEncodedString(arg, "utf-8", "surrogateescape");
    if (b == NULL)
        return NULL;
    PyObject *r = parse_uri_impl(module, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return r;
}

/* A str argument as UTF-8 bytes (surrogateescape); returns a new bytes object or NULL. */
static PyObject *str_arg_bytes(PyObject *arg, const char *fn)
{
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s() argument must be str, not %.100s", fn, Py_TYPE(arg)->tp_name);
        return NULL;
    }
    return PyUnicode_AsEncodedString(arg, "utf-8", "surrogateescape");
}

static PyObject *pysip_parse_nameaddr(PyObject *module, PyObject *arg)
{
    PyObject *b = str_arg_bytes(arg, "parse_nameaddr");
    if (b == NULL)
        return NULL;
    struct sip_str s = {PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b)};
    struct sip_nameaddr na;
    struct sip_error e = {0};
    PyObject *d = NULL;
    int rc = sip_nameaddr_parse(s, &na, &e);
    if (rc < 0) {
        raise_sip_error(pysip_state_from_module(module), rc, &e);
    } else {
        PyObject *display = unescape_display(na.display);
        PyObject *uri = str_of(na.uri);
        PyObject *tag = str_or_none(na.tag, 1);
        PyObject *params = params_dict(na.params);
        if (display && uri && tag && params)
            d = Py_BuildValue("{sOsOsOsO}", "display", display, "uri", uri, "tag", tag, "params", params);
        Py_XDECREF(display);
        Py_XDECREF(uri);
        Py_XDECREF(tag);
        Py_XDECREF(params);
    }
    Py_DECREF(b);
    return d;
}

static PyObject *pysip_parse_via(PyObject *module, PyObject *arg)
{
    PyObject *b = str_arg_bytes(arg, "parse_via");
    if (b == NULL)
        return NULL;
    struct sip_str s = {PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b)};
    struct sip_via v;
    struct sip_error e = {0};
    int rc = sip_via_parse(s, &v, &e);
    PyObject *d = rc < 0 ? raise_sip_error(pysip_state_from_module(module), rc, &e) : via_dict(&v);
    Py_DECREF(b);
    return d;
}

static PyObject *pysip_set_message_class(PyObject *module, PyObject *arg)
{
    struct pysip_state *st = pysip_state_from_module(module);
    if (!PyType_Check(arg) || !PyType_IsSubtype((PyTypeObject *)arg, st->MessageType)) {
        PyErr_SetString(PyExc_TypeError, "_set_message_class() needs a subclass of _core.Message");
        return NULL;
    }
    Py_XSETREF(st->MessageClass, (PyTypeObject *)Py_NewRef(arg));
    Py_RETURN_NONE;
}

static PyObject *pysip_reason_phrase(PyObject *module, PyObject *arg)
{
    (void)module;
    long status = PyLong_AsLong(arg);
    if (status == -1 && PyErr_Occurred())
        return NULL;
    if (status < 100 || status > 699) {
        PyErr_Format(PyExc_ValueError, "reason_phrase(): status %ld is outside 100..699", status);
        return NULL;
    }
    return PyUnicode_FromString(sip_reason_phrase((int)status));
}

PyMethodDef pysip_message_functions[] = {
    {"reason_phrase", (PyCFunction)pysip_reason_phrase, METH_O,
     "reason_phrase(status) -> str\n\nThe reason phrase of a SIP status code (RFC 3261 21 and extensions); the "
     "class name (\"Client Error\" ...) for a code it does not know. ValueError outside 100..699."},
    {"parse_nameaddr", (PyCFunction)pysip_parse_nameaddr, METH_O,
     "parse_nameaddr(s) -> dict\n\nOne name-addr or addr-spec (From, To, a Contact element) as a dict with display, "
     "uri, tag and params. Raises ParseError."},
    {"parse_via", (PyCFunction)pysip_parse_via, METH_O,
     "parse_via(s) -> dict\n\nOne via-parm as a dict with transport, host, port, branch, received, rport, params."},
    {"_set_message_class", (PyCFunction)pysip_set_message_class, METH_O,
     "_set_message_class(cls)\n\nMake parse() and engine events create cls, a subclass of _core.Message "
     "(pysiptest.Message)."},
    {"parse", (PyCFunction)(void (*)(void))pysip_parse, METH_VARARGS | METH_KEYWORDS,
     "parse(data, max_size=0, max_headers=0, *, strict=True) -> Message\n\nParse one SIP message (datagram semantics: "
     "bytes past Content-Length are ignored). 0 limits mean the defaults (65535 bytes, 256 headers). strict=False "
     "indexes the message without the RFC 3261 header checks. Raises ParseError."},
    {"parse_uri", (PyCFunction)pysip_parse_uri, METH_O,
     "parse_uri(s) -> dict\n\nSplit a URI into scheme, user, password, host, port, params and headers. For schemes "
     "other than sip, sips and tel the part after 'scheme:' is returned as user. Raises ParseError."},
    {NULL, NULL, 0, NULL},
};
