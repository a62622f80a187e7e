/* _core.Engine: the signalling engine (csrc/engine) as a Python type.
 *
 * Every command releases the GIL while it runs; poll() releases it while it
 * waits.  `inflight` counts calls that are inside the engine without the GIL,
 * so that close() can wait for them before it frees the engine. */
#include "module.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "sip/sipmsg.h"

typedef struct {
    PyObject_HEAD
    struct engine *e;
    int inflight;
    int closed;
} EngineObject;

#define ERRLEN 256

/* Run one engine call without the GIL, counted in self->inflight so that close() waits for it. */
#define ENGINE_CALL(self, rc, call)      \
    do {                                 \
        (self)->inflight++;              \
        Py_BEGIN_ALLOW_THREADS           \
        rc = (call);                     \
        Py_END_ALLOW_THREADS             \
        (self)->inflight--;              \
    } while (0)

static struct pysip_state *state_of(PyObject *self)
{
    return pysip_state_from_type(Py_TYPE(self));
}

static int ensure_open(EngineObject *self)
{
    if (self->e == NULL || self->closed) {
        struct pysip_state *st = state_of((PyObject *)self);
        PyErr_SetString(st ? st->EngineError : PyExc_RuntimeError, "the engine is closed");
        return -1;
    }
    return 0;
}

static PyObject *raise_engine(EngineObject *self, int rc, const char *err)
{
    struct pysip_state *st = state_of((PyObject *)self);
    const char *msg = (err && err[0]) ? err : strerror(rc < 0 ? -rc : rc);
    if (rc == -EINVAL)
        PyErr_SetString(PyExc_ValueError, msg);
    else if (rc == -ENOENT)
        PyErr_SetString(PyExc_KeyError, msg);
    else if (rc == -ENOMEM)
        PyErr_NoMemory();
    else
        PyErr_SetString(st ? st->EngineError : PyExc_RuntimeError, msg);
    return NULL;
}

/* Headers from a sequence of (name, value) str pairs.  The returned array borrows UTF-8 buffers from the
 * sequence's str objects, which *keep holds alive; free the array with PyMem_Free and decref *keep. */
static int convert_headers(PyObject *seq, struct engine_hdr **out, size_t *n, PyObject **keep)
{
    *out = NULL;
    *n = 0;
    *keep = NULL;
    if (seq == NULL || seq == Py_None)
        return 0;
    PyObject *fast = PySequence_Fast(seq, "headers must be a sequence of (name, value) pairs");
    if (fast == NULL)
        return -1;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    if (len > 512) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "too many headers (at most 512)");
        return -1;
    }
    struct engine_hdr *h = PyMem_Calloc(len ? (size_t)len : 1, sizeof(*h));
    if (h == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(item, 0)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(item, 1))) {
            PyErr_Format(PyExc_TypeError, "header %zd must be a (name: str, value: str) tuple", i);
            goto fail;
        }
        Py_ssize_t sz;
        const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(item, 0), &sz);
        if (name == NULL)
            goto fail;
        if ((size_t)sz != strlen(name)) {
            PyErr_SetString(PyExc_ValueError, "header names must not contain NUL");
            goto fail;
        }
        const char *value = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(item, 1), &sz);
        if (value == NULL)
            goto fail;
        if ((size_t)sz != strlen(value)) {
            PyErr_SetString(PyExc_ValueError, "header values must not contain NUL");
            goto fail;
        }
        h[i].name = name;
        h[i].value = value;
    }
    *out = h;
    *n = (size_t)len;
    *keep = fast;
    return 0;
fail:
    PyMem_Free(h);
    Py_DECREF(fast);
    return -1;
}

static int check_c_string(const char *s, Py_ssize_t len, const char *what)
{
    if ((size_t)len != strlen(s)) {
        PyErr_Format(PyExc_ValueError, "%s must not contain NUL", what);
        return -1;
    }
    return 0;
}

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"t1", "t2", "t4", "user_agent", "max_events", NULL};
    double t1 = 0.5, t2 = 4.0, t4 = 5.0;
    const char *ua = "";
    Py_ssize_t max_events = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|dddsn:Engine", kwlist, &t1, &t2, &t4, &ua, &max_events))
        return NULL;
    if (!(t1 > 0 && t1 <= 60 && t2 >= t1 && t2 <= 600 && t4 > 0 && t4 <= 600)) {
        PyErr_SetString(PyExc_ValueError, "timers must satisfy 0 < t1 <= 60 s, t1 <= t2 <= 600 s, 0 < t4 <= 600 s");
        return NULL;
    }
    if (max_events < 0) {
        PyErr_SetString(PyExc_ValueError, "max_events must be >= 0");
        return NULL;
    }
    struct engine_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.t1_ms = (uint32_t)(t1 * 1000 + 0.5);
    cfg.t2_ms = (uint32_t)(t2 * 1000 + 0.5);
    cfg.t4_ms = (uint32_t)(t4 * 1000 + 0.5);
    cfg.max_events = (size_t)max_events;
    snprintf(cfg.user_agent, sizeof(cfg.user_agent), "%s", ua);
    EngineObject *self = (EngineObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    char err[ERRLEN] = "";
    struct engine *e;
    Py_BEGIN_ALLOW_THREADS
    e = engine_new(&cfg, err, sizeof(err));
    Py_END_ALLOW_THREADS
    if (e == NULL) {
        struct pysip_state *st = pysip_state_from_type(type);
        PyErr_SetString(st ? st->EngineError : PyExc_RuntimeError, err[0] ? err : "cannot create the engine");
        Py_DECREF(self);
        return NULL;
    }
    self->e = e;
    return (PyObject *)self;
}

