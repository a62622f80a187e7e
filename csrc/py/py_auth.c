/* Digest authentication functions of _core (RFC 7616/8760), over csrc/sip/digest.h.
 *
 * Module functions only (no types, no state): digest_response, ha1, userhash, parse_challenges,
 * authorization, make_challenge, parse_credentials, verify.  Strings are taken as UTF-8; bad arguments and
 * malformed header values raise ValueError (or TypeError) with the reason from the C library.
 */
#include "module.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sip/digest.h"

#define ERRLEN 200

static PyObject *raise_digest(int rc, const char *err)
{
    if (rc == -ENOMEM)
        return PyErr_NoMemory();
    PyErr_SetString(PyExc_ValueError, err && err[0] ? err : "digest authentication failed");
    return NULL;
}

static struct sip_str sl(const char *p, Py_ssize_t n)
{
    struct sip_str s = {p, n > 0 ? (size_t)n : 0};
    return s;
}

static int alg_arg(const char *name, Py_ssize_t len, enum digest_alg *out)
{
    if (name == NULL) {
        *out = DIGEST_ALG_MD5;
        return 0;
    }
    if (digest_alg_from_name(name, (size_t)len, out) < 0) {
        PyErr_Format(PyExc_ValueError,
                     "algorithm '%.40s' is not one of MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256, "
                     "SHA-512-256-sess", name);
        return -1;
    }
    return 0;
}

static int qop_arg(const char *q, Py_ssize_t len, unsigned *out, int allow_both)
{
    if (q == NULL || len == 0) {
        *out = 0;
        return 0;
    }
    if (len == 4 && memcmp(q, "auth", 4) == 0)
        *out = DIGEST_QOP_AUTH;
    else if (len == 8 && memcmp(q, "auth-int", 8) == 0)
        *out = DIGEST_QOP_AUTH_INT;
    else if (allow_both && len == 13 && memcmp(q, "auth,auth-int", 13) == 0)
        *out = DIGEST_QOP_AUTH | DIGEST_QOP_AUTH_INT;
    else {
        PyErr_SetString(PyExc_ValueError, allow_both ? "qop must be None, 'auth', 'auth-int' or 'auth,auth-int'"
                                                     : "qop must be None, 'auth' or 'auth-int'");
        return -1;
    }
    return 0;
}

static int nc_arg(unsigned long long nc, uint32_t *out)
{
    if (nc == 0 || nc > 0xffffffffULL) {
        PyErr_SetString(PyExc_ValueError, "nc must be between 1 and 0xffffffff");
        return -1;
    }
    *out = (uint32_t)nc;
    return 0;
}

static PyObject *hex_str(const char *s)
{
    return PyUnicode_FromString(s);
}

/* digest_response(algorithm, username, realm, password, method, uri, nonce, *, qop=None, nc=1, cnonce='',
 *                 body=b'', body_hash=None, ha1=None) -> str */
static PyObject *auth_digest_response(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kwlist[] = {"algorithm", "username", "realm", "password", "method", "uri", "nonce", "qop", "nc",
                             "cnonce", "body", "body_hash", "ha1", NULL};
    const char *alg = NULL, *user, *realm, *pass, *method, *uri, *nonce, *qop = NULL, *cnonce = "", *bh = NULL,
               *ha1 = NULL;
    Py_ssize_t algl = 0, userl, realml, passl, methodl, uril, noncel, qopl = 0, cnl = 0, bhl = 0, ha1l = 0;
    unsigned long long nc = 1;
    Py_buffer body = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "z#s#s#s#s#s#s#|$z#Ks#y*z#z#:digest_response", kwlist, &alg, &algl,
                                     &user, &userl, &realm, &realml, &pass, &passl, &method, &methodl, &uri, &uril,
                                     &nonce, &noncel, &qop, &qopl, &nc, &cnonce, &cnl, &body, &bh, &bhl, &ha1, &ha1l))
        return NULL;
    PyObject *ret = NULL;
    struct digest_input in = {0};
    unsigned q = 0;
    if (alg_arg(alg, algl, &in.alg) < 0 || qop_arg(qop, qopl, &q, 0) < 0 || nc_arg(nc, &in.nc) < 0)
        goto out;
    in.qop = (enum digest_qop)q;
    in.username = sl(user, userl);
    in.realm = sl(realm, realml);
    in.password = sl(pass, passl);
    in.ha1 = sl(ha1, ha1l);
    in.nonce = sl(nonce, noncel);
    in.cnonce = sl(cnonce, cnl);
    in.method = sl(method, methodl);
    in.uri = sl(uri, uril);
    in.body = sl(body.buf, body.len);
    in.body_hash = sl(bh, bhl);
    char resp[DIGEST_HEX_MAX + 1], err[ERRLEN] = "";
    int rc = digest_response(&in, resp, sizeof(resp), err, sizeof(err));
    ret = rc < 0 ? raise_digest(rc, err) : hex_str(resp);
