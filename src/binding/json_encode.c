/* _celeris.json_dumps(obj) -> bytes: what Starlette's JSONResponse.render
 * gives, i.e. json.dumps(obj, ensure_ascii=False, allow_nan=False,
 * indent=None, separators=(",", ":")).encode("utf-8"), for trees of exact
 * dict, list, tuple, str, int, float, bool and None (see docs/json.md).
 *
 * Anything else, subclasses included, raises json's TypeError so the caller
 * can fall back to FastAPI's own encoder: json.dumps would accept a str or
 * dict subclass, but jsonable_encoder may turn it into something else (an
 * Enum into its value), so only exact types are safe to encode unchanged.
 * Errors mirror json.dumps + encode: same exception types and messages, and
 * the same one when a tree holds several problems (json reports the first in
 * document order; a lone surrogate only once the whole text is built). */
#include "binding.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "json.h"

/* One open container on the C stack, so a recursion error can tell a cycle
 * (the container is already open further up) from a deep tree. */
typedef struct frame {
    PyObject *obj;              /* borrowed */
    const struct frame *up;
} frame;

typedef struct encoder {
    cel_json_writer w;
    Py_ssize_t surrogates;      /* lone surrogates written */
    int circular;               /* the recursion error came from a cycle */
    int flags;                  /* CELERIS_JSON_FASTAPI / CELERIS_JSON_PLAIN (binding.h) */
    int depth;                  /* open containers */
} encoder;

/* The TypeError that makes a caller of the FastAPI modes fall back to
 * FastAPI's own path (it never reaches the app: the caller clears it). */
static int decline(const char *why)
{
    PyErr_Format(PyExc_TypeError, "json_dumps: %s", why);
    return -1;
}

static int encode_value(encoder *e, PyObject *obj, const frame *up);
static int too_deep_for_mode(const encoder *e);

/* Python exception for a writer error; returns -1. */
static int writer_error(int rc)
{
    if (rc == CEL_ENOMEM)
        PyErr_NoMemory();
    else
        PyErr_Format(PyExc_SystemError, "json writer: %s", cel_strerror(rc));
    return -1;
}

static int check(encoder *e, int rc)
{
    if (rc < 0)
        return writer_error(rc);
    e->surrogates += rc;
    return 0;
}

/* json's ValueError for NaN and infinities (3.12 added the value). */
static int out_of_range(PyObject *flt)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_Format(PyExc_ValueError,
                 "Out of range float values are not JSON compliant: %R", flt);
#else
    (void)flt;
    PyErr_SetString(PyExc_ValueError, "Out of range float values are not JSON compliant");
#endif
    return -1;
}

/* JSONEncoder.default's TypeError, naming o.__class__.__name__ as it does. */
static int not_serializable(PyObject *obj)
{
    PyObject *cls = PyObject_GetAttrString(obj, "__class__");
    if (!cls)
        return -1;
    PyObject *name = PyObject_GetAttrString(cls, "__name__");
    Py_DECREF(cls);
    if (!name)
        return -1;
    PyErr_Format(PyExc_TypeError, "Object of type %S is not JSON serializable", name);
    Py_DECREF(name);
    return -1;
}

/* A str as key or value: ASCII straight from its bytes, otherwise from its
 * code units (Latin-1/UCS-2/UCS-4) so no UTF-8 copy is cached on it. */
static int put_str(encoder *e, PyObject *s, int is_key)
{
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0)
        return -1;
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    const void *data = PyUnicode_DATA(s);
    int rc;
    if (PyUnicode_IS_ASCII(s))
        rc = is_key ? cel_json_key(&e->w, data, (size_t)n)
                    : cel_json_string(&e->w, data, (size_t)n);
    else
        rc = is_key ? cel_json_key_ucs(&e->w, data, (size_t)n, PyUnicode_KIND(s))
                    : cel_json_string_ucs(&e->w, data, (size_t)n, PyUnicode_KIND(s));
    return check(e, rc);
}