static void engine_close_impl(EngineObject *self)
{
    if (self->e == NULL)
        return;
    self->closed = 1;
    struct engine *e = self->e;
    while (self->inflight > 0) {
        engine_interrupt(e);
        Py_BEGIN_ALLOW_THREADS
        usleep(1000);
        Py_END_ALLOW_THREADS
    }
    self->e = NULL;
    Py_BEGIN_ALLOW_THREADS
    engine_free(e);
    Py_END_ALLOW_THREADS
}

static void Engine_dealloc(EngineObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    engine_close_impl(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *Engine_close(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    engine_close_impl(self);
    Py_RETURN_NONE;
}

static PyObject *Engine_enter(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self);
}

static PyObject *Engine_exit(EngineObject *self, PyObject *args)
{
    (void)args;
    engine_close_impl(self);
    Py_RETURN_FALSE;
}

static PyObject *Engine_fileno(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    if (ensure_open(self) < 0)
        return NULL;
    return PyLong_FromLong(engine_event_fd(self->e));
}

static const char *kind_name(enum engine_event_kind k)
{
    switch (k) {
    case ENGINE_EV_REQUEST: return "request";
    case ENGINE_EV_RESPONSE: return "response";
    case ENGINE_EV_TIMEOUT: return "timeout";
    case ENGINE_EV_TRANSPORT_ERROR: return "transport_error";
    case ENGINE_EV_PARSE_ERROR: return "parse_error";
    case ENGINE_EV_CANCELLED: return "cancelled";
    case ENGINE_EV_DIALOG_ENDED: return "dialog_ended";
    case ENGINE_EV_CALL_SUMMARY: return "call_summary";
    }
    return "unknown";
}

static PyObject *event_tuple(struct pysip_state *st, struct engine_event *ev)
{
    PyObject *msg;
    if (ev->msg) {
        msg = pysip_message_wrap(st, ev->msg);
        ev->msg = NULL; /* taken */
        if (msg == NULL)
            return NULL;
    } else {
        msg = Py_NewRef(Py_None);
    }
    PyObject *t = Py_BuildValue("(sIIIsHiNs)", kind_name(ev->kind), ev->transport_id, ev->txn_id, ev->dialog_id,
                                ev->src_host, ev->src_port, ev->status, msg, ev->info);
    return t;
}

static PyObject *Engine_poll(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", "max_events", NULL};
    PyObject *timeout_obj = Py_None;
    Py_ssize_t max_events = 256;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|On:poll", kwlist, &timeout_obj, &max_events))
        return NULL;
    if (ensure_open(self) < 0)
        return NULL;
    int timeout_ms = -1;
    if (timeout_obj != Py_None) {
        double t = PyFloat_AsDouble(timeout_obj);
        if (t == -1.0 && PyErr_Occurred())
            return NULL;
        if (t < 0) {
            PyErr_SetString(PyExc_ValueError, "timeout must be >= 0 or None");
            return NULL;
        }
        timeout_ms = t > 86400 ? 86400000 : (int)(t * 1000 + 0.5);
    }
    if (max_events <= 0) {
        PyErr_SetString(PyExc_ValueError, "max_events must be > 0");
        return NULL;
    }
    struct engine *e = self->e;
    struct engine_event *head = NULL;
    size_t n;
    self->inflight++; /* as ENGINE_CALL, for two calls */
    Py_BEGIN_ALLOW_THREADS
    n = engine_take(e, (size_t)max_events, &head);
    if (n == 0 && timeout_ms != 0 && engine_wait(e, timeout_ms))
        n = engine_take(e, (size_t)max_events, &head);
    Py_END_ALLOW_THREADS
    self->inflight--;
    struct pysip_state *st = state_of((PyObject *)self);
    PyObject *list = PyList_New(0);
    struct engine_event *ev = head;
    while (ev) {
        struct engine_event *next = ev->next;
        if (list && st) {
            PyObject *t = event_tuple(st, ev);
            if (t == NULL || PyList_Append(list, t) < 0)
                Py_CLEAR(list);
            Py_XDECREF(t);
        }
        engine_event_free(ev);
        ev = next;
    }
    return list;
}

static PyObject *Engine_listen_udp(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"host", "port", NULL};
    const char *host;
    Py_ssize_t hlen;
    int port = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s#|i:listen_udp", kwlist, &host, &hlen, &port))
        return NULL;
    if (check_c_string(host, hlen, "host") < 0)
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port %d is out of range 0..65535", port);
        return NULL;
    }
    if (ensure_open(self) < 0)
        return NULL;
    uint32_t tid = 0;
    uint16_t bound = 0;
    char err[ERRLEN] = "";
    int rc;
    ENGINE_CALL(self, rc, engine_listen_udp(self->e, host, (uint16_t)port, &tid, &bound, err, sizeof(err)));
    if (rc < 0) {
        if (rc != -EINVAL && rc != -ENOMEM) {
            struct pysip_state *st = state_of((PyObject *)self);
            PyErr_SetString(st ? st->EngineError : PyExc_RuntimeError, err);
            return NULL;
        }
        return raise_engine(self, rc, err);
    }
    return Py_BuildValue("(IH)", tid, bound);
}