out:
    PyBuffer_Release(&body);
    return ret;
}

/* ha1(algorithm, username, realm, password) -> str ; userhash(algorithm, username, realm) -> str */
static PyObject *auth_ha1(PyObject *mod, PyObject *args)
{
    (void)mod;
    const char *alg, *user, *realm, *pass;
    Py_ssize_t algl, userl, realml, passl;
    if (!PyArg_ParseTuple(args, "s#s#s#s#:ha1", &alg, &algl, &user, &userl, &realm, &realml, &pass, &passl))
        return NULL;
    enum digest_alg a;
    if (alg_arg(alg, algl, &a) < 0)
        return NULL;
    char out[DIGEST_HEX_MAX + 1];
    int rc = digest_ha1(a, sl(user, userl), sl(realm, realml), sl(pass, passl), out, sizeof(out));
    return rc < 0 ? raise_digest(rc, "hash not available") : hex_str(out);
}

static PyObject *auth_userhash(PyObject *mod, PyObject *args)
{
    (void)mod;
    const char *alg, *user, *realm;
    Py_ssize_t algl, userl, realml;
    if (!PyArg_ParseTuple(args, "s#s#s#:userhash", &alg, &algl, &user, &userl, &realm, &realml))
        return NULL;
    enum digest_alg a;
    if (alg_arg(alg, algl, &a) < 0)
        return NULL;
    char out[DIGEST_HEX_MAX + 1];
    int rc = digest_userhash(a, sl(user, userl), sl(realm, realml), out, sizeof(out));
    return rc < 0 ? raise_digest(rc, "hash not available") : hex_str(out);
}

static int dict_set(PyObject *d, const char *k, PyObject *v)
{
    if (v == NULL)
        return -1;
    int rc = PyDict_SetItemString(d, k, v);
    Py_DECREF(v);
    return rc;
}

static PyObject *qop_list(unsigned q)
{
    PyObject *l = PyList_New(0);
    if (l == NULL)
        return NULL;
    if (((q & DIGEST_QOP_AUTH) && PyList_Append(l, PyUnicode_FromString("auth")) < 0) ||
        ((q & DIGEST_QOP_AUTH_INT) && PyList_Append(l, PyUnicode_FromString("auth-int")) < 0)) {
        Py_DECREF(l);
        return NULL;
    }
    return l;
}

