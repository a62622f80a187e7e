/* Digest authentication functions of _core (RFC 7616/8760): filled in by the digest work. */
#include "module.h"

int pysip_auth_add_functions(PyObject *module, struct pysip_state *st)
{
    (void)module;
    (void)st;
    return 0;
}