/* None or a str without NUL bytes: NULL or its UTF-8. */
static int opt_path(PyObject *o, const char *what, const char **out)
{
    *out = NULL;
    if (o == NULL || o == Py_None)
        return 0;
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str or None, not %.80s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == NULL || check_c_string(s, n, what) < 0)
        return -1;
    *out = s;
    return 0;
}

static PyObject *listen_stream(EngineObject *self, PyObject *args, PyObject *kwds, int tls)
{
    static char *kwlist[] = {"host", "port", "idle_timeout", "max_queue", "cert", "key", "ca_file", "ca_dir",
                             "server_name", "verify", "require_client_cert", "max_connections", NULL};
    const char *host;
    Py_ssize_t hlen;
    int port = 0, verify = 1, require_client = 0;
    double idle = 60.0;
    Py_ssize_t max_queue = 0, max_conns = 0;
    PyObject *cert = NULL, *key = NULL, *caf = NULL, *cad = NULL, *sni = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, tls ? "s#|idn$OOOOOppn:listen_tls" : "s#|idn$OOOOOppn:listen_tcp",
                                     kwlist, &host, &hlen, &port, &idle, &max_queue, &cert, &key, &caf, &cad, &sni,
                                     &verify, &require_client, &max_conns))
        return NULL;
    if (check_c_string(host, hlen, "host") < 0)
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port %d is out of range 0..65535", port);
        return NULL;
    }
    if (!(idle >= 0.0 && idle <= 86400.0)) {
        PyErr_SetString(PyExc_ValueError, "idle_timeout must be between 0 (never) and 86400 seconds");
        return NULL;
    }
    if (max_queue < 0) {
        PyErr_SetString(PyExc_ValueError, "max_queue must be >= 0 (0 = 1 MiB)");
        return NULL;
    }
    if (max_conns < 0 || max_conns > 1000000) {
        PyErr_SetString(PyExc_ValueError, "max_connections must be between 0 (no limit) and 1000000");
        return NULL;
    }
    struct engine_stream_opts o;
    memset(&o, 0, sizeof(o));
    o.max_conns = (uint32_t)max_conns;
    o.idle_ms = idle == 0.0 ? UINT32_MAX : (uint32_t)(idle * 1000.0 + 0.5);
    if (o.idle_ms == 0)
        o.idle_ms = 1;
    o.max_queue = (size_t)max_queue;
    if (opt_path(cert, "cert", &o.cert_file) < 0 || opt_path(key, "key", &o.key_file) < 0 ||
        opt_path(caf, "ca_file", &o.ca_file) < 0 || opt_path(cad, "ca_dir", &o.ca_dir) < 0 ||
        opt_path(sni, "server_name", &o.server_name) < 0)
        return NULL;
    if (!tls && (o.cert_file || o.key_file || o.ca_file || o.ca_dir || o.server_name)) {
        PyErr_SetString(PyExc_ValueError, "certificate options are for listen_tls");
        return NULL;
    }
    o.no_verify = !verify;
    o.require_client_cert = require_client;
    if (ensure_open(self) < 0)
        return NULL;
    uint32_t tid = 0;
    uint16_t bound = 0;
    char err[ERRLEN] = "";
    int rc;
    ENGINE_CALL(self, rc, tls ? engine_listen_tls(self->e, host, (uint16_t)port, &o, &tid, &bound, err, sizeof(err))
             : engine_listen_tcp(self->e, host, (uint16_t)port, &o, &tid, &bound, err, sizeof(err)));
    if (rc < 0) {
        if (rc != -EINVAL && rc != -ENOMEM) {
            struct pysip_state *st = state_of((PyObject *)self);
            PyErr_SetString(st ? st->EngineError : PyExc_RuntimeError, err);
            return NULL;
        }
        return raise_engine(self, rc, err);
    }
    return Py_BuildValue("(IH)", tid, bound);
}