static PyObject *challenge_dict(const struct digest_challenge *ch)
{
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    const char *an = ch->alg_known ? digest_alg_name(ch->alg) : NULL;
    if (dict_set(d, "scheme", PyUnicode_DecodeUTF8(ch->scheme, (Py_ssize_t)strlen(ch->scheme), "replace")) < 0 ||
        dict_set(d, "supported", PyBool_FromLong(digest_challenge_supported(ch))) < 0)
        goto fail;
    if (ch->is_digest &&
        (dict_set(d, "realm", PyUnicode_DecodeUTF8(ch->realm, (Py_ssize_t)strlen(ch->realm), "surrogateescape")) < 0 ||
         dict_set(d, "nonce", PyUnicode_DecodeUTF8(ch->nonce, (Py_ssize_t)strlen(ch->nonce), "surrogateescape")) < 0 ||
         dict_set(d, "opaque",
                  ch->has_opaque ? PyUnicode_DecodeUTF8(ch->opaque, (Py_ssize_t)strlen(ch->opaque), "surrogateescape")
                                 : Py_NewRef(Py_None)) < 0 ||
         dict_set(d, "algorithm", an ? PyUnicode_FromString(an) : Py_NewRef(Py_None)) < 0 ||
         dict_set(d, "qop", qop_list(ch->qop)) < 0 || dict_set(d, "stale", PyBool_FromLong(ch->stale)) < 0 ||
         dict_set(d, "userhash", PyBool_FromLong(ch->userhash)) < 0))
        goto fail;
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

/* parse_challenges(value) -> list of dicts (scheme, supported, realm, nonce, opaque, algorithm, qop, stale,
 * userhash) */
static PyObject *auth_parse_challenges(PyObject *mod, PyObject *arg)
{
    (void)mod;
    Py_ssize_t len;
    const char *v = PyUnicode_AsUTF8AndSize(arg, &len);
    if (v == NULL)
        return NULL;
    PyObject *l = PyList_New(0);
    if (l == NULL)
        return NULL;
    size_t pos = 0;
    struct digest_challenge ch;
    char err[ERRLEN] = "";
    int rc;
    while ((rc = digest_challenge_next(v, (size_t)len, &pos, &ch, err, sizeof(err))) == 1) {
        PyObject *d = challenge_dict(&ch);
        if (d == NULL || PyList_Append(l, d) < 0) {
            Py_XDECREF(d);
            Py_DECREF(l);
            return NULL;
        }
        Py_DECREF(d);
    }
    if (rc < 0) {
        Py_DECREF(l);
        return raise_digest(rc, err);
    }
    return l;
}

/* The challenge argument: one str or a sequence of str (several header values).  Fills vals (PyMem). */
static int challenge_values(PyObject *obj, struct sip_str **vals, size_t *n, PyObject **keep)
{
    *vals = NULL;
    *n = 0;
    *keep = NULL;
    if (PyUnicode_Check(obj)) {
        *keep = PyTuple_Pack(1, obj);
    } else {
        *keep = PySequence_Tuple(obj);
        if (*keep == NULL) {
            PyErr_SetString(PyExc_TypeError, "challenge must be a str or a sequence of str");
            return -1;
        }
    }
    if (*keep == NULL)
        return -1;
    Py_ssize_t cnt = PyTuple_GET_SIZE(*keep);
    *vals = PyMem_Calloc(cnt > 0 ? (size_t)cnt : 1, sizeof(**vals));
    if (*vals == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < cnt; i++) {
        PyObject *it = PyTuple_GET_ITEM(*keep, i);
        Py_ssize_t l;
        const char *p = PyUnicode_Check(it) ? PyUnicode_AsUTF8AndSize(it, &l) : NULL;
        if (p == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "challenge values must be str");
            return -1;
        }
        (*vals)[i] = sl(p, l);
    }
    *n = (size_t)cnt;
    return 0;
}

/* authorization(challenge, method, uri, username, password, body=b'', nc=1, cnonce=None, *, realm=None,
 *               qop=None, ha1=None) -> str */
