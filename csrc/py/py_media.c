/* _core.Media: the Python face of the RTP media engine (csrc/rtp/media.h).
 *
 * A Media object owns one struct media (one media thread).  Every call into
 * the engine runs with the GIL released: commands wait for the media thread
 * and statistics take its table lock.  close() shuts the engine down but
 * keeps the struct, so that a call racing with close() in another thread
 * fails with EngineError instead of touching freed memory; the struct is
 * freed only by the dealloc, when no thread can hold the object any more.
 */
#include "module.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "rtp/dtmf.h"
#include "rtp/media.h"
#include "rtp/tone_detect.h"

struct pymedia {
    PyObject_HEAD
    struct media *m; /* owned; NULL only if creation failed */
};

#define PYMEDIA_ERRLEN 256

static struct pysip_state *pymedia_state(PyObject *self)
{
    return pysip_state_from_type(Py_TYPE(self));
}

static PyObject *raise_engine_error(PyObject *self, const char *reason)
{
    struct pysip_state *st = pymedia_state(self);
    if (st == NULL)
        return NULL;
    PyErr_SetString(st->EngineError, reason);
    return NULL;
}

/* Turn a negative return of the engine into an exception. Returns NULL. */
static PyObject *raise_media_error(PyObject *self, int r, PyObject *id, const char *err)
{
    if (r == -ENOENT && id != NULL) {
        PyErr_SetObject(PyExc_KeyError, id);
        return NULL;
    }
    if (r == -EINVAL) {
        PyErr_SetString(PyExc_ValueError, err && err[0] ? err : "invalid argument");
        return NULL;
    }
    if (r == -ESHUTDOWN)
        return raise_engine_error(self, "the media engine is closed");
    if (err && err[0])
        return raise_engine_error(self, err);
    return raise_engine_error(self, strerror(-r));
}

static int check_open(PyObject *self, struct media **out)
{
    struct pymedia *pm = (struct pymedia *)self;
    if (pm->m == NULL) {
        raise_engine_error(self, "the media engine is closed");
        return -1;
    }
    *out = pm->m;
    return 0;
}

/* A stream id: an int; one that cannot be an id is simply unknown (KeyError). */
static int parse_id(PyObject *o, uint32_t *out)
{
    if (!PyLong_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "stream id must be an int, not %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < 0 || v > (long long)UINT32_MAX) {
        PyErr_SetObject(PyExc_KeyError, o);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_int(PyObject *o, const char *name, long long lo, long long hi, long long *out)
{
    if (!PyLong_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name, Py_TYPE(o)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < lo || v > hi) {
        PyErr_Format(PyExc_ValueError, "%s must be in %lld..%lld, got %R", name, lo, hi, o);
        return -1;
    }
    *out = v;
    return 0;
}

/* A str host of at most 63 UTF-8 bytes without NUL, copied into buf[64]. */
static int parse_host(PyObject *o, const char *name, char buf[64])
{
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", name, Py_TYPE(o)->tp_name);
        return -1;
    }
    Py_ssize_t n = 0;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == NULL)
        return -1;
    if (n >= 64 || memchr(s, '\0', (size_t)n) != NULL) {
        PyErr_Format(PyExc_ValueError, "%s must be a numeric IPv4 or IPv6 address, got %R", name, o);
        return -1;
    }
    memcpy(buf, s, (size_t)n);
    buf[n] = '\0';
    return 0;
}

static PyObject *pymedia_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Media", kwlist))
        return NULL;
    struct pymedia *self = (struct pymedia *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    char err[PYMEDIA_ERRLEN] = "";
    struct media *m;
    Py_BEGIN_ALLOW_THREADS
    m = media_new(err, sizeof err);
    Py_END_ALLOW_THREADS
    if (m == NULL) {
        raise_engine_error((PyObject *)self, err[0] ? err : "cannot create the media engine");
        Py_DECREF(self);
        return NULL;
    }
    self->m = m;
    return (PyObject *)self;
}