static PyObject *Engine_listen_tcp(EngineObject *self, PyObject *args, PyObject *kwds)
{
    return listen_stream(self, args, kwds, 0);
}

static PyObject *Engine_listen_tls(EngineObject *self, PyObject *args, PyObject *kwds)
{
    return listen_stream(self, args, kwds, 1);
}

static PyObject *Engine_request(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"transport_id", "host", "port", "method", "uri", "headers", "body", NULL};
    unsigned int tid;
    const char *host, *method, *uri;
    Py_ssize_t hl, ml, ul;
    int port;
    PyObject *headers = Py_None;
    Py_buffer body = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Is#is#s#|Oy*:request", kwlist, &tid, &host, &hl, &port, &method,
                                     &ml, &uri, &ul, &headers, &body))
        return NULL;
    PyObject *ret = NULL, *keep = NULL;
    struct engine_hdr *h = NULL;
    size_t nh = 0;
    if (check_c_string(host, hl, "host") < 0 || check_c_string(method, ml, "method") < 0 ||
        check_c_string(uri, ul, "uri") < 0)
        goto out;
    if (port <= 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port %d is out of range 1..65535", port);
        goto out;
    }
    if (ensure_open(self) < 0 || convert_headers(headers, &h, &nh, &keep) < 0)
        goto out;
    uint32_t txn = 0;
    char err[ERRLEN] = "";
    int rc;
    ENGINE_CALL(self, rc, engine_request(self->e, tid, host, (uint16_t)port, method, uri, h, nh, body.buf, (size_t)body.len, &txn, err,
                        sizeof(err)));
    ret = rc < 0 ? raise_engine(self, rc, err) : PyLong_FromUnsignedLong(txn);
out:
    PyMem_Free(h);
    Py_XDECREF(keep);
    if (body.obj)
        PyBuffer_Release(&body);
    return ret;
}

static PyObject *Engine_dialog_request(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"dialog_id", "method", "headers", "body", NULL};
    unsigned int did;
    const char *method;
    Py_ssize_t ml;
    PyObject *headers = Py_None;
    Py_buffer body = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Is#|Oy*:dialog_request", kwlist, &did, &method, &ml, &headers,
                                     &body))
        return NULL;
    PyObject *ret = NULL, *keep = NULL;
    struct engine_hdr *h = NULL;
    size_t nh = 0;
    if (check_c_string(method, ml, "method") < 0 || ensure_open(self) < 0 ||
        convert_headers(headers, &h, &nh, &keep) < 0)
        goto out;
    uint32_t txn = 0;
    char err[ERRLEN] = "";
    int rc;
    ENGINE_CALL(self, rc, engine_dialog_request(self->e, did, method, h, nh, body.buf, (size_t)body.len, &txn, err, sizeof(err)));
    ret = rc < 0 ? raise_engine(self, rc, err) : PyLong_FromUnsignedLong(txn);
out:
    PyMem_Free(h);
    Py_XDECREF(keep);
    if (body.obj)
        PyBuffer_Release(&body);
    return ret;
}

static PyObject *Engine_respond(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"txn_id", "status", "reason", "headers", "body", "reliable", NULL};
    unsigned int txn;
    int status;
    const char *reason = NULL;
    Py_ssize_t rl = 0;
    PyObject *headers = Py_None;
    Py_buffer body = {0};
    int reliable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Ii|z#Oy*p:respond", kwlist, &txn, &status, &reason, &rl, &headers,
                                     &body, &reliable))
        return NULL;
    PyObject *ret = NULL, *keep = NULL;
    struct engine_hdr *h = NULL;
    size_t nh = 0;
    if ((reason && check_c_string(reason, rl, "reason") < 0) || ensure_open(self) < 0 ||
        convert_headers(headers, &h, &nh, &keep) < 0)
        goto out;
    uint32_t did = 0;
    char err[ERRLEN] = "";
    int rc;
    ENGINE_CALL(self, rc, engine_respond_ex(self->e, txn, status, reason, h, nh, body.buf, (size_t)body.len,
                           reliable ? ENGINE_RESPOND_RELIABLE : 0u, &did, err, sizeof(err)));
    ret = rc < 0 ? raise_engine(self, rc, err) : PyLong_FromUnsignedLong(did);
out:
    PyMem_Free(h);
    Py_XDECREF(keep);
    if (body.obj)
        PyBuffer_Release(&body);
    return ret;
}