static PyObject *auth_authorization(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kwlist[] = {"challenge", "method", "uri", "username", "password", "body", "nc", "cnonce",
                             "realm", "qop", "ha1", NULL};
    PyObject *chobj;
    const char *method, *uri, *user, *pass, *cnonce = NULL, *realm = NULL, *qop = NULL, *ha1 = NULL;
    Py_ssize_t methodl, uril, userl, passl, cnl = 0, qopl = 0, ha1l = 0;
    unsigned long long nc = 1;
    Py_buffer body = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Os#s#s#s#|y*Kz#$zz#z#:authorization", kwlist, &chobj, &method,
                                     &methodl, &uri, &uril, &user, &userl, &pass, &passl, &body, &nc, &cnonce, &cnl,
                                     &realm, &qop, &qopl, &ha1, &ha1l))
        return NULL;
    PyObject *ret = NULL, *keep = NULL;
    struct sip_str *vals = NULL;
    size_t nv = 0;
    char *out = NULL;
    struct digest_client cl = {0};
    unsigned q = 0;
    if (nc_arg(nc, &cl.nc) < 0 || qop_arg(qop, qopl, &q, 0) < 0 || challenge_values(chobj, &vals, &nv, &keep) < 0)
        goto done;
    struct digest_challenge ch;
    char err[ERRLEN] = "";
    int rc = digest_challenge_pick(vals, nv, realm, &ch, err, sizeof(err));
    if (rc < 0) {
        raise_digest(rc, err);
        goto done;
    }
    cl.username = sl(user, userl);
    cl.password = sl(pass, passl);
    cl.ha1 = sl(ha1, ha1l);
    cl.method = sl(method, methodl);
    cl.uri = sl(uri, uril);
    cl.body = sl(body.buf, body.len);
    cl.cnonce = sl(cnonce, cnl);
    cl.qop_pref = (enum digest_qop)q;
    size_t cap = 1024 + 3 * (size_t)userl + 2 * (size_t)uril + 2 * (size_t)cnl + 6 * DIGEST_VALUE_MAX;
    out = PyMem_Malloc(cap);
    if (out == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    size_t n = 0;
    rc = digest_authorization_build(&ch, &cl, out, cap, &n, err, sizeof(err));
    ret = rc < 0 ? raise_digest(rc, err) : PyUnicode_DecodeUTF8(out, (Py_ssize_t)n, "surrogateescape");
done:
    PyMem_Free(out);
    PyMem_Free(vals);
    Py_XDECREF(keep);
    PyBuffer_Release(&body);
    return ret;
}

static uint64_t now_arg(PyObject *now)
{
    if (now == NULL || now == Py_None)
        return (uint64_t)time(NULL);
    double d = PyFloat_AsDouble(now);
    if (d < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "now must not be negative");
    return d > 0 ? (uint64_t)d : 0;
}

/* make_challenge(realm, algorithm, secret, qop='auth', stale=False, *, opaque=None, userhash=False, now=None)
 * -> str */
static PyObject *auth_make_challenge(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kwlist[] = {"realm", "algorithm", "secret", "qop", "stale", "opaque", "userhash", "now", NULL};
    const char *realm, *alg, *qop = "auth", *opaque = NULL;
    Py_ssize_t realml, algl, qopl = 4, opl = 0;
    Py_buffer secret = {0};
    int stale = 0, userhash = 0;
    PyObject *nowobj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s#s#s*|z#p$z#pO:make_challenge", kwlist, &realm, &realml, &alg,
                                     &algl, &secret, &qop, &qopl, &stale, &opaque, &opl, &userhash, &nowobj))
        return NULL;
    PyObject *ret = NULL;
    enum digest_alg a;
    unsigned q;
    if (alg_arg(alg, algl, &a) < 0 || qop_arg(qop, qopl, &q, 1) < 0)
        goto out;
    if (secret.len < 8) {
        PyErr_SetString(PyExc_ValueError, "secret must be at least 8 bytes");
        goto out;
    }
    uint64_t now = now_arg(nowobj);
    if (PyErr_Occurred())
        goto out;
    unsigned char rnd[16];
    char nonce[128], chv[2048], err[ERRLEN] = "";
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL random generator failed");
        goto out;
    }
    int rc = digest_nonce_make(sl(secret.buf, secret.len), now, rnd, sizeof(rnd), nonce, sizeof(nonce));
    if (rc < 0) {
        raise_digest(rc, "could not make a nonce");
        goto out;
    }
    rc = digest_challenge_build(sl(realm, realml), a, q, sl(nonce, (Py_ssize_t)strlen(nonce)), sl(opaque, opl),
                                stale, userhash, chv, sizeof(chv), err, sizeof(err));
    ret = rc < 0 ? raise_digest(rc, err) : PyUnicode_DecodeUTF8(chv, (Py_ssize_t)strlen(chv), "surrogateescape");