static void pymedia_dealloc(PyObject *op)
{
    struct pymedia *self = (struct pymedia *)op;
    PyTypeObject *tp = Py_TYPE(op);
    struct media *m = self->m;
    self->m = NULL;
    if (m != NULL) {
        Py_BEGIN_ALLOW_THREADS
        media_free(m);
        Py_END_ALLOW_THREADS
    }
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *pymedia_open(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"host", "port", NULL};
    PyObject *host_o, *port_o = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:open", kwlist, &host_o, &port_o))
        return NULL;
    char host[64];
    long long port = 0;
    struct media *m;
    if (parse_host(host_o, "host", host) < 0 || (port_o && parse_int(port_o, "port", 0, 65535, &port) < 0) ||
        check_open(self, &m) < 0)
        return NULL;
    char err[PYMEDIA_ERRLEN] = "";
    uint32_t id = 0;
    uint16_t bound = 0;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = media_stream_open(m, host, (uint16_t)port, &id, &bound, err, sizeof err);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return raise_media_error(self, r, NULL, err);
    return Py_BuildValue("(kH)", (unsigned long)id, (unsigned short)bound);
}

static int parse_source(PyObject *o, enum media_source *out)
{
    static const struct {
        const char *name;
        enum media_source src;
    } names[] = {
        {"silence", MEDIA_SRC_SILENCE},
        {"tone", MEDIA_SRC_TONE},
        {"echo", MEDIA_SRC_ECHO},
        {"none", MEDIA_SRC_NONE},
        {"pcap", MEDIA_SRC_PCAP},
    };
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "source must be a str, not %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (PyUnicode_CompareWithASCIIString(o, names[i].name) == 0) {
            *out = names[i].src;
            return 0;
        }
    }
    PyErr_Format(PyExc_ValueError, "source must be one of 'silence', 'tone', 'echo', 'none', 'pcap', got %R", o);
    return -1;
}

/* The optional keyword-only settings of start(): capture, telephone-events, impairments, RTCP, SRTP. */
struct start_extra {
    const char *pcap;
    Py_ssize_t pcap_len;
    int loop, rtcp_mux;
    PyObject *dtmf_pt_o, *rtcp_o, *jitter_o;
    double jitter_ms, loss, duplicate, reorder;
    unsigned long long seed;
    const char *srtp;
    Py_buffer tx_key, rx_key;
};

static int parse_extra(struct start_extra *x, struct media_stream_cfg *cfg)
{
    if (x->pcap != NULL) {
        if ((size_t)x->pcap_len >= sizeof cfg->pcap_path || memchr(x->pcap, '\0', (size_t)x->pcap_len) != NULL) {
            PyErr_SetString(PyExc_ValueError, "pcap path is too long or holds a NUL");
            return -1;
        }
        memcpy(cfg->pcap_path, x->pcap, (size_t)x->pcap_len);
        cfg->pcap_path[x->pcap_len] = '\0';
    }
    cfg->pcap_loop = x->loop;
    cfg->rtcp_mux = x->rtcp_mux;
    long long v;
    if (x->dtmf_pt_o && parse_int(x->dtmf_pt_o, "dtmf_pt", 0, 127, &v) < 0)
        return -1;
    cfg->dtmf_pt = x->dtmf_pt_o ? (int)v : 0;
    if (x->rtcp_o && parse_int(x->rtcp_o, "rtcp_interval_ms", 0, 600000, &v) < 0)
        return -1;
    cfg->rtcp_interval_ms = x->rtcp_o ? (uint32_t)v : 0;
    cfg->impair.jitter = IMPAIR_JITTER_NONE;
    if (x->jitter_o != NULL) {
        if (!PyUnicode_Check(x->jitter_o)) {
            PyErr_SetString(PyExc_TypeError, "jitter must be 'none', 'uniform' or 'normal'");
            return -1;
        }
        if (PyUnicode_CompareWithASCIIString(x->jitter_o, "uniform") == 0)
            cfg->impair.jitter = IMPAIR_JITTER_UNIFORM;
        else if (PyUnicode_CompareWithASCIIString(x->jitter_o, "normal") == 0)
            cfg->impair.jitter = IMPAIR_JITTER_NORMAL;
        else if (PyUnicode_CompareWithASCIIString(x->jitter_o, "none") != 0) {
            PyErr_Format(PyExc_ValueError, "jitter must be 'none', 'uniform' or 'normal', got %R", x->jitter_o);
            return -1;
        }
    }
    cfg->impair.jitter_ms = x->jitter_ms;
    cfg->impair.loss = x->loss;
    cfg->impair.duplicate = x->duplicate;
    cfg->impair.reorder = x->reorder;
    cfg->impair.seed = x->seed;
    if (x->srtp != NULL) {
        cfg->srtp_suite = srtp_suite_by_name(x->srtp);
        size_t kl = srtp_suite_key_len(cfg->srtp_suite);
        if (kl == 0) {
            PyErr_Format(PyExc_ValueError,
                         "srtp must be AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32 or AEAD_AES_128_GCM, got '%.60s'",
                         x->srtp);
            return -1;
        }
        if (x->tx_key.buf == NULL || x->rx_key.buf == NULL || (size_t)x->tx_key.len != kl ||
            (size_t)x->rx_key.len != kl) {
            PyErr_Format(PyExc_ValueError, "%s needs srtp_tx_key and srtp_rx_key of %zu bytes (master key + salt)",
                         x->srtp, kl);
            return -1;
        }
        memcpy(cfg->srtp_tx_key, x->tx_key.buf, kl);
        memcpy(cfg->srtp_rx_key, x->rx_key.buf, kl);
    }
    return 0;
}