static PyObject *Engine_set_auto_prack(EngineObject *self, PyObject *args)
{
    unsigned int tid;
    int on;
    if (!PyArg_ParseTuple(args, "Ip:set_auto_prack", &tid, &on) || ensure_open(self) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = engine_set_auto_prack(self->e, tid, on);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        return raise_engine(self, rc, "unknown transport id");
    Py_RETURN_NONE;
}

static PyObject *Engine_cancel(EngineObject *self, PyObject *args)
{
    unsigned int txn;
    if (!PyArg_ParseTuple(args, "I:cancel", &txn) || ensure_open(self) < 0)
        return NULL;
    uint32_t ctx = 0;
    char err[ERRLEN] = "";
    int rc;
    ENGINE_CALL(self, rc, engine_cancel(self->e, txn, &ctx, err, sizeof(err)));
    return rc < 0 ? raise_engine(self, rc, err) : PyLong_FromUnsignedLong(ctx);
}

static PyObject *Engine_send_raw(EngineObject *self, PyObject *args)
{
    unsigned int tid;
    const char *host;
    Py_ssize_t hl;
    int port;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "Is#iy*:send_raw", &tid, &host, &hl, &port, &data))
        return NULL;
    PyObject *ret = NULL;
    if (check_c_string(host, hl, "host") < 0 || ensure_open(self) < 0)
        goto out;
    if (port <= 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port %d is out of range 1..65535", port);
        goto out;
    }
    char err[ERRLEN] = "";
    int rc;
    ENGINE_CALL(self, rc, engine_send_raw(self->e, tid, host, (uint16_t)port, data.buf, (size_t)data.len, err, sizeof(err)));
    ret = rc < 0 ? raise_engine(self, rc, err) : Py_NewRef(Py_None);
out:
    PyBuffer_Release(&data);
    return ret;
}

static PyObject *Engine_dialog_info(EngineObject *self, PyObject *args)
{
    unsigned int did;
    if (!PyArg_ParseTuple(args, "I:dialog_info", &did) || ensure_open(self) < 0)
        return NULL;
    struct engine_dialog_info info;
    int rc = engine_dialog_info(self->e, did, &info);
    if (rc < 0) {
        PyErr_Format(PyExc_KeyError, "no dialog with id %u", did);
        return NULL;
    }
    static const char *states[] = {"early", "confirmed", "terminated"};
    return Py_BuildValue("{s:s,s:s,s:s,s:s,s:s,s:O,s:I}", "call_id", info.call_id, "local_tag", info.local_tag,
                         "remote_tag", info.remote_tag, "remote_target", info.remote_target, "state",
                         states[info.state >= 0 && info.state <= 2 ? info.state : 2], "is_uac",
                         info.is_uac ? Py_True : Py_False, "local_cseq", info.local_cseq);
}

static PyObject *Engine_set_trace(EngineObject *self, PyObject *args)
{
    Py_ssize_t cap;
    if (!PyArg_ParseTuple(args, "n:set_trace", &cap) || ensure_open(self) < 0)
        return NULL;
    if (cap < 0 || cap > 65536) {
        PyErr_SetString(PyExc_ValueError, "trace capacity must be 0 (off) .. 65536 entries");
        return NULL;
    }
    int rc;
    ENGINE_CALL(self, rc, engine_trace_enable(self->e, (size_t)cap));
    if (rc < 0)
        return raise_engine(self, rc, "could not set up the message trace");
    Py_RETURN_NONE;
}

static PyObject *Engine_trace(EngineObject *self, PyObject *args)
{
    unsigned int tid = 0;
    if (!PyArg_ParseTuple(args, "|I:trace", &tid) || ensure_open(self) < 0)
        return NULL;
    struct engine_trace_entry *v = NULL;
    size_t n = 0;
    int rc;
    ENGINE_CALL(self, rc, engine_trace_snapshot(self->e, tid, &v, &n));
    if (rc == -ENOENT)
        return PyList_New(0);
    if (rc < 0)
        return raise_engine(self, rc, "could not copy the message trace");
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        const struct engine_trace_entry *x = &v[i];
        PyObject *t = Py_BuildValue("(dIOsHsssI)", (double)x->t_us / 1e6, x->transport_id,
                                    x->outgoing ? Py_True : Py_False, x->peer_host, x->peer_port,
                                    x->first_line, x->call_id, x->cseq, x->len);
        if (t == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    free(v);
    return list;
}

static PyObject *Engine_counts(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    if (ensure_open(self) < 0)
        return NULL;
    struct engine_counts c;
    engine_get_counts(self->e, &c);
    return Py_BuildValue("{s:n,s:n,s:n,s:n,s:n,s:K,s:K,s:K,s:K,s:K,s:K}", "transports", (Py_ssize_t)c.transports,
                         "connections", (Py_ssize_t)c.connections,
                         "transactions", (Py_ssize_t)c.transactions, "dialogs", (Py_ssize_t)c.dialogs,
                         "pending_events", (Py_ssize_t)c.pending_events, "rx_messages",
                         (unsigned long long)c.rx_messages, "tx_messages", (unsigned long long)c.tx_messages,
                         "retransmissions", (unsigned long long)c.retransmissions, "events_dropped",
                         (unsigned long long)c.events_dropped, "parse_errors", (unsigned long long)c.parse_errors,
                         "conn_limit_hits", (unsigned long long)c.conn_limit_hits);
}

/* Delay in seconds (None = -1) as milliseconds. */
static int delay_ms(PyObject *o, const char *what, int32_t *out)
{
    *out = -1;
    if (o == NULL || o == Py_None)
        return 0;
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred())
        return -1;
    if (!(v >= 0.0 && v <= 86400.0)) {
        PyErr_Format(PyExc_ValueError, "%s must be None or 0..86400 seconds", what);
        return -1;
    }
    *out = (int32_t)(v * 1000.0 + 0.5);
    return 0;
}