out:
    PyBuffer_Release(&secret);
    return ret;
}

static int parse_creds(PyObject *arg, struct digest_credentials *cr)
{
    Py_ssize_t len;
    const char *v = PyUnicode_AsUTF8AndSize(arg, &len);
    if (v == NULL)
        return -1;
    char err[ERRLEN] = "";
    int rc = digest_credentials_parse(v, (size_t)len, cr, err, sizeof(err));
    if (rc < 0) {
        raise_digest(rc, err);
        return -1;
    }
    return 0;
}

#define STR_ITEM(d, k, s) dict_set(d, k, PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape"))

/* parse_credentials(value) -> dict (username, realm, nonce, uri, response, cnonce, opaque, algorithm, qop, nc,
 * userhash) */
static PyObject *auth_parse_credentials(PyObject *mod, PyObject *arg)
{
    (void)mod;
    struct digest_credentials *cr = PyMem_Malloc(sizeof(*cr));
    if (cr == NULL)
        return PyErr_NoMemory();
    PyObject *d = NULL;
    if (parse_creds(arg, cr) < 0)
        goto out;
    d = PyDict_New();
    const char *an = cr->alg_known ? digest_alg_name(cr->alg) : NULL;
    const char *q = cr->qop == DIGEST_QOP_AUTH ? "auth" : cr->qop == DIGEST_QOP_AUTH_INT ? "auth-int" : NULL;
    if (d == NULL || STR_ITEM(d, "username", cr->username) < 0 || STR_ITEM(d, "realm", cr->realm) < 0 ||
        STR_ITEM(d, "nonce", cr->nonce) < 0 || STR_ITEM(d, "uri", cr->uri) < 0 ||
        STR_ITEM(d, "response", cr->response) < 0 || STR_ITEM(d, "cnonce", cr->cnonce) < 0 ||
        STR_ITEM(d, "opaque", cr->opaque) < 0 ||
        dict_set(d, "algorithm", an ? PyUnicode_FromString(an) : Py_NewRef(Py_None)) < 0 ||
        dict_set(d, "qop", q ? PyUnicode_FromString(q) : Py_NewRef(Py_None)) < 0 ||
        dict_set(d, "nc", cr->has_nc ? PyLong_FromUnsignedLong(cr->nc) : Py_NewRef(Py_None)) < 0 ||
        dict_set(d, "userhash", PyBool_FromLong(cr->userhash)) < 0)
        Py_CLEAR(d);
out:
    PyMem_Free(cr);
    return d;
}

/* verify(authorization_header, method, password_or_ha1, realm, secret, body=b'', *, username=None,
 *        is_ha1=False, max_age=300, now=None) -> (ok, stale)
 * ok: the response is right and the nonce fresh.  stale: the response is right but the nonce too old (the
 * request must still be challenged again, with stale=true).  A wrong or unusable answer gives (False, False). */
