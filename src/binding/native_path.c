/* The path the native tier routes on: Starlette's get_route_path for the
 * scope the ASGI tier would build (scope.c: path = the server's root_path +
 * the percent-decoded path; root_path = the server's, or the TestClient's
 * scope_patch).  Shared by the dispatcher and the no-route answers. */
#include "native.h"

#include <string.h>

void celeris__native_strip_root(const char *full, size_t fn, const char *root, size_t rn,
                                const char **rp, size_t *rpn)
{
    *rp = full;
    *rpn = fn;
    if (rn == 0 || fn < rn || memcmp(full, root, rn) != 0)
        return;
    if (fn == rn) {
        *rp = full + fn;
        *rpn = 0;
    } else if (full[rn] == '/') {
        *rp = full + rn;
        *rpn = fn - rn;
    }
}

int celeris__native_route_path(ServerObject *self, const char *dec, size_t dn, char *fullbuf,
                               size_t cap, celeris_npath *out)
{
    Py_ssize_t srn = PyBytes_GET_SIZE(self->root_path_bytes);
    out->full = dec;
    out->full_len = dn;
    if (srn > 0) {
        /* scope.c: path = root_path + the decoded path */
        if ((size_t)srn + dn > cap)
            return 0;
        memcpy(fullbuf, PyBytes_AS_STRING(self->root_path_bytes), (size_t)srn);
        memcpy(fullbuf + srn, dec, dn);
        out->full = fullbuf;
        out->full_len = (size_t)srn + dn;
    }
    out->root = PyBytes_AS_STRING(self->root_path_bytes);
    out->root_len = (size_t)srn;
    if (self->scope_patch) {
        /* The TestClient patches root_path into the scope (path unchanged). */
        PyObject *r = PyDict_GetItemWithError(self->scope_patch, self->st->s_root_path);
        if (r) {
            Py_ssize_t n;
            const char *u = PyUnicode_Check(r) ? PyUnicode_AsUTF8AndSize(r, &n) : NULL;
            if (!u) {
                PyErr_Clear();
                return 0;
            }
            out->root = u;
            out->root_len = (size_t)n;
        } else if (PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
    }
    celeris__native_strip_root(out->full, out->full_len, out->root, out->root_len, &out->rp,
                               &out->rp_len);
    return 1;
}