static PyObject *Engine_fast_counts(EngineObject *self, PyObject *args)
{
    unsigned int tid;
    if (!PyArg_ParseTuple(args, "I:fast_counts", &tid) || ensure_open(self) < 0)
        return NULL;
    uint64_t ended = 0, answered = 0;
    int rc;
    ENGINE_CALL(self, rc, engine_fast_counts(self->e, tid, &ended, &answered));
    if (rc < 0)
        return raise_engine(self, rc, "the transport has no fast-path profile");
    return Py_BuildValue("(KK)", (unsigned long long)ended, (unsigned long long)answered);
}

static PyObject *Engine_set_profile(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"transport_id", "ring_delay", "answer_delay", "hold", "auto_200", "summary",
                             "contact", "content_type", "body", "headers", "clear", NULL};
    unsigned int tid;
    PyObject *ring = Py_None, *answer = Py_None, *hold = Py_None, *autos = Py_None, *contact = Py_None,
             *ctype = Py_None, *headers = Py_None;
    int summary = 1, clear = 0;
    PyObject *summary_obj = Py_True;
    Py_buffer body = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "I|$OOOOOOOy*Op:set_profile", kwlist, &tid, &ring, &answer, &hold,
                                     &autos, &summary_obj, &contact, &ctype, &body, &headers, &clear))
        return NULL;
    if (PyUnicode_Check(summary_obj) && PyUnicode_CompareWithASCIIString(summary_obj, "count") == 0) {
        summary = ENGINE_SUMMARY_COUNT;
    } else if (PyBool_Check(summary_obj)) {
        summary = summary_obj == Py_True;
    } else {
        PyBuffer_Release(&body);
        PyErr_SetString(PyExc_ValueError, "summary must be True, False or 'count' (counters only, fast_counts())");
        return NULL;
    }
    PyObject *ret = NULL, *keep = NULL, *afast = NULL;
    struct engine_hdr *h = NULL;
    size_t nh = 0;
    struct engine_profile p;
    memset(&p, 0, sizeof(p));
    if (ensure_open(self) < 0 || delay_ms(ring, "ring_delay", &p.ring_delay_ms) < 0 ||
        delay_ms(answer, "answer_delay", &p.answer_delay_ms) < 0 || delay_ms(hold, "hold", &p.hold_ms) < 0 ||
        opt_path(contact, "contact", &p.contact) < 0 || opt_path(ctype, "content_type", &p.content_type) < 0 ||
        convert_headers(headers, &h, &nh, &keep) < 0)
        goto out;
    if (autos == Py_None) {
        p.auto_200 = ENGINE_AUTO_BYE | ENGINE_AUTO_OPTIONS | ENGINE_AUTO_NOTIFY | ENGINE_AUTO_INFO;
    } else {
        afast = PySequence_Fast(autos, "auto_200 must be a sequence of method names");
        if (afast == NULL)
            goto out;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(afast); i++) {
            PyObject *it = PySequence_Fast_GET_ITEM(afast, i);
            const char *m = PyUnicode_Check(it) ? PyUnicode_AsUTF8(it) : NULL;
            if (m == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "auto_200 items must be str");
                goto out;
            }
            if (strcmp(m, "BYE") == 0)
                p.auto_200 |= ENGINE_AUTO_BYE;
            else if (strcmp(m, "OPTIONS") == 0)
                p.auto_200 |= ENGINE_AUTO_OPTIONS;
            else if (strcmp(m, "NOTIFY") == 0)
                p.auto_200 |= ENGINE_AUTO_NOTIFY;
            else if (strcmp(m, "INFO") == 0)
                p.auto_200 |= ENGINE_AUTO_INFO;
            else {
                PyErr_Format(PyExc_ValueError, "auto_200: %.32s is not one of BYE, OPTIONS, NOTIFY, INFO", m);
                goto out;
            }
        }
    }
    p.summary = summary;
    p.body = body.buf;
    p.blen = (size_t)body.len;
    p.hdrs = h;
    p.nhdrs = nh;
    char err[ERRLEN] = "";
    int rc;
    ENGINE_CALL(self, rc, engine_set_profile(self->e, tid, clear ? NULL : &p, err, sizeof(err)));
    ret = rc < 0 ? raise_engine(self, rc, err) : Py_NewRef(Py_None);
