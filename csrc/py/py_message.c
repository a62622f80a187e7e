/* STUB: replaced by the real binding. */
#include "module.h"
int pysip_message_add_types(PyObject *module, struct pysip_state *st)
{
    (void)module;
    (void)st;
    return 0;
}
PyMethodDef pysip_message_functions[] = {{NULL, NULL, 0, NULL}};
PyObject *pysip_message_wrap(struct pysip_state *st, struct sipmsg *m)
{
    (void)st;
    (void)m;
    return NULL;
}