static PyObject *pymedia_start(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"id", "remote_host", "remote_port", "payload_type", "source", "tone_hz", "ptime_ms",
                             "dbov", "pcap", "loop", "dtmf_pt", "jitter", "jitter_ms", "loss", "duplicate",
                             "reorder", "seed", "rtcp_interval_ms", "rtcp_mux", "srtp", "srtp_tx_key",
                             "srtp_rx_key", NULL};
    PyObject *id_o, *host_o, *port_o, *pt_o = NULL, *src_o = NULL, *ptime_o = NULL;
    double tone_hz = 0.0, dbov = -10.0;
    struct start_extra x;
    memset(&x, 0, sizeof x);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|OOdOd$z#pOOddddKOpzy*y*:start", kwlist, &id_o, &host_o,
                                     &port_o, &pt_o, &src_o, &tone_hz, &ptime_o, &dbov, &x.pcap, &x.pcap_len, &x.loop,
                                     &x.dtmf_pt_o, &x.jitter_o, &x.jitter_ms, &x.loss, &x.duplicate, &x.reorder,
                                     &x.seed, &x.rtcp_o, &x.rtcp_mux, &x.srtp, &x.tx_key, &x.rx_key))
        return NULL;
    PyObject *res = NULL;
    struct media_stream_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    uint32_t id;
    long long port, pt = 0, ptime = 20;
    cfg.source = MEDIA_SRC_SILENCE;
    if (parse_id(id_o, &id) < 0 || parse_host(host_o, "remote_host", cfg.remote_host) < 0 ||
        parse_int(port_o, "remote_port", 0, 65535, &port) < 0 ||
        (pt_o && parse_int(pt_o, "payload_type", 0, 127, &pt) < 0) || (src_o && parse_source(src_o, &cfg.source) < 0) ||
        (ptime_o && parse_int(ptime_o, "ptime_ms", MEDIA_PTIME_MIN, MEDIA_PTIME_MAX, &ptime) < 0))
        return NULL;
    cfg.remote_port = (uint16_t)port;
    cfg.payload_type = (int)pt;
    cfg.ptime_ms = (uint32_t)ptime;
    cfg.tone_hz = tone_hz;
    cfg.tone_dbov = dbov;
    struct media *m;
    if (parse_extra(&x, &cfg) < 0 || check_open(self, &m) < 0)
        goto out;
    char err[PYMEDIA_ERRLEN] = "";
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = media_stream_start(m, id, &cfg, err, sizeof err);
    Py_END_ALLOW_THREADS
    memset(&cfg, 0, sizeof cfg); /* keys */
    if (r < 0)
        raise_media_error(self, r, id_o, err);
    else
        res = Py_NewRef(Py_None);
out:
    if (x.tx_key.buf)
        PyBuffer_Release(&x.tx_key);
    if (x.rx_key.buf)
        PyBuffer_Release(&x.rx_key);
    return res;
}

/* start_many(items, **options): start every (id, remote_host, remote_port) of items with the same options,
 * handed to the media thread at once. */
