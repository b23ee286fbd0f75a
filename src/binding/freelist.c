/* Free lists for the objects every native request makes (a Cycle and a
 * NativeCall): their memory is reused instead of going through the GC
 * allocator and back each time.  See celeris_freelist in binding.h.
 *
 * A kept object is untracked, has been cleared, has refcount 0 and holds no
 * reference to its type; PyObject_Init re-initialises it exactly as
 * PyObject_GC_New initialises fresh memory (type set and, for a heap type,
 * referenced; a new reference).  The types using it have no tp_finalize, so
 * no "finalized" GC bit survives in the reused header.  Free-threaded builds
 * do not keep anything (the lists rely on the GIL). */
#include "binding.h"

PyObject *celeris_fl_new(celeris_freelist *fl, PyTypeObject *tp)
{
#ifndef Py_GIL_DISABLED
    if (fl->n > 0)
        return PyObject_Init(fl->items[--fl->n], tp);
#endif
    return _PyObject_GC_New(tp);
}

void celeris_fl_release(celeris_freelist *fl, PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
#ifndef Py_GIL_DISABLED
    if (!fl->closed && fl->n < CELERIS_FREELIST_MAX)
        fl->items[fl->n++] = op;
    else
#endif
        tp->tp_free(op);
    Py_DECREF(tp);
}

void celeris_fl_close(celeris_freelist *fl)
{
    while (fl->n > 0)
        PyObject_GC_Del(fl->items[--fl->n]);
    fl->closed = 1;
}