/* int(obj)'s decimal text as key or value: 64-bit values formatted here,
 * larger ones through int.__repr__ (which enforces sys.int_info's digit
 * limit exactly as json.dumps does). */
static int put_int(encoder *e, PyObject *obj, int is_key)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (!overflow) {
        if (!is_key)
            return check(e, cel_json_int64(&e->w, v));
        char tmp[24];
        int n = snprintf(tmp, sizeof(tmp), "%lld", v);
        return check(e, cel_json_key(&e->w, tmp, (size_t)n));
    }
    PyObject *text = PyLong_Type.tp_repr(obj);
    if (!text)
        return -1;
    Py_ssize_t n;
    const char *digits = PyUnicode_AsUTF8AndSize(text, &n);
    int rc = !digits ? -1
             : check(e, is_key ? cel_json_key(&e->w, digits, (size_t)n)
                               : cel_json_bigint(&e->w, digits, (size_t)n));
    Py_DECREF(text);
    return rc;
}

/* repr(float) as key or value; json's ValueError for NaN/Infinity. */
static int put_float(encoder *e, PyObject *obj, int is_key)
{
    double v = PyFloat_AS_DOUBLE(obj);
    if (!isfinite(v))
        return out_of_range(obj);
    char *text = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!text)
        return -1;
    size_t n = strlen(text);
    int rc = check(e, is_key ? cel_json_key(&e->w, text, n) : cel_json_raw(&e->w, text, n));
    PyMem_Free(text);
    return rc;
}

/* Called when Py_EnterRecursiveCall refused to open obj (RecursionError
 * set).  json.dumps would have met a cycle earlier and said so: a tree
 * cyclic below its top keeps repeating one container on the stack.  The
 * ValueError is raised once unwound: at the limit, creating it would itself
 * fail with a RecursionError (Python 3.12+). */
static int too_deep(encoder *e, PyObject *obj, const frame *up)
{
    for (; up; up = up->up) {
        if (up->obj == obj) {
            e->circular = 1;
            break;
        }
    }
    return -1;
}

/* A str key jsonable_encoder drops (SQLAlchemy's "_sa..." state)? */
static int is_sa_key(PyObject *k)
{
    return PyUnicode_GET_LENGTH(k) >= 3 && PyUnicode_READ_CHAR(k, 0) == '_'
           && PyUnicode_READ_CHAR(k, 1) == 's' && PyUnicode_READ_CHAR(k, 2) == 'a';
}

static int put_key(encoder *e, PyObject *key)
{
    PyTypeObject *tp = Py_TYPE(key);
    if ((e->flags & CELERIS_JSON_PLAIN) && too_deep_for_mode(e))
        return decline("deep tree");
    if (tp == &PyUnicode_Type) {
        if ((e->flags & CELERIS_JSON_FASTAPI) && is_sa_key(key))
            return decline("jsonable_encoder drops '_sa' keys");
        return put_str(e, key, 1);
    }
    if (e->flags & CELERIS_JSON_PLAIN)
        return decline("a key that is not a str");
    if (tp == &PyFloat_Type)
        return put_float(e, key, 1);
    if (key == Py_True)
        return check(e, cel_json_key(&e->w, "true", 4));
    if (key == Py_False)
        return check(e, cel_json_key(&e->w, "false", 5));
    if (key == Py_None)
        return check(e, cel_json_key(&e->w, "null", 4));
    if (tp == &PyLong_Type)
        return put_int(e, key, 1);
    PyErr_Format(PyExc_TypeError, "keys must be str, int, float, bool or None, not %.100s",
                 tp->tp_name);
    return -1;
}

/* Members are held by strong references while written: nothing here runs
 * Python code, but an allocation may run the garbage collector. */
static int put_dict(encoder *e, PyObject *dict, const frame *f)
{
    int rc = check(e, cel_json_begin_object(&e->w));
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (rc == 0 && PyDict_Next(dict, &pos, &key, &value)) {
        Py_INCREF(key);
        Py_INCREF(value);
        rc = put_key(e, key);
        if (rc == 0)
            rc = encode_value(e, value, f);
        Py_DECREF(key);
        Py_DECREF(value);
    }
    return rc ? rc : check(e, cel_json_end_object(&e->w));
}