static PyObject *pymedia_start_many(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"items", "payload_type", "source", "tone_hz", "ptime_ms", "dbov", "pcap", "loop",
                             "dtmf_pt", "jitter", "jitter_ms", "loss", "duplicate", "reorder", "seed",
                             "rtcp_interval_ms", "rtcp_mux", "srtp", "srtp_tx_key", "srtp_rx_key", NULL};
    PyObject *items_o, *pt_o = NULL, *src_o = NULL, *ptime_o = NULL;
    double tone_hz = 0.0, dbov = -10.0;
    struct start_extra x;
    memset(&x, 0, sizeof x);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$OOdOdz#pOOddddKOpzy*y*:start_many", kwlist, &items_o, &pt_o,
                                     &src_o, &tone_hz, &ptime_o, &dbov, &x.pcap, &x.pcap_len, &x.loop, &x.dtmf_pt_o,
                                     &x.jitter_o, &x.jitter_ms, &x.loss, &x.duplicate, &x.reorder, &x.seed, &x.rtcp_o,
                                     &x.rtcp_mux, &x.srtp, &x.tx_key, &x.rx_key))
        return NULL;
    PyObject *res = NULL, *seq = NULL;
    struct media_stream_cfg tmpl, *cfgs = NULL;
    uint32_t *ids = NULL;
    memset(&tmpl, 0, sizeof tmpl);
    long long pt = 0, ptime = 20;
    tmpl.source = MEDIA_SRC_SILENCE;
    if ((pt_o && parse_int(pt_o, "payload_type", 0, 127, &pt) < 0) || (src_o && parse_source(src_o, &tmpl.source) < 0) ||
        (ptime_o && parse_int(ptime_o, "ptime_ms", MEDIA_PTIME_MIN, MEDIA_PTIME_MAX, &ptime) < 0))
        goto out;
    tmpl.payload_type = (int)pt;
    tmpl.ptime_ms = (uint32_t)ptime;
    tmpl.tone_hz = tone_hz;
    tmpl.tone_dbov = dbov;
    struct media *m;
    if (parse_extra(&x, &tmpl) < 0 || check_open(self, &m) < 0)
        goto out;
    seq = PySequence_Fast(items_o, "items must be a sequence of (id, remote_host, remote_port)");
    if (seq == NULL)
        goto out;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    cfgs = PyMem_Calloc((size_t)(n > 0 ? n : 1), sizeof *cfgs);
    ids = PyMem_Calloc((size_t)(n > 0 ? n : 1), sizeof *ids);
    if (cfgs == NULL || ids == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
        long long port;
        cfgs[i] = tmpl;
        if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 3) {
            PyErr_Format(PyExc_TypeError, "items[%zd] must be a tuple (id, remote_host, remote_port)", i);
            goto out;
        }
        if (parse_id(PyTuple_GET_ITEM(it, 0), &ids[i]) < 0 ||
            parse_host(PyTuple_GET_ITEM(it, 1), "remote_host", cfgs[i].remote_host) < 0 ||
            parse_int(PyTuple_GET_ITEM(it, 2), "remote_port", 0, 65535, &port) < 0)
            goto out;
        cfgs[i].remote_port = (uint16_t)port;
    }
    char err[PYMEDIA_ERRLEN] = "";
    size_t failed = 0;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = media_stream_start_many(m, (size_t)n, ids, cfgs, &failed, err, sizeof err);
    Py_END_ALLOW_THREADS
    if (r < 0) {
        PyObject *fid = failed < (size_t)n ? PyLong_FromUnsignedLong(ids[failed]) : NULL;
        raise_media_error(self, r, fid, err);
        Py_XDECREF(fid);
    } else {
        res = Py_NewRef(Py_None);
    }
out:
    if (cfgs != NULL) {
        memset(cfgs, 0, sizeof *cfgs * (size_t)(seq ? PySequence_Fast_GET_SIZE(seq) : 0)); /* keys */
        PyMem_Free(cfgs);
    }
    PyMem_Free(ids);
    Py_XDECREF(seq);
    memset(&tmpl, 0, sizeof tmpl);
    if (x.tx_key.buf)
        PyBuffer_Release(&x.tx_key);
    if (x.rx_key.buf)
        PyBuffer_Release(&x.rx_key);
    return res;
}

