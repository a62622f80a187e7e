/* _core module definition: multi-phase init, module state, exceptions. */
#include "module.h"

#include <stddef.h>
#include <string.h>

static int pysip_exec(PyObject *module)
{
    struct pysip_state *st = pysip_state_from_module(module);
    st->ParseError = PyErr_NewExceptionWithDoc("pysiptest._core.ParseError",
                                               "A SIP message could not be parsed; .offset and .reason say where and why.",
                                               PyExc_ValueError, NULL);
    if (st->ParseError == NULL || PyModule_AddObjectRef(module, "ParseError", st->ParseError) < 0)
        return -1;
    st->EngineError = PyErr_NewExceptionWithDoc("pysiptest._core.EngineError",
                                                "An engine command failed (bad socket address, closed engine, ...).",
                                                PyExc_RuntimeError, NULL);
    if (st->EngineError == NULL || PyModule_AddObjectRef(module, "EngineError", st->EngineError) < 0)
        return -1;
    if (pysip_message_add_types(module, st) < 0)
        return -1;
    if (pysip_engine_add_types(module, st) < 0)
        return -1;
    if (pysip_media_add_types(module, st) < 0)
        return -1;
    if (pysip_auth_add_functions(module, st) < 0)
        return -1;
    return 0;
}

static int pysip_traverse(PyObject *module, visitproc visit, void *arg)
{
    struct pysip_state *st = pysip_state_from_module(module);
    Py_VISIT(st->ParseError);
    Py_VISIT(st->EngineError);
    Py_VISIT(st->MessageType);
    Py_VISIT(st->MessageClass);
    Py_VISIT(st->EngineType);
    Py_VISIT(st->MediaType);
    return 0;
}

static int pysip_clear(PyObject *module)
{
    struct pysip_state *st = pysip_state_from_module(module);
    Py_CLEAR(st->ParseError);
    Py_CLEAR(st->EngineError);
    Py_CLEAR(st->MessageType);
    Py_CLEAR(st->MessageClass);
    Py_CLEAR(st->EngineType);
    Py_CLEAR(st->MediaType);
    return 0;
}

static void pysip_free(void *module)
{
    (void)pysip_clear((PyObject *)module);
}

static PyModuleDef_Slot pysip_slots[] = {
    {Py_mod_exec, pysip_exec},
    {0, NULL},
};

PyModuleDef pysip_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pysiptest._core",
    .m_doc = "pysiptest C core: SIP messages, transactions, transports and the RTP media engine.",
    .m_size = sizeof(struct pysip_state),
    .m_methods = pysip_message_functions,
    .m_slots = pysip_slots,
    .m_traverse = pysip_traverse,
    .m_clear = pysip_clear,
    .m_free = pysip_free,
};

struct pysip_state *pysip_state_from_module(PyObject *mod)
{
    return (struct pysip_state *)PyModule_GetState(mod);
}

struct pysip_state *pysip_state_from_type(PyTypeObject *tp)
{
    PyObject *mod = PyType_GetModuleByDef(tp, &pysip_module_def);
    return mod ? pysip_state_from_module(mod) : NULL;
}

PyObject *pysip_raise_parse_error(struct pysip_state *st, size_t offset, const char *reason)
{
    PyObject *msg = PyUnicode_FromFormat("%s (at byte %zu)", reason, offset);
    if (msg == NULL)
        return NULL;
    PyObject *exc = PyObject_CallOneArg(st->ParseError, msg);
    Py_DECREF(msg);
    if (exc == NULL)
        return NULL;
    PyObject *off = PyLong_FromSize_t(offset);
    PyObject *rsn = PyUnicode_DecodeUTF8(reason, (Py_ssize_t)strlen(reason), "replace");
    if (off == NULL || rsn == NULL || PyObject_SetAttrString(exc, "offset", off) < 0 ||
        PyObject_SetAttrString(exc, "reason", rsn) < 0) {
        Py_XDECREF(off);
        Py_XDECREF(rsn);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(off);
    Py_DECREF(rsn);
    PyErr_SetObject(st->ParseError, exc);
    Py_DECREF(exc);
    return NULL;
}

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&pysip_module_def);
}