static int put_list(encoder *e, PyObject *seq, const frame *f)
{
    int is_list = PyList_CheckExact(seq);
    int rc = check(e, cel_json_begin_array(&e->w));
    for (Py_ssize_t i = 0; rc == 0; i++) {
        if (i >= (is_list ? PyList_GET_SIZE(seq) : PyTuple_GET_SIZE(seq)))
            break;
        PyObject *item = is_list ? PyList_GET_ITEM(seq, i) : PyTuple_GET_ITEM(seq, i);
        Py_INCREF(item);
        rc = encode_value(e, item, f);
        Py_DECREF(item);
    }
    return rc ? rc : check(e, cel_json_end_array(&e->w));
}

/* A container, inside the same recursion guard json.dumps uses. */
static int put_container(encoder *e, PyObject *obj, const frame *up, int is_dict)
{
    if (Py_EnterRecursiveCall(" while encoding a JSON object"))
        return too_deep(e, obj, up);
    frame f = { obj, up };
    e->depth++;
    int rc = is_dict ? put_dict(e, obj, &f) : put_list(e, obj, &f);
    e->depth--;
    Py_LeaveRecursiveCall();
    return rc;
}

/* Write obj; 0 or -1 with an exception set. */
/* The FastAPI modes leave deep trees to FastAPI, as the tree walks they
 * replaced did: a value (or, for plain, a key) below more than 64 (plain)
 * or 200 (the "_sa" check) containers. */
static int too_deep_for_mode(const encoder *e)
{
    return e->flags && e->depth > ((e->flags & CELERIS_JSON_PLAIN) ? 64 : 200);
}

static int encode_value(encoder *e, PyObject *obj, const frame *up)
{
    if (too_deep_for_mode(e))
        return decline("deep tree");
    PyTypeObject *tp = Py_TYPE(obj);
    if (tp == &PyUnicode_Type)
        return put_str(e, obj, 0);
    if (tp == &PyLong_Type)
        return put_int(e, obj, 0);
    if (tp == &PyFloat_Type)
        return e->flags & CELERIS_JSON_PLAIN ? decline("a float") : put_float(e, obj, 0);
    if (obj == Py_None)
        return check(e, cel_json_null(&e->w));
    if (obj == Py_True || obj == Py_False)
        return check(e, cel_json_bool(&e->w, obj == Py_True));
    if (tp == &PyDict_Type)
        return put_container(e, obj, up, 1);
    if (tp == &PyList_Type || (tp == &PyTuple_Type && !(e->flags & CELERIS_JSON_PLAIN)))
        return put_container(e, obj, up, 0);
    return not_serializable(obj);
}

/* The UnicodeEncodeError json.dumps(...).encode("utf-8") raises: the text
 * is complete (json found nothing else wrong), so rebuild it as a str and
 * let the codec report its first run of surrogates. */
static void raise_surrogate_error(const cel_buf *out)
{
    PyObject *text = PyUnicode_DecodeUTF8(cel_buf_head(out), (Py_ssize_t)out->len,
                                          "surrogatepass");
    if (!text)
        return;
    PyObject *bytes = PyUnicode_AsUTF8String(text);
    Py_DECREF(text);
    if (bytes) {
        Py_DECREF(bytes);
        PyErr_SetString(PyExc_SystemError, "json_dumps: surrogate not reported by the codec");
    }
}

/* METH_O.  obj is borrowed; returns a new bytes object, or NULL with the
 * exception json.dumps(...).encode("utf-8") would raise. */
/* The output buffer, kept per thread between calls so that a response body
 * costs no malloc/free: emptied after each use, released when a large body
 * grew it past SCRATCH_KEEP, and freed when its thread exits (a pthread key
 * with a destructor).  A call made while the thread's buffer is in use
 * (re-entered from Python code run by an error path), or when there is no
 * such buffer, takes a buffer of its own. */