static PyObject *pymedia_send_dtmf(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"id", "digits", "duration_ms", "volume", NULL};
    PyObject *id_o;
    const char *digits;
    unsigned int duration = 100, volume = 10;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Os|II:send_dtmf", kwlist, &id_o, &digits, &duration, &volume))
        return NULL;
    uint32_t id;
    struct media *m;
    if (parse_id(id_o, &id) < 0 || check_open(self, &m) < 0)
        return NULL;
    if (volume > 63) {
        PyErr_SetString(PyExc_ValueError, "volume must be 0..63");
        return NULL;
    }
    char err[PYMEDIA_ERRLEN] = "";
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = media_stream_dtmf(m, id, digits, duration, (uint8_t)volume, err, sizeof err);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return raise_media_error(self, r, id_o, err);
    Py_RETURN_NONE;
}

static PyObject *pymedia_dtmf_events(PyObject *self, PyObject *id_o)
{
    uint32_t id;
    struct media *m;
    if (parse_id(id_o, &id) < 0 || check_open(self, &m) < 0)
        return NULL;
    struct dtmf_event ev[DTMF_RX_EVENTS];
    size_t n = 0;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = media_stream_dtmf_events(m, id, ev, DTMF_RX_EVENTS, &n);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return raise_media_error(self, r, id_o, NULL);
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *d = Py_BuildValue("{s:C,s:i,s:d,s:i,s:O}", "digit", (int)ev[i].digit, "event", (int)ev[i].code,
                                    "duration_ms", ev[i].duration * 1000.0 / 8000.0, "volume", (int)ev[i].volume,
                                    "ended", ev[i].ended ? Py_True : Py_False);
        if (d == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, d);
    }
    return list;
}

static PyObject *pymedia_detect_tone(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"id", "hz", "window_ms", NULL};
    PyObject *id_o;
    double hz;
    unsigned int window = 200;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Od|I:detect_tone", kwlist, &id_o, &hz, &window))
        return NULL;
    uint32_t id;
    struct media *m;
    if (parse_id(id_o, &id) < 0 || check_open(self, &m) < 0)
        return NULL;
    struct tone_result t;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = media_stream_tone(m, id, hz, window, &t);
    Py_END_ALLOW_THREADS
    if (r == -EINVAL) {
        PyErr_SetString(PyExc_ValueError, "hz must be in (0, 4000) and window_ms in 1..1024");
        return NULL;
    }
    if (r < 0)
        return raise_media_error(self, r, id_o, NULL);
    return Py_BuildValue("{s:d,s:d,s:d,s:d,s:O,s:O}", "window_ms", t.samples / 8.0, "level_dbov", t.level_dbov,
                         "tone_dbov", t.tone_dbov, "ratio", t.ratio, "present", t.present ? Py_True : Py_False,
                         "silent", t.silent ? Py_True : Py_False);
}

static PyObject *pymedia_samples(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"id", "since", NULL};
    PyObject *id_o;
    unsigned long long since = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|K:samples", kwlist, &id_o, &since))
        return NULL;
    uint32_t id;
    struct media *m;
    if (parse_id(id_o, &id) < 0 || check_open(self, &m) < 0)
        return NULL;
    int16_t *buf = PyMem_Malloc(TONE_RING_SAMPLES * sizeof(int16_t));
    if (buf == NULL)
        return PyErr_NoMemory();
    uint64_t total = 0, first = 0;
    size_t n = 0;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = media_stream_samples(m, id, (uint64_t)since, buf, TONE_RING_SAMPLES, &total, &first, &n);
    Py_END_ALLOW_THREADS
    if (r < 0) {
        PyMem_Free(buf);
        return raise_media_error(self, r, id_o, NULL);
    }
    /* 16-bit little-endian PCM, as a WAV file holds it */
    PyObject *pcm = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * 2));
    if (pcm != NULL) {
        unsigned char *p = (unsigned char *)PyBytes_AS_STRING(pcm);
        for (size_t i = 0; i < n; i++) {
            uint16_t v = (uint16_t)buf[i];
            p[2 * i] = (unsigned char)(v & 0xff);
            p[2 * i + 1] = (unsigned char)(v >> 8);
        }
    }
    PyMem_Free(buf);
    if (pcm == NULL)
        return NULL;
    return Py_BuildValue("(KKN)", (unsigned long long)total, (unsigned long long)first, pcm);
}

static PyObject *pymedia_stop(PyObject *self, PyObject *id_o)
{
    uint32_t id;
    struct media *m;
    if (parse_id(id_o, &id) < 0 || check_open(self, &m) < 0)
        return NULL;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = media_stream_stop(m, id);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return raise_media_error(self, r, id_o, NULL);
    Py_RETURN_NONE;
}