out:
    PyMem_Free(h);
    Py_XDECREF(keep);
    Py_XDECREF(afast);
    if (body.obj)
        PyBuffer_Release(&body);
    return ret;
}

static PyObject *Engine_load_start(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"transport_id", "host", "port", "ruri", "from_uri", "to_uri", "rate", "calls",
                             "concurrency", "hold", "body", "contact", NULL};
    struct engine_load_cfg c;
    memset(&c, 0, sizeof(c));
    unsigned int tid;
    int port;
    const char *to_uri = NULL, *contact = NULL;
    double rate = 0.0, hold = 0.0;
    unsigned long long calls = 0;
    unsigned int conc = 0;
    Py_buffer body = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Isiss|$zdKIdy*z:load_start", kwlist, &tid, &c.host, &port, &c.ruri,
                                     &c.from_uri, &to_uri, &rate, &calls, &conc, &hold, &body, &contact))
        return NULL;
    PyObject *ret = NULL;
    if (ensure_open(self) < 0)
        goto out;
    if (port <= 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port %d is out of range 1..65535", port);
        goto out;
    }
    if (!(hold >= 0.0 && hold <= 86400.0)) {
        PyErr_SetString(PyExc_ValueError, "hold must be 0..86400 seconds");
        goto out;
    }
    c.transport_id = tid;
    c.port = (uint16_t)port;
    c.to_uri = to_uri;
    c.contact = contact;
    c.rate = rate;
    c.max_calls = calls;
    c.max_concurrent = conc;
    c.hold_ms = (int32_t)(hold * 1000.0 + 0.5);
    c.body = body.buf;
    c.blen = (size_t)body.len;
    char err[ERRLEN] = "";
    int rc;
    ENGINE_CALL(self, rc, engine_load_start(self->e, &c, err, sizeof(err)));
    ret = rc < 0 ? raise_engine(self, rc, err) : Py_NewRef(Py_None);
out:
    if (body.obj)
        PyBuffer_Release(&body);
    return ret;
}

static PyObject *Engine_load_stop(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    if (ensure_open(self) < 0)
        return NULL;
    (void)engine_load_stop(self->e);
    Py_RETURN_NONE;
}