#define SCRATCH_KEEP (64 * 1024)
typedef struct scratch {
    cel_buf buf;
    int busy;
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_destroy(void *p)
{
    scratch *sc = p;
    cel_buf_free(&sc->buf);
    free(sc);
}

static void scratch_key_init(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0;
}

/* This thread's scratch, created on first use; NULL if none can be had. */
static scratch *scratch_get(void)
{
    pthread_once(&scratch_once, scratch_key_init);
    if (!scratch_key_ok)
        return NULL;
    scratch *sc = pthread_getspecific(scratch_key);
    if (!sc) {
        sc = calloc(1, sizeof *sc);
        if (sc && pthread_setspecific(scratch_key, sc) != 0) {
            free(sc);
            sc = NULL;
        }
    }
    return sc;
}

/* ---- small flat dicts ---- */

/* The text the small-dict path writes at most (a buffer on the C stack). */
#define SMALL_CAP 512

/* A str whose bytes go into JSON as they are: its ASCII data, else NULL. */
static const char *verbatim_str(PyObject *s, Py_ssize_t *n)
{
#if PY_VERSION_HEX < 0x030C0000
    if (!PyUnicode_IS_READY(s))
        return NULL;
#endif
    if (!PyUnicode_IS_ASCII(s))
        return NULL;
    *n = PyUnicode_GET_LENGTH(s);
    const char *data = PyUnicode_DATA(s);
    return cel_json_verbatim(data, (size_t)*n) ? data : NULL;
}

/* The JSON of obj into buf[0..SMALL_CAP) when obj is the common endpoint
 * result: an exact dict whose keys are str of ASCII needing no escape (none
 * starting with "_sa") and whose values are such str, exact int within 64
 * bits, True, False or None, the text fitting.  Returns its length, or -1
 * for anything else, nothing raised: the general encoder then answers (with
 * the error json.dumps would raise, if any).  For these dicts every mode
 * gives json.dumps's bytes, and what encode_value would write for them.
 * Nothing here runs Python code or allocates (so no garbage collection):
 * the dict cannot change while read and borrowed references suffice. */
static Py_ssize_t encode_small(PyObject *obj, char *buf)
{
    if (Py_TYPE(obj) != &PyDict_Type)
        return -1;
    /* the guard json.dumps puts around every container; at the limit, the
     * general encoder raises what json.dumps would */
    if (Py_EnterRecursiveCall(" while encoding a JSON object")) {
        PyErr_Clear();
        return -1;
    }
    char *o = buf, *end = buf + SMALL_CAP;
    Py_ssize_t pos = 0, kn, vn;
    PyObject *key, *value;
    *o++ = '{';
    /* exactly size members (the dict cannot change): no closing PyDict_Next */
    for (Py_ssize_t i = PyDict_GET_SIZE(obj); i > 0; i--) {
        if (!PyDict_Next(obj, &pos, &key, &value))
            goto decline;
        const char *k = Py_TYPE(key) == &PyUnicode_Type ? verbatim_str(key, &kn) : NULL;
        if (!k || (kn >= 3 && k[0] == '_' && k[1] == 's' && k[2] == 'a'))
            goto decline;
        /* room for ,"key": and the longest scalar, closing brace included */
        if ((size_t)(end - o) < (size_t)kn + 5 + CEL_JSON_INT64_MAX + 1)
            goto decline;
        if (o - buf > 1)
            *o++ = ',';
        *o++ = '"';
        cel_json_copy_short(o, k, (size_t)kn);
        o += kn;
        *o++ = '"';
        *o++ = ':';
        PyTypeObject *tp = Py_TYPE(value);
        if (tp == &PyUnicode_Type) {
            const char *v = verbatim_str(value, &vn);
            if (!v || (size_t)(end - o) < (size_t)vn + 3)
                goto decline;
            *o++ = '"';
            cel_json_copy_short(o, v, (size_t)vn);
            o += vn;
            *o++ = '"';
        } else if (tp == &PyLong_Type) {
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (overflow)
                goto decline;
            o += cel_json_format_int64(v, o);
        } else if (value == Py_None) {
            memcpy(o, "null", 4);
            o += 4;
        } else if (value == Py_True) {
            memcpy(o, "true", 4);
            o += 4;
        } else if (value == Py_False) {
            memcpy(o, "false", 5);
            o += 5;
        } else {
            goto decline;
        }
    }
    Py_LeaveRecursiveCall();
    *o++ = '}';
    return o - buf;
decline:
    Py_LeaveRecursiveCall();
    return -1;
}

/* _celeris._json_dumps_small(obj): test hook, the small-dict path alone --
 * its bytes, or None where it leaves obj to the general encoder. */
PyObject *celeris_json_dumps_small(PyObject *Py_UNUSED(module), PyObject *obj)
{
    char small[SMALL_CAP];
    Py_ssize_t n = encode_small(obj, small);
    if (n < 0)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(small, n);
}

PyObject *celeris_json_dumps(PyObject *Py_UNUSED(module), PyObject *obj)
{
    return celeris_json_dumps_mode(obj, 0);
}

/* The JSON of obj into `out` (0), or -1 with an error (celeris_json_dumps_mode's). */
static int encode_into(PyObject *obj, int flags, cel_buf *out)
{
    encoder e;
    int rc = -1;
    /* Depth is bounded by the interpreter's recursion limit, as in json. */
    cel_json_writer_init(&e.w, out, CEL_JSON_MAX_DEPTH);
    e.surrogates = 0;
    e.circular = 0;
    e.flags = flags;
    e.depth = 0;
    if (encode_value(&e, obj, NULL) < 0) {
        if (e.circular) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "Circular reference detected");
        }
    } else if (e.surrogates) {
        if (flags & CELERIS_JSON_PLAIN)
            decline("a lone surrogate");    /* pydantic refuses it */
        else
            raise_surrogate_error(out);
    } else {
        rc = 0;
    }
    cel_json_writer_free(&e.w);
    return rc;
}