static PyObject *pymedia_close_stream(PyObject *self, PyObject *id_o)
{
    uint32_t id;
    struct media *m;
    if (parse_id(id_o, &id) < 0 || check_open(self, &m) < 0)
        return NULL;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = media_stream_close(m, id);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return raise_media_error(self, r, id_o, NULL);
    Py_RETURN_NONE;
}

/* stop_many / close_many: every id of a sequence in one hand-over; a KeyError names the first unknown one
 * after the others were acted on. */
static PyObject *pymedia_op_many(PyObject *self, PyObject *ids_o, int close)
{
    struct media *m;
    if (check_open(self, &m) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(ids_o, "ids must be a sequence of stream ids");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    uint32_t *ids = PyMem_Calloc((size_t)(n > 0 ? n : 1), sizeof *ids);
    if (ids == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    PyObject *res = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyLong_Check(o) || PyBool_Check(o)) {
            PyErr_Format(PyExc_TypeError, "ids[%zd]: stream id must be an int, not %.100s", i, Py_TYPE(o)->tp_name);
            goto out;
        }
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred())
            goto out;
        ids[i] = overflow || v <= 0 || v > (long long)UINT32_MAX ? 0 : (uint32_t)v; /* 0 is never an id */
    }
    size_t failed = (size_t)n;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = close ? media_stream_close_many(m, (size_t)n, ids, &failed) : media_stream_stop_many(m, (size_t)n, ids, &failed);
    Py_END_ALLOW_THREADS
    if (r < 0) {
        PyObject *id_o = failed < (size_t)n ? PySequence_Fast_GET_ITEM(seq, (Py_ssize_t)failed) : NULL;
        raise_media_error(self, r, id_o, NULL);
        goto out;
    }
    res = Py_NewRef(Py_None);
out:
    PyMem_Free(ids);
    Py_DECREF(seq);
    return res;
}

static PyObject *pymedia_stop_many(PyObject *self, PyObject *ids_o)
{
    return pymedia_op_many(self, ids_o, 0);
}

static PyObject *pymedia_close_many(PyObject *self, PyObject *ids_o)
{
    return pymedia_op_many(self, ids_o, 1);
}

static PyObject *pymedia_set_realtime(PyObject *self, PyObject *prio_o)
{
    long long prio;
    struct media *m;
    if (parse_int(prio_o, "priority", 0, 99, &prio) < 0 || check_open(self, &m) < 0)
        return NULL;
    char err[PYMEDIA_ERRLEN] = "";
    int r = media_set_realtime(m, (int)prio, err, sizeof err);
    if (r == -EPERM) {
        PyErr_SetString(PyExc_PermissionError, err);
        return NULL;
    }
    if (r < 0)
        return raise_media_error(self, r, NULL, err);
    Py_RETURN_NONE;
}

static PyObject *pymedia_stats(PyObject *self, PyObject *id_o)
{
    uint32_t id;
    struct media *m;
    if (parse_id(id_o, &id) < 0 || check_open(self, &m) < 0)
        return NULL;
    struct media_stats s;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = media_stream_stats(m, id, &s);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return raise_media_error(self, r, id_o, NULL);
    PyObject *d = Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:d,s:d,s:K,s:K,s:k,s:i,s:O,s:K}",
                         "tx_packets", (unsigned long long)s.tx_packets,
                         "tx_bytes", (unsigned long long)s.tx_bytes,
                         "rx_packets", (unsigned long long)s.rx_packets,
                         "rx_bytes", (unsigned long long)s.rx_bytes,
                         "rx_lost", (unsigned long long)s.rx_lost,
                         "rx_out_of_order", (unsigned long long)s.rx_out_of_order,
                         "rx_duplicates", (unsigned long long)s.rx_duplicates,
                         "rx_invalid", (unsigned long long)s.rx_invalid,
                         "jitter_ms", s.jitter_ms,
                         "max_gap_ms", s.max_gap_ms,
                         "first_rx_ms", (unsigned long long)s.first_rx_ms,
                         "last_rx_ms", (unsigned long long)s.last_rx_ms,
                         "rx_ssrc", (unsigned long)s.rx_ssrc,
                         "rx_payload_type", s.rx_payload_type,
                         "sending", s.sending ? Py_True : Py_False,
                         "tx_errors", (unsigned long long)s.tx_errors);
    if (d == NULL)
        return NULL;
    PyObject *more = Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:O,s:d,s:L,s:d,s:d,s:K}", "tx_dropped",
        (unsigned long long)s.tx_dropped, "tx_duplicated", (unsigned long long)s.tx_duplicated, "tx_reordered",
        (unsigned long long)s.tx_reordered, "tx_dtmf_events", (unsigned long long)s.tx_dtmf_events, "rx_dtmf_events",
        (unsigned long long)s.rx_dtmf_events, "rx_auth_fail", (unsigned long long)s.rx_auth_fail, "rx_replay",
        (unsigned long long)s.rx_replay, "rtcp_tx", (unsigned long long)s.rtcp_tx, "rtcp_rx",
        (unsigned long long)s.rtcp_rx, "peer_report", s.peer_report ? Py_True : Py_False, "peer_fraction_lost",
        s.peer_fraction_lost, "peer_cum_lost", (long long)s.peer_cum_lost, "peer_jitter_ms", s.peer_jitter_ms,
        "rtt_ms", s.rtt_ms, "pcap_loops", (unsigned long long)s.pcap_loops);
    if (more == NULL || PyDict_Update(d, more) < 0) {
        Py_XDECREF(more);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(more);
    return d;
}