static PyObject *Engine_load_stats(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    if (ensure_open(self) < 0)
        return NULL;
    struct engine_load_stats s;
    if (engine_load_stats(self->e, &s) < 0) {
        PyErr_SetString(PyExc_KeyError, "no load was started on this engine");
        return NULL;
    }
    PyObject *fail = PyDict_New();
    if (fail == NULL)
        return NULL;
    for (size_t i = 0; i < s.nfail && i < ENGINE_LOAD_REASONS; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(s.fail[i].count);
        if (v == NULL || PyDict_SetItemString(fail, s.fail[i].reason, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(fail);
            return NULL;
        }
        Py_DECREF(v);
    }
    return Py_BuildValue("{s:O,s:K,s:K,s:K,s:K,s:K,s:K,s:d,s:N,s:d,s:d,s:d,s:d}", "running",
                         s.running ? Py_True : Py_False, "started", (unsigned long long)s.started, "answered",
                         (unsigned long long)s.answered, "completed", (unsigned long long)s.completed, "failed",
                         (unsigned long long)s.failed, "active", (unsigned long long)s.active, "retransmissions",
                         (unsigned long long)s.retransmissions, "elapsed", s.elapsed_s, "failures", fail,
                         "setup_p50_ms", s.setup_p50_ms, "setup_p95_ms", s.setup_p95_ms, "setup_p99_ms",
                         s.setup_p99_ms, "setup_max_ms", s.setup_max_ms);
}

static PyMethodDef Engine_methods[] = {
    {"close", (PyCFunction)Engine_close, METH_NOARGS, "Stop the signalling thread and free everything."},
    {"__enter__", (PyCFunction)Engine_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Engine_exit, METH_VARARGS, NULL},
    {"fileno", (PyCFunction)Engine_fileno, METH_NOARGS, "The eventfd that is readable while events wait."},
    {"poll", (PyCFunction)(void (*)(void))Engine_poll, METH_VARARGS | METH_KEYWORDS,
     "poll(timeout=None, max_events=256) -> list of (kind, transport_id, txn_id, dialog_id, src_host, src_port, "
     "status, message, info)"},
    {"listen_udp", (PyCFunction)(void (*)(void))Engine_listen_udp, METH_VARARGS | METH_KEYWORDS,
     "listen_udp(host, port=0) -> (transport_id, bound_port)"},
    {"listen_tcp", (PyCFunction)(void (*)(void))Engine_listen_tcp, METH_VARARGS | METH_KEYWORDS,
     "listen_tcp(host, port=0, idle_timeout=60.0, max_queue=0, *, max_connections=0) -> (transport_id, bound_port)\n"
     "max_connections bounds the accepted connections (0 = no bound): at the bound the least recently active idle\n"
     "one is closed for a new one, or the new one is refused; a transport_error event says so."},
    {"listen_tls", (PyCFunction)(void (*)(void))Engine_listen_tls, METH_VARARGS | METH_KEYWORDS,
     "listen_tls(host, port=0, idle_timeout=60.0, max_queue=0, *, cert=None, key=None, ca_file=None, ca_dir=None,\n"
     "           server_name=None, verify=True, require_client_cert=False) -> (transport_id, bound_port)"},
    {"request", (PyCFunction)(void (*)(void))Engine_request, METH_VARARGS | METH_KEYWORDS,
     "request(transport_id, host, port, method, uri, headers=(), body=b'') -> txn_id"},
    {"dialog_request", (PyCFunction)(void (*)(void))Engine_dialog_request, METH_VARARGS | METH_KEYWORDS,
     "dialog_request(dialog_id, method, headers=(), body=b'') -> txn_id"},
    {"respond", (PyCFunction)(void (*)(void))Engine_respond, METH_VARARGS | METH_KEYWORDS,
     "respond(txn_id, status, reason=None, headers=(), body=b'', reliable=False) -> dialog_id (0 if none);\n"
     "reliable=True sends a 101-199 to an INVITE reliably (RFC 3262: Require: 100rel, RSeq, retransmitted\n"
     "until PRACKed)"},
    {"cancel", (PyCFunction)Engine_cancel, METH_VARARGS, "cancel(invite_txn_id) -> cancel_txn_id"},
    {"send_raw", (PyCFunction)Engine_send_raw, METH_VARARGS, "send_raw(transport_id, host, port, data)"},
    {"dialog_info", (PyCFunction)Engine_dialog_info, METH_VARARGS, "dialog_info(dialog_id) -> dict"},
    {"counts", (PyCFunction)Engine_counts, METH_NOARGS, "Table sizes and counters."},
    {"set_trace", (PyCFunction)Engine_set_trace, METH_VARARGS,
     "set_trace(capacity): keep a summary of the last capacity SIP messages sent and received (0: off)."},
    {"trace", (PyCFunction)Engine_trace, METH_VARARGS,
     "trace(transport_id=0) -> [(time, transport_id, outgoing, peer_host, peer_port, first_line, call_id, cseq,\n"
     "len)], oldest first (all transports for 0; empty while the trace is off)."},
    {"set_auto_prack", (PyCFunction)Engine_set_auto_prack, METH_VARARGS,
     "set_auto_prack(transport_id, on): PRACK reliable provisionals received on this transport (default on)."},
    {"set_profile", (PyCFunction)(void (*)(void))Engine_set_profile, METH_VARARGS | METH_KEYWORDS,
     "set_profile(transport_id, *, ring_delay=None, answer_delay=None, hold=None, auto_200=None (all),\n"
     "            summary=True, contact=None, content_type=None, body=b'', headers=(), clear=False)\n"
     "Hand a transport's routine call behaviour to the signalling thread (delays in seconds, None = never).\n"
     "summary='count': no call_summary event per call, only the counters of fast_counts()."},
    {"fast_counts", (PyCFunction)Engine_fast_counts, METH_VARARGS,
     "fast_counts(transport_id) -> (ended, answered): fast calls of the transport that ended, and were answered."},
    {"load_start", (PyCFunction)(void (*)(void))Engine_load_start, METH_VARARGS | METH_KEYWORDS,
     "load_start(transport_id, host, port, ruri, from_uri, *, to_uri=None, rate, calls=0, concurrency=0,\n"
     "           hold=0.0, body=b'', contact=None): place calls from the signalling thread ('%n' = call number)."},
    {"load_stop", (PyCFunction)Engine_load_stop, METH_NOARGS, "Stop placing new load calls."},
    {"load_stats", (PyCFunction)Engine_load_stats, METH_NOARGS, "Counters of the load run (dict)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Engine_slots[] = {
    {Py_tp_new, Engine_new},
    {Py_tp_dealloc, Engine_dealloc},
    {Py_tp_methods, Engine_methods},
    {Py_tp_doc, "Engine(t1=0.5, t2=4.0, t4=5.0, user_agent='', max_events=0): SIP transports, transactions and "
                "dialogs on a signalling thread."},
    {0, NULL},
};

static PyType_Spec Engine_spec = {
    .name = "pysiptest._core.Engine",
    .basicsize = sizeof(EngineObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Engine_slots,
};

int pysip_engine_add_types(PyObject *module, struct pysip_state *st)
{
    PyObject *tp = PyType_FromModuleAndSpec(module, &Engine_spec, NULL);
    if (tp == NULL)
        return -1;
    st->EngineType = (PyTypeObject *)tp;
    return PyModule_AddObjectRef(module, "Engine", tp);
}
