/* The CPython binding of pysiptest: shared declarations.
 *
 * csrc/py/ is the only place in the project that includes Python.h.  The
 * module uses multi-phase initialisation and per-module state; no file here
 * keeps a static PyObject*.  Each binding file adds its own heap types to the
 * module from the module's exec slot through one *_add_types function.
 */
#ifndef PYSIPTEST_PY_MODULE_H
#define PYSIPTEST_PY_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

struct sipmsg;

struct pysip_state {
    PyObject *ParseError;      /* _core.ParseError, a ValueError subclass with .offset and .reason */
    PyObject *EngineError;     /* _core.EngineError, a RuntimeError subclass for engine/transport failures */
    PyTypeObject *MessageType; /* _core.Message */
    PyTypeObject *MessageClass; /* what parse() and events create: _core.Message or the subclass set by
                                  _core._set_message_class (pysiptest.Message); NULL means MessageType */
    PyTypeObject *EngineType;  /* _core.Engine */
    PyTypeObject *MediaType;   /* _core.Media */
};

extern PyModuleDef pysip_module_def;

/* State of the module that defined type `tp` (a heap type of this module) or of module `mod`. */
struct pysip_state *pysip_state_from_type(PyTypeObject *tp);
struct pysip_state *pysip_state_from_module(PyObject *mod);

/* Raise ParseError(reason) with .offset and .reason set. Returns NULL. */
PyObject *pysip_raise_parse_error(struct pysip_state *st, size_t offset, const char *reason);

/* Each returns 0 on success, -1 with an exception set. */
int pysip_message_add_types(PyObject *module, struct pysip_state *st);
int pysip_engine_add_types(PyObject *module, struct pysip_state *st);
int pysip_media_add_types(PyObject *module, struct pysip_state *st);
/* Digest authentication functions (py_auth.c). */
int pysip_auth_add_functions(PyObject *module, struct pysip_state *st);

/* Wrap a parsed message in a new _core.Message; takes ownership of m (frees it on failure). */
PyObject *pysip_message_wrap(struct pysip_state *st, struct sipmsg *m);

/* Module-level functions contributed by py_message.c (parse). */
extern PyMethodDef pysip_message_functions[];

#endif
