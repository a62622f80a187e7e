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
    self->inflight++;
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
    self->inflight++;
    Py_BEGIN_ALLOW_THREADS
    rc = engine_listen_udp(self->e, host, (uint16_t)port, &tid, &bound, err, sizeof(err));
    Py_END_ALLOW_THREADS
    self->inflight--;
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
    self->inflight++;
    Py_BEGIN_ALLOW_THREADS
    rc = engine_request(self->e, tid, host, (uint16_t)port, method, uri, h, nh, body.buf, (size_t)body.len, &txn, err,
                        sizeof(err));
    Py_END_ALLOW_THREADS
    self->inflight--;
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
    self->inflight++;
    Py_BEGIN_ALLOW_THREADS
    rc = engine_dialog_request(self->e, did, method, h, nh, body.buf, (size_t)body.len, &txn, err, sizeof(err));
    Py_END_ALLOW_THREADS
    self->inflight--;
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
    static char *kwlist[] = {"txn_id", "status", "reason", "headers", "body", NULL};
    unsigned int txn;
    int status;
    const char *reason = NULL;
    Py_ssize_t rl = 0;
    PyObject *headers = Py_None;
    Py_buffer body = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Ii|z#Oy*:respond", kwlist, &txn, &status, &reason, &rl, &headers,
                                     &body))
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
    self->inflight++;
    Py_BEGIN_ALLOW_THREADS
    rc = engine_respond(self->e, txn, status, reason, h, nh, body.buf, (size_t)body.len, &did, err, sizeof(err));
    Py_END_ALLOW_THREADS
    self->inflight--;
    ret = rc < 0 ? raise_engine(self, rc, err) : PyLong_FromUnsignedLong(did);
out:
    PyMem_Free(h);
    Py_XDECREF(keep);
    if (body.obj)
        PyBuffer_Release(&body);
    return ret;
}

static PyObject *Engine_cancel(EngineObject *self, PyObject *args)
{
    unsigned int txn;
    if (!PyArg_ParseTuple(args, "I:cancel", &txn) || ensure_open(self) < 0)
        return NULL;
    uint32_t ctx = 0;
    char err[ERRLEN] = "";
    int rc;
    self->inflight++;
    Py_BEGIN_ALLOW_THREADS
    rc = engine_cancel(self->e, txn, &ctx, err, sizeof(err));
    Py_END_ALLOW_THREADS
    self->inflight--;
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
    self->inflight++;
    Py_BEGIN_ALLOW_THREADS
    rc = engine_send_raw(self->e, tid, host, (uint16_t)port, data.buf, (size_t)data.len, err, sizeof(err));
    Py_END_ALLOW_THREADS
    self->inflight--;
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

static PyObject *Engine_counts(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    if (ensure_open(self) < 0)
        return NULL;
    struct engine_counts c;
    engine_get_counts(self->e, &c);
    return Py_BuildValue("{s:n,s:n,s:n,s:n,s:K,s:K,s:K,s:K,s:K}", "transports", (Py_ssize_t)c.transports,
                         "transactions", (Py_ssize_t)c.transactions, "dialogs", (Py_ssize_t)c.dialogs,
                         "pending_events", (Py_ssize_t)c.pending_events, "rx_messages",
                         (unsigned long long)c.rx_messages, "tx_messages", (unsigned long long)c.tx_messages,
                         "retransmissions", (unsigned long long)c.retransmissions, "events_dropped",
                         (unsigned long long)c.events_dropped, "parse_errors", (unsigned long long)c.parse_errors);
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
    {"request", (PyCFunction)(void (*)(void))Engine_request, METH_VARARGS | METH_KEYWORDS,
     "request(transport_id, host, port, method, uri, headers=(), body=b'') -> txn_id"},
    {"dialog_request", (PyCFunction)(void (*)(void))Engine_dialog_request, METH_VARARGS | METH_KEYWORDS,
     "dialog_request(dialog_id, method, headers=(), body=b'') -> txn_id"},
    {"respond", (PyCFunction)(void (*)(void))Engine_respond, METH_VARARGS | METH_KEYWORDS,
     "respond(txn_id, status, reason=None, headers=(), body=b'') -> dialog_id (0 if none)"},
    {"cancel", (PyCFunction)Engine_cancel, METH_VARARGS, "cancel(invite_txn_id) -> cancel_txn_id"},
    {"send_raw", (PyCFunction)Engine_send_raw, METH_VARARGS, "send_raw(transport_id, host, port, data)"},
    {"dialog_info", (PyCFunction)Engine_dialog_info, METH_VARARGS, "dialog_info(dialog_id) -> dict"},
    {"counts", (PyCFunction)Engine_counts, METH_NOARGS, "Table sizes and counters."},
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