static PyObject *auth_verify(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kwlist[] = {"authorization_header", "method", "password_or_ha1", "realm", "secret", "body",
                             "username", "is_ha1", "max_age", "now", NULL};
    PyObject *hdr, *nowobj = NULL;
    const char *method, *pw, *realm, *user = NULL;
    Py_ssize_t methodl, pwl, realml, userl = 0;
    Py_buffer secret = {0}, body = {0};
    int is_ha1 = 0;
    unsigned long long max_age = 300;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Us#s#s#s*|y*$z#pKO:verify", kwlist, &hdr, &method, &methodl, &pw,
                                     &pwl, &realm, &realml, &secret, &body, &user, &userl, &is_ha1, &max_age,
                                     &nowobj))
        return NULL;
    PyObject *ret = NULL;
    struct digest_credentials *cr = PyMem_Malloc(sizeof(*cr));
    if (cr == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    if (parse_creds(hdr, cr) < 0)
        goto out;
    uint64_t now = now_arg(nowobj);
    if (PyErr_Occurred())
        goto out;
    struct digest_verify_args a = {
        .method = sl(method, methodl),
        .body = sl(body.buf, body.len),
        .username = user ? sl(user, userl) : sl(cr->username, (Py_ssize_t)strlen(cr->username)),
        .password = is_ha1 ? sl(NULL, 0) : sl(pw, pwl),
        .ha1 = is_ha1 ? sl(pw, pwl) : sl(NULL, 0),
        .realm = sl(realm, realml),
        .secret = sl(secret.buf, secret.len),
        .now = now,
        .max_age = max_age,
    };
    char err[ERRLEN] = "";
    int rc = digest_verify(cr, &a, err, sizeof(err));
    if (rc == -ENOMEM || rc == -EINVAL) {
        raise_digest(rc, err);
        goto out;
    }
    ret = Py_BuildValue("(OO)", rc == 0 ? Py_True : Py_False, rc == DIGEST_VERIFY_STALE ? Py_True : Py_False);
out:
    if (cr)
        OPENSSL_cleanse(cr, sizeof(*cr));
    PyMem_Free(cr);
    PyBuffer_Release(&secret);
    PyBuffer_Release(&body);
    return ret;
}

static PyMethodDef auth_functions[] = {
    {"digest_response", (PyCFunction)(void (*)(void))auth_digest_response, METH_VARARGS | METH_KEYWORDS,
     "digest_response(algorithm, username, realm, password, method, uri, nonce, *, qop=None, nc=1, cnonce='', "
     "body=b'', body_hash=None, ha1=None) -> hex response (RFC 7616 3.4.1)"},
    {"ha1", (PyCFunction)auth_ha1, METH_VARARGS, "ha1(algorithm, username, realm, password) -> hex H(u:r:p)"},
    {"userhash", (PyCFunction)auth_userhash, METH_VARARGS, "userhash(algorithm, username, realm) -> hex H(u:r)"},
    {"parse_challenges", (PyCFunction)auth_parse_challenges, METH_O,
     "parse_challenges(header_value) -> list of dicts, one per challenge"},
    {"authorization", (PyCFunction)(void (*)(void))auth_authorization, METH_VARARGS | METH_KEYWORDS,
     "authorization(challenge, method, uri, username, password, body=b'', nc=1, cnonce=None, *, realm=None, "
     "qop=None, ha1=None) -> Authorization value answering the strongest supported challenge"},
    {"make_challenge", (PyCFunction)(void (*)(void))auth_make_challenge, METH_VARARGS | METH_KEYWORDS,
     "make_challenge(realm, algorithm, secret, qop='auth', stale=False, *, opaque=None, userhash=False, now=None) "
     "-> WWW-Authenticate value with an HMAC-protected timestamped nonce"},
    {"parse_credentials", (PyCFunction)auth_parse_credentials, METH_O,
     "parse_credentials(authorization_value) -> dict"},
    {"verify", (PyCFunction)(void (*)(void))auth_verify, METH_VARARGS | METH_KEYWORDS,
     "verify(authorization_header, method, password_or_ha1, realm, secret, body=b'', *, username=None, "
     "is_ha1=False, max_age=300, now=None) -> (ok, stale); constant-time comparison"},
    {NULL, NULL, 0, NULL},
};

int pysip_auth_add_functions(PyObject *module, struct pysip_state *st)
{
    (void)st;
    return PyModule_AddFunctions(module, auth_functions);
}