static PyObject *pymedia_lateness(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"reset", NULL};
    int reset = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:lateness", kwlist, &reset))
        return NULL;
    struct media *m;
    if (check_open(self, &m) < 0)
        return NULL;
    struct media_lateness l;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = media_tx_lateness(m, reset, &l);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return raise_media_error(self, r, NULL, NULL);
    return Py_BuildValue("{s:K,s:d,s:d,s:d}", "count", (unsigned long long)l.count, "p50_us", l.p50_us, "p99_us",
                         l.p99_us, "max_us", l.max_us);
}

static PyObject *pymedia_stream_count(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    struct media *m;
    if (check_open(self, &m) < 0)
        return NULL;
    size_t n;
    Py_BEGIN_ALLOW_THREADS
    n = media_stream_count(m);
    Py_END_ALLOW_THREADS
    return PyLong_FromSize_t(n);
}

static PyObject *pymedia_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    struct media *m = ((struct pymedia *)self)->m;
    if (m != NULL) {
        Py_BEGIN_ALLOW_THREADS
        media_shutdown(m);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static PyObject *pymedia_enter(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self);
}

static PyObject *pymedia_exit(PyObject *self, PyObject *Py_UNUSED(args))
{
    PyObject *r = pymedia_close(self, NULL);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyMethodDef pymedia_methods[] = {
    {"open", (PyCFunction)(void (*)(void))pymedia_open, METH_VARARGS | METH_KEYWORDS,
     "open($self, /, host, port=0)\n--\n\n"
     "Open a stream bound to host:port (numeric IPv4/IPv6; port 0 picks an even free port).\n"
     "Returns (stream id, bound port): tuple[int, int]. The stream receives and counts from now on."},
    {"start", (PyCFunction)(void (*)(void))pymedia_start, METH_VARARGS | METH_KEYWORDS,
     "start($self, /, id, remote_host, remote_port, payload_type=0, source='silence', tone_hz=0.0, ptime_ms=20,"
     " dbov=-10.0, *, pcap=None, loop=False, dtmf_pt=101, jitter='none', jitter_ms=0.0, loss=0.0, duplicate=0.0,"
     " reorder=0.0, seed=0, rtcp_interval_ms=0, rtcp_mux=False, srtp=None, srtp_tx_key=None, srtp_rx_key=None)"
     "\n--\n\n"
     "Start (or re-target) sending. source is 'silence', 'tone' (tone_hz at dbov), 'echo' (send back what\n"
     "arrives; remote_port 0 = to each packet's source) or 'none' (receive only). Unknown id: KeyError."},
    {"start_many", (PyCFunction)(void (*)(void))pymedia_start_many, METH_VARARGS | METH_KEYWORDS,
     "start_many($self, items, /, **options)\n--\n\nStart every (id, remote_host, remote_port) of items with the "
     "same options as start(), in one hand-over to the media thread (thousands of streams at once)."},
    {"send_dtmf", (PyCFunction)(void (*)(void))pymedia_send_dtmf, METH_VARARGS | METH_KEYWORDS,
     "send_dtmf($self, /, id, digits, duration_ms=100, volume=10)\n--\n\n"
     "Queue RFC 4733 telephone-events (digits of 0-9*#A-D) on a started stream."},
    {"dtmf_events", (PyCFunction)pymedia_dtmf_events, METH_O,
     "dtmf_events($self, id, /)\n--\n\n"
     "The newest received telephone-events (up to 32), oldest first: dicts of digit, event, duration_ms, volume, ended."},
    {"detect_tone", (PyCFunction)(void (*)(void))pymedia_detect_tone, METH_VARARGS | METH_KEYWORDS,
     "detect_tone($self, /, id, hz, window_ms=200)\n--\n\n"
     "Goertzel on the newest window_ms of received G.711 audio: level_dbov, tone_dbov, ratio, present, silent."},
    {"lateness", (PyCFunction)(void (*)(void))pymedia_lateness, METH_VARARGS | METH_KEYWORDS,
     "lateness($self, /, reset=False)\n--\n\n"
     "How late generated packets left against their schedule, over all streams: count, p50_us, p99_us, max_us."},
    {"samples", (PyCFunction)(void (*)(void))pymedia_samples, METH_VARARGS | METH_KEYWORDS,
     "samples(id, since=0) -> (total, first, pcm): the received G.711 audio decoded to 16-bit little-endian\n"
     "8 kHz PCM, samples first..total-1 (from since, or the oldest of the newest 8192 kept); total: received."},
    {"stop", (PyCFunction)pymedia_stop, METH_O,
     "stop($self, id, /)\n--\n\nStop sending; the stream keeps receiving and counting."},
    {"close_stream", (PyCFunction)pymedia_close_stream, METH_O,
     "close_stream($self, id, /)\n--\n\nClose the stream's socket and forget it."},
    {"set_realtime", (PyCFunction)pymedia_set_realtime, METH_O,
     "set_realtime($self, priority, /)\n--\n\nRun the media thread under SCHED_FIFO at priority 1..99 (0: normal "
     "scheduling), so that busy processes do not delay its packets; PermissionError without CAP_SYS_NICE."},
    {"stop_many", (PyCFunction)pymedia_stop_many, METH_O,
     "stop_many($self, ids, /)\n--\n\nStop every stream of ids in one hand-over to the media thread; KeyError "
     "names the first unknown id (the others are stopped)."},
    {"close_many", (PyCFunction)pymedia_close_many, METH_O,
     "close_many($self, ids, /)\n--\n\nClose every stream of ids in one hand-over to the media thread; KeyError "
     "names the first unknown id (the others are closed)."},
    {"stats", (PyCFunction)pymedia_stats, METH_O,
     "stats($self, id, /)\n--\n\n"
     "A dict: a consistent snapshot of the stream's statistics (the fields of struct media_stats)."},
    {"stream_count", (PyCFunction)pymedia_stream_count, METH_NOARGS, "stream_count($self, /)\n--\n\nOpen streams."},
    {"close", (PyCFunction)pymedia_close, METH_NOARGS,
     "close($self, /)\n--\n\nStop the media thread and close every stream; idempotent. Later calls raise EngineError."},
    {"__enter__", (PyCFunction)pymedia_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)pymedia_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot pymedia_slots[] = {
    {Py_tp_new, pymedia_new},
    {Py_tp_dealloc, pymedia_dealloc},
    {Py_tp_methods, pymedia_methods},
    {Py_tp_doc, (void *)"Media()\n--\n\n"
                        "The RTP media engine: one thread and one timer wheel for many RTP streams.\n"
                        "Use as a context manager, or call close()."},
    {0, NULL},
};

static PyType_Spec pymedia_spec = {
    .name = "pysiptest._core.Media",
    .basicsize = sizeof(struct pymedia),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = pymedia_slots,
};

int pysip_media_add_types(PyObject *module, struct pysip_state *st)
{
    PyObject *tp = PyType_FromModuleAndSpec(module, &pymedia_spec, NULL);
    if (tp == NULL)
        return -1;
    st->MediaType = (PyTypeObject *)tp; /* the state's reference */
    if (PyModule_AddObjectRef(module, "Media", tp) < 0)
        return -1;
    return 0;
}