/* The thread's scratch buffer when free (marked busy), else `local`. */
static cel_buf *take_buf(scratch **sc, cel_buf *local)
{
    *sc = scratch_get();
    if (*sc && !(*sc)->busy) {
        (*sc)->busy = 1;
        return &(*sc)->buf;
    }
    *sc = NULL;
    return local;
}

static void give_buf(scratch *sc, cel_buf *local)
{
    if (sc) {
        sc->busy = 0;
        if (sc->buf.cap > SCRATCH_KEEP)
            cel_buf_free(&sc->buf);
        else
            sc->buf.start = sc->buf.len = 0;
    } else {
        cel_buf_free(local);
    }
}

PyObject *celeris_json_dumps_mode(PyObject *obj, int flags)
{
    char small[SMALL_CAP];
    Py_ssize_t n = encode_small(obj, small);
    if (n >= 0)
        return PyBytes_FromStringAndSize(small, n);
    cel_buf local = { 0 };
    scratch *sc;
    cel_buf *out = take_buf(&sc, &local);
    PyObject *result = NULL;
    if (encode_into(obj, flags, out) == 0)
        result = PyBytes_FromStringAndSize(cel_buf_head(out), (Py_ssize_t)out->len);
    give_buf(sc, &local);
    return result;
}

int celeris_json_dumps_with(PyObject *obj, int flags,
                            int (*use)(void *ctx, const char *p, size_t n), void *ctx)
{
    char small[SMALL_CAP];
    Py_ssize_t n = encode_small(obj, small);
    if (n >= 0)
        return use(ctx, small, (size_t)n);
    cel_buf local = { 0 };
    scratch *sc;
    cel_buf *out = take_buf(&sc, &local);
    int rc = encode_into(obj, flags, out) == 0 ? use(ctx, cel_buf_head(out), out->len) : -2;
    give_buf(sc, &local);
    return rc;
}
