/* STUB: replaced by the real binding. */
#include "module.h"
int pysip_media_add_types(PyObject *module, struct pysip_state *st)
{
    (void)module;
    (void)st;
    return 0;
}
