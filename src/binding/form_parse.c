/* _celeris.MultipartParser and _celeris.UrlencodedParser: the C form
 * parsers of src/core/multipart.c fed with request-body chunks from Python.
 *
 * celeris/native/forms.py drives them from request.stream() and builds the
 * FormData / UploadFile objects Starlette's MultiPartParser / FormParser
 * would; docs/multipart.md has the mapping.  Each feed() returns the
 * events of one chunk in a list, so Python runs once per chunk, not once per
 * event:
 *   (name, value)             a complete non-file part (both bytes);
 *   (name, filename, headers) a file part's head (bytes, bytes, list of
 *                             (lower-cased name, value) bytes pairs, as
 *                             Starlette's item_headers);
 *   bytes                     the next data of the current file part (all of
 *                             this chunk's data of that part, coalesced);
 *   int n                     with an fd (feed(chunk, fd), feed_from): n more
 *                             bytes of the current file part went to fd (see
 *                             mp_feed, mp_feed_from);
 *   None                      the current file part ended.
 * On a parse error feed() returns the error's Starlette message (a str)
 * instead of a list: Starlette discards everything of a failed parse.
 *
 * Ownership: each object owns its core parser (freed in dealloc) and two
 * PyMem buffers: `acc` (file data of the current feed when it arrives in
 * more than one slice) and `field` (the data of the current non-file part,
 * bounded by the parser's max_field_size).  No slice of the core outlives
 * the feed() call that produced it, except the one feed_from hands to the
 * spool writer: that one lives in `held`, input-buffer storage taken from
 * the connection (cel_conn_in_swap; core memory, freed with cel_buf_free in
 * dealloc, after the writer thread is joined).  The writer thread touches
 * no Python object and never takes the GIL. */
#include "binding.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "multipart.h"

typedef struct {
    char *p;
    size_t len, cap;
} membuf;

/* Append n bytes; 0 or -1 with MemoryError set.  b owns p (PyMem). */
static int membuf_add(membuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *p = PyMem_Realloc(b->p, cap);
        if (!p) {
            PyErr_NoMemory();
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static void membuf_free(membuf *b)
{
    PyMem_Free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Starlette's MultiPartException / FormParser message for a core error
 * (docs/multipart.md, "Limits and errors"); NULL for CEL_ENOMEM. */
static const char *form_error_message(int rc)
{
    switch (rc) {
    case CEL_EMPNONAME:
        return "The Content-Disposition header field \"name\" must be provided.";
    case CEL_EMPFILES:
        return "Too many files. Maximum number of files is 1000.";
    case CEL_EMPFIELDS:
        return "Too many fields. Maximum number of fields is 1000.";
    case CEL_EMPPARTSIZE:
        return "Part exceeded maximum size of 1024KB.";
    case CEL_EFORMFIELDSIZE:
        return "Field exceeded maximum size of 1024KB.";
    case CEL_ENOMEM:
        return NULL;
    default:
        return "Invalid multipart data.";
    }
}

/* New reference: the message str, or NULL with MemoryError for ENOMEM. */
static PyObject *form_error(int rc)
{
    const char *msg = form_error_message(rc);
    if (!msg)
        return PyErr_NoMemory();
    return PyUnicode_FromString(msg);
}

/* ---- multipart ---- */

typedef struct {
    PyObject_HEAD
    cel_multipart *mp;
    int in_file;            /* the current part has a filename */
    PyObject *name;         /* bytes: the current non-file part's name, or NULL */
    membuf field;           /* the current non-file part's data */
    membuf acc;             /* file data of this feed, when not one slice */
    /* The spool writer of feed_from (see "spool writer" below): a thread
     * that writes one slice at a time while the next chunk is received and
     * parsed.  All fields under mu once the thread runs. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    int w_state;            /* 0 no thread (mu/cv uninitialised), 1 running, -1 could not start */
    int w_stop;             /* the thread is to exit */
    int w_busy;             /* a write is in flight (w_fd, w_p, w_n) */
    int w_fd;
    const char *w_p;
    size_t w_n;
    int w_err;              /* errno of a failed write, raised by the next writer_wait */
    cel_buf held;           /* storage taken from the connection: the in-flight (or last) write's
                               bytes are in it; given back to the connection at the next hand-off */
} MultipartObject;

/* MultipartParser(boundary: bytes): a parser with Starlette's default
 * limits.  ValueError("Invalid multipart data.") when the boundary cannot
 * be one (over 256 bytes, CR/LF). */
static int mp_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    MultipartObject *o = (MultipartObject *)self;
    Py_buffer b;
    if (kwds && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "MultipartParser takes no keyword arguments");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "y*:MultipartParser", &b))
        return -1;
    if (o->mp) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_RuntimeError, "MultipartParser already initialised");
        return -1;
    }
    int rc = cel_mp_new(&o->mp, b.buf, (size_t)b.len, NULL);
    PyBuffer_Release(&b);
    if (rc == CEL_ENOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    if (rc < 0) {
        PyErr_SetString(PyExc_ValueError, form_error_message(rc));
        return -1;
    }
    return 0;
}

/* A slice's bytes for Py_BuildValue's "y#": never NULL ("y#" turns a NULL
 * pointer into None, and an empty slice may have one). */
#define SLICE_P(p) ((p) ? (p) : "")

/* Append item to list and drop our reference; -1 on error (item released). */
static int list_take(PyObject *list, PyObject *item)
{
    if (!item)
        return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
}

/* The file part's head as (name, filename, [(lname, value), ...]).  New
 * reference or NULL with an exception. */
static PyObject *file_head(const cel_mp_part *part)
{
    PyObject *headers = PyList_New((Py_ssize_t)part->nheaders);
    if (!headers)
        return NULL;
    for (size_t i = 0; i < part->nheaders; i++) {
        const cel_header *h = &part->headers[i];
        PyObject *n = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)h->name.len);
        if (!n)
            goto error;
        char *d = PyBytes_AS_STRING(n);
        for (size_t k = 0; k < h->name.len; k++) {
            char c = h->name.p[k];
            d[k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        PyObject *pair = Py_BuildValue("(Ny#)", n, SLICE_P(h->value.p), (Py_ssize_t)h->value.len);
        if (!pair)
            goto error;
        PyList_SET_ITEM(headers, (Py_ssize_t)i, pair);
    }
    return Py_BuildValue("(y#y#N)", SLICE_P(part->name.p), (Py_ssize_t)part->name.len,
                         SLICE_P(part->filename.p), (Py_ssize_t)part->filename.len, headers);
error:
    Py_DECREF(headers);
    return NULL;
}

/* write(2) all of p[0..n) to fd, retrying partial writes and EINTR: 0, or
 * the errno of the failed write.  No GIL needed (the writer thread's too). */
static int write_fully(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write p[0..n) to fd at its offset, all of it (partial writes and EINTR
 * retried), the GIL released meanwhile.  0, or -1 with OSError set from
 * errno (what the spool file's own write would raise). */
static int write_all(int fd, const char *p, size_t n)
{
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = write_fully(fd, p, n);
    Py_END_ALLOW_THREADS
    if (err) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* ---- spool writer ----
 *
 * feed_from's file data is written by a thread of the parser's own while
 * the event loop receives and parses the next chunk: the slice stays where
 * the connection received it, and the connection gets other storage to read
 * into (cel_conn_in_swap with `held`; two buffers alternate).  One write at
 * a time, in order: every other write of the parser (writer_write) first
 * waits for it, and so must the caller before it closes the spool file
 * (MultipartParser.wait(); dealloc joins the thread).  A failed write is
 * raised as OSError by the next wait. */

static void *writer_main(void *arg)
{
    MultipartObject *o = arg;
    pthread_mutex_lock(&o->mu);
    for (;;) {
        while (!o->w_busy && !o->w_stop)
            pthread_cond_wait(&o->cv, &o->mu);
        if (!o->w_busy)
            break;
        int fd = o->w_fd;
        const char *p = o->w_p;
        size_t n = o->w_n;
        pthread_mutex_unlock(&o->mu);
        int err = write_fully(fd, p, n);
        pthread_mutex_lock(&o->mu);
        if (err && !o->w_err)
            o->w_err = err;
        o->w_busy = 0;
        pthread_cond_broadcast(&o->cv);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

/* Spool-writer threads alive in the process (only changed with the GIL
 * held): past WRITERS_MAX concurrent uploads the further ones write from
 * the event loop's thread, as feed() does. */
#define WRITERS_MAX 16
static int writers_live;

/* Start the thread if it is not running: 0, or -1 when it cannot be (no
 * exception; the caller writes itself). */
static int writer_start(MultipartObject *o)
{
    if (o->w_state)
        return o->w_state > 0 ? 0 : -1;
    if (writers_live >= WRITERS_MAX)
        return -1;          /* (tried again at the next hand-off) */
    o->w_state = -1;
    if (pthread_mutex_init(&o->mu, NULL) != 0)
        return -1;
    if (pthread_cond_init(&o->cv, NULL) != 0) {
        pthread_mutex_destroy(&o->mu);
        return -1;
    }
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        size_t stack = 64 * 1024;       /* writer_main needs next to none */
        if (stack < (size_t)PTHREAD_STACK_MIN)
            stack = (size_t)PTHREAD_STACK_MIN;
        (void)pthread_attr_setstacksize(&attr, stack);
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);   /* signals stay with the other threads */
        rc = pthread_create(&o->th, &attr, writer_main, o);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        pthread_cond_destroy(&o->cv);
        pthread_mutex_destroy(&o->mu);
        return -1;
    }
    o->w_state = 1;
    writers_live++;
    return 0;
}

/* Wait until no write is in flight (the GIL released meanwhile).  0, or -1
 * with OSError for a write that failed. */
static int writer_wait(MultipartObject *o)
{
    if (o->w_state <= 0)
        return 0;
    int err;
    pthread_mutex_lock(&o->mu);
    if (!o->w_busy) {               /* idle: no need to let go of the GIL */
        err = o->w_err;
        o->w_err = 0;
        pthread_mutex_unlock(&o->mu);
        goto done;
    }
    pthread_mutex_unlock(&o->mu);
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&o->mu);
    while (o->w_busy)
        pthread_cond_wait(&o->cv, &o->mu);
    err = o->w_err;
    o->w_err = 0;
    pthread_mutex_unlock(&o->mu);
    Py_END_ALLOW_THREADS
done:
    if (err) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Queue p[0..n) for fd (the writer idle, started, p inside `held`). */
static void writer_hand(MultipartObject *o, int fd, const char *p, size_t n)
{
    pthread_mutex_lock(&o->mu);
    o->w_fd = fd;
    o->w_p = p;
    o->w_n = n;
    o->w_busy = 1;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

/* Stop and join the thread (dealloc; it never takes the GIL). */
static void writer_stop(MultipartObject *o)
{
    if (o->w_state > 0) {
        pthread_mutex_lock(&o->mu);
        o->w_stop = 1;
        pthread_cond_broadcast(&o->cv);
        pthread_mutex_unlock(&o->mu);
        pthread_join(o->th, NULL);
        pthread_cond_destroy(&o->cv);
        pthread_mutex_destroy(&o->mu);
        writers_live--;
    }
    o->w_state = 0;
    cel_buf_free(&o->held);
}

/* Write p[0..n) to fd from this thread, after any write in flight: 0, or
 * -1 with OSError. */
static int writer_write(MultipartObject *o, int fd, const char *p, size_t n)
{
    if (writer_wait(o) < 0)
        return -1;
    return write_all(fd, p, n);
}

/* Emit the file data gathered so far in this feed: the single pending slice
 * (*one) or the accumulated bytes.  With fd >= 0 the data goes to fd and is
 * emitted as its length (an int): written here (after any write in flight),
 * or, when pend is not NULL and the data is the slice *one, left in *pend
 * for the caller to write (feed_from's hand-off to the spool writer).
 * Without fd it is emitted as bytes, where chunk (borrowed) is the fed
 * object when it is exactly bytes, else NULL: a slice that is all of it is
 * emitted as the chunk itself.  0 or -1 with an exception. */
static int flush_data(MultipartObject *o, PyObject *out, cel_slice *one, PyObject *chunk, int fd,
                      cel_slice *pend)
{
    PyObject *b = NULL;
    const char *p = o->acc.len ? o->acc.p : one->p;
    size_t n = o->acc.len ? o->acc.len : one->len;
    if (!p)
        return 0;
    if (fd >= 0) {
        if (pend && !o->acc.len) {
            *pend = *one;
        } else if (writer_write(o, fd, p, n) < 0) {
            o->acc.len = 0;
            one->p = NULL;
            return -1;
        }
        o->acc.len = 0;
        one->p = NULL;
        one->len = 0;
        return list_take(out, PyLong_FromSize_t(n));
    }
    if (o->acc.len) {
        b = PyBytes_FromStringAndSize(o->acc.p, (Py_ssize_t)o->acc.len);
        o->acc.len = 0;
    } else if (chunk && one->p == PyBytes_AS_STRING(chunk)
               && (Py_ssize_t)one->len == PyBytes_GET_SIZE(chunk)) {
        b = Py_NewRef(chunk);       /* the whole chunk is this part's data: no copy */
    } else {
        b = PyBytes_FromStringAndSize(one->p, (Py_ssize_t)one->len);
    }
    one->p = NULL;
    one->len = 0;
    return list_take(out, b);
}

/* One feed's state: the events list being built and where file data goes. */
typedef struct {
    MultipartObject *o;
    PyObject *out;          /* owned by the caller: the events list */
    int fd;                 /* the current file part's spool descriptor, or -1 */
    int error;              /* a parse error (core code) stopped the feed, or 0 */
    int direct;             /* feed_from: the last slice's file data may be left in pend */
    cel_slice pend;         /* feed_from: file data for pend_fd not written yet (into the slice) */
    int pend_fd;
} feed_ctx;

/* Parse buf[0..len) into x->out (see mp_feed).  whole (borrowed) is the fed
 * bytes object when buf is all of it, else NULL.  Data slices into buf are
 * emitted (or written to x->fd) before returning, so buf need not outlive
 * the call.  0; or -1 with x->error set (a parse error, no exception) or
 * with an exception. */
static int feed_buf(feed_ctx *x, const char *buf, size_t len, PyObject *whole)
{
    MultipartObject *o = x->o;
    PyObject *out = x->out;
    size_t off = 0;
    /* file data of this feed: one slice into buf kept uncopied, else acc */
    cel_slice one = {NULL, 0};
    for (;;) {
        size_t used = 0;
        cel_mp_event ev;
        int rc = cel_mp_parse(o->mp, buf + off, len - off, &used, &ev);
        off += used;
        if (rc == CEL_EAGAIN)
            break;
        if (rc < 0) {
            x->error = rc;
            goto fail;
        }
        switch (rc) {
        case CEL_MP_PART:
            o->in_file = ev.part.has_filename;
            Py_CLEAR(o->name);
            o->field.len = 0;
            if (o->in_file) {
                if (list_take(out, file_head(&ev.part)) < 0)
                    goto fail;
            } else {
                o->name = PyBytes_FromStringAndSize(SLICE_P(ev.part.name.p), (Py_ssize_t)ev.part.name.len);
                if (!o->name)
                    goto fail;
            }
            break;
        case CEL_MP_DATA:
            if (!o->in_file) {
                if (membuf_add(&o->field, ev.data.p, ev.data.len) < 0)
                    goto fail;
            } else if (!one.p && !o->acc.len && (uintptr_t)ev.data.p >= (uintptr_t)buf
                       && (uintptr_t)(ev.data.p + ev.data.len) <= (uintptr_t)(buf + len)) {
                one = ev.data;
            } else {
                if (one.p) {
                    if (membuf_add(&o->acc, one.p, one.len) < 0)
                        goto fail;
                    one.p = NULL;
                }
                if (membuf_add(&o->acc, ev.data.p, ev.data.len) < 0)
                    goto fail;
            }
            break;
        case CEL_MP_PART_END:
            if (o->in_file) {
                /* the part's writes done before the caller sees its end (and
                 * rewinds the file), also when this feed has no data for it */
                if (writer_wait(o) < 0 || flush_data(o, out, &one, whole, x->fd, NULL) < 0)
                    goto fail;
                x->fd = -1;     /* the next part starts in memory */
                Py_INCREF(Py_None);
                if (list_take(out, Py_None) < 0)
                    goto fail;
            } else {
                PyObject *item = Py_BuildValue("(Oy#)", o->name, SLICE_P(o->field.p), (Py_ssize_t)o->field.len);
                if (list_take(out, item) < 0)
                    goto fail;
                Py_CLEAR(o->name);
                o->field.len = 0;
                if (o->field.cap > 65536)
                    membuf_free(&o->field);
            }
            o->in_file = 0;
            break;
        default:    /* CEL_MP_END: the rest is epilogue */
            break;
        }
    }
    if (o->in_file && flush_data(o, out, &one, whole, x->fd, x->direct ? &x->pend : NULL) < 0)
        goto fail;
    if (x->pend.p)
        x->pend_fd = x->fd;
    return 0;
fail:
    o->acc.len = 0;
    return -1;
}

/* The fd argument of feed / feed_from: -1 for a negative one.  0 or -1 with
 * an exception (also when fd >= 0 and no file part is in progress). */
static int fd_arg(MultipartObject *o, PyObject *arg, int *fd)
{
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "fd out of range");
        return -1;
    }
    *fd = v < 0 ? -1 : (int)v;
    if (*fd >= 0 && !o->in_file) {
        PyErr_SetString(PyExc_ValueError, "MultipartParser: an fd given with no file part in progress");
        return -1;
    }
    return 0;
}

/* feed(chunk: bytes, fd: int = -1) -> list of events (see the file
 * comment), or the Starlette message (str) of a parse error.  b"" may be fed
 * (pending events).
 *
 * With fd >= 0 the data of the file part in progress when feed is called
 * (the caller's spool file, rolled over to disk, flushed, fd at its end) is
 * written to fd from here, one write per feed, and reported as an int
 * event; data of parts that begin in this chunk is returned as bytes as
 * without fd.  A failed write raises OSError (the parser's position is then
 * unspecified: the caller abandons the parse).
 *
 * New reference or NULL with an exception. */
static PyObject *mp_feed(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    MultipartObject *o = (MultipartObject *)self;
    if (!o->mp) {
        PyErr_SetString(PyExc_RuntimeError, "MultipartParser not initialised");
        return NULL;
    }
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "feed(chunk, fd=-1)");
        return NULL;
    }
    feed_ctx x = {o, NULL, -1, 0, 0, {NULL, 0}, -1};
    if (nargs == 2 && fd_arg(o, args[1], &x.fd) < 0)
        return NULL;
    Py_buffer b;
    if (PyObject_GetBuffer(args[0], &b, PyBUF_SIMPLE) < 0)
        return NULL;
    x.out = PyList_New(0);
    if (x.out && feed_buf(&x, b.buf, (size_t)b.len, PyBytes_CheckExact(args[0]) ? args[0] : NULL) < 0) {
        Py_CLEAR(x.out);
        if (x.error)
            x.out = form_error(x.error);
    }
    PyBuffer_Release(&b);
    return x.out;
}

/* celeris_cycle_body_feed's callback: file data left pending by the
 * previous slice is written first (only the last slice's may be handed
 * off). */
static int feed_slice(void *ud, const char *p, size_t n)
{
    feed_ctx *x = ud;
    if (x->pend.p) {
        cel_slice d = x->pend;
        x->pend.p = NULL;
        if (writer_write(x->o, x->pend_fd, d.p, d.len) < 0)
            return -1;
    }
    return feed_buf(x, p, n, NULL);
}

/* feed_from(cycle, fd: int) -> (events, state): feed() with the request-body
 * bytes buffered now on a native-tier Cycle (the receive() of the request),
 * read from the connection's buffer without a bytes object or a receive()
 * round trip (celeris_cycle_body_feed).  events as feed() returns them
 * (list, or the error message str: then state is 2 and the feed stopped
 * there); state: 0 the body is complete (as a more_body=False message), 1
 * more to come (await cycle.body_wait(), then call again), 2 nothing this
 * way: call receive() for what happened (client gone, framing error, ...).
 * New reference or NULL with an exception (OSError of a failed write; bytes
 * already fed are consumed). */
static PyObject *mp_feed_from(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    MultipartObject *o = (MultipartObject *)self;
    if (!o->mp) {
        PyErr_SetString(PyExc_RuntimeError, "MultipartParser not initialised");
        return NULL;
    }
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "feed_from(cycle, fd)");
        return NULL;
    }
    celeris_state *st = PyType_GetModuleState(Py_TYPE(self));
    if (!st)
        return NULL;
    if (!PyObject_TypeCheck(args[0], st->Cycle_Type)) {
        PyErr_SetString(PyExc_TypeError, "feed_from: a Cycle is required");
        return NULL;
    }
    feed_ctx x = {o, NULL, -1, 0, 1, {NULL, 0}, -1};
    if (fd_arg(o, args[1], &x.fd) < 0)
        return NULL;
    x.out = PyList_New(0);
    if (!x.out)
        return NULL;
    CycleObject *cy = (CycleObject *)args[0];
    int state = celeris_cycle_body_feed(cy, feed_slice, &x);
    if (x.pend.p && (state == 0 || state == 1) && cy->conn) {
        /* The last slice's file data: to the spool writer, the connection
         * reading on into other storage; else written here. */
        if (writer_wait(o) < 0) {
            state = -1;
        } else if (cel_conn_in_swap(cy->conn, &o->held) == 0 && writer_start(o) == 0) {
            writer_hand(o, x.pend_fd, x.pend.p, x.pend.len);
        } else if (write_all(x.pend_fd, x.pend.p, x.pend.len) < 0) {
            state = -1;
        }
    }
    /* (Left pending after a failure (state 2 or -1: the slice may be gone
     * with the connection): dropped -- the parse is abandoned and the
     * caller closes the spool file without reading it.) */
    if (state < 0) {
        Py_CLEAR(x.out);
        if (!x.error)
            return NULL;
        x.out = form_error(x.error);
        if (!x.out)
            return NULL;
        state = 2;
    }
    return Py_BuildValue("(Ni)", x.out, state);
}

/* wait() -> None: no write of feed_from's is in flight any more (before
 * the caller closes a spool file); OSError for one that failed. */
static PyObject *mp_wait(PyObject *self, PyObject *Py_UNUSED(a))
{
    if (writer_wait((MultipartObject *)self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static void mp_dealloc(PyObject *self)
{
    MultipartObject *o = (MultipartObject *)self;
    PyTypeObject *tp = Py_TYPE(self);
    writer_stop(o);
    cel_mp_free(o->mp);
    Py_CLEAR(o->name);
    membuf_free(&o->field);
    membuf_free(&o->acc);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* content_type(value: bytes) -> (media_type, boundary, charset): python-
 * multipart's parse_options_header(value) as Starlette reads it (media type
 * lower-cased; the boundary and charset params as bytes, None when absent). */
static PyObject *mp_content_type(PyObject *cls, PyObject *arg)
{
    (void)cls;
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    size_t n = (size_t)b.len;
    PyObject *res = NULL, *vals[2] = {NULL, NULL};
    char *tmp = PyMem_Malloc(n ? n : 1);
    if (!tmp) {
        PyErr_NoMemory();
        goto done;
    }
    static const char *const keys[2] = {"boundary", "charset"};
    for (int i = 0; i < 2; i++) {
        size_t vlen = 0;
        int rc = cel_mp_param(b.buf, n, keys[i], strlen(keys[i]), tmp, n, &vlen);
        if (rc < 0) {
            PyErr_SetString(PyExc_ValueError, "Content-Type parameter too long");
            goto done;
        }
        if (rc == 1) {
            vals[i] = PyBytes_FromStringAndSize(tmp, (Py_ssize_t)vlen);
            if (!vals[i])
                goto done;
        } else {
            vals[i] = Py_NewRef(Py_None);
        }
    }
    size_t tlen = cel_mp_media_type(b.buf, n, tmp);
    res = Py_BuildValue("(y#OO)", tmp, (Py_ssize_t)tlen, vals[0], vals[1]);  /* tmp not NULL */
done:
    Py_XDECREF(vals[0]);
    Py_XDECREF(vals[1]);
    PyMem_Free(tmp);
    PyBuffer_Release(&b);
    return res;
}

static PyMethodDef mp_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))mp_feed, METH_FASTCALL,
     "feed(chunk, fd=-1) -> list of events, or the error message (str)."},
    {"wait", mp_wait, METH_NOARGS, "wait() -> None: feed_from's spool writes are done (OSError if one failed)."},
    {"feed_from", (PyCFunction)(void (*)(void))mp_feed_from, METH_FASTCALL,
     "feed_from(cycle, fd) -> (events or error message, state): feed the body bytes buffered on a Cycle."},
    {"content_type", mp_content_type, METH_O | METH_STATIC,
     "content_type(value: bytes) -> (media_type, boundary or None, charset or None)."},
    {NULL, NULL, 0, NULL}
};

static PyType_Slot mp_slots[] = {
    {Py_tp_init, mp_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, mp_dealloc},
    {Py_tp_methods, mp_methods},
    {Py_tp_doc, "Streaming multipart/form-data parser (src/core/multipart.c)."},
    {0, NULL}
};

static PyType_Spec mp_spec = {
    .name = "celeris._celeris.MultipartParser",
    .basicsize = sizeof(MultipartObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = mp_slots,
};

/* ---- application/x-www-form-urlencoded ---- */

typedef struct {
    PyObject_HEAD
    cel_form *f;
} UrlencodedObject;

/* UrlencodedParser(): a decoder with Starlette's default limits. */
static int ue_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    UrlencodedObject *o = (UrlencodedObject *)self;
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "UrlencodedParser takes no arguments");
        return -1;
    }
    if (o->f)
        return 0;
    o->f = cel_form_new(NULL);
    if (!o->f) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Append (name, value) as str to out: 0 or -1 with an exception.  The core
 * writes valid UTF-8 (cel_url_unquote_py). */
static int field_pair(PyObject *out, const cel_form_field *fld)
{
    PyObject *item = Py_BuildValue("(s#s#)", SLICE_P(fld->name.p), (Py_ssize_t)fld->name.len,
                                   SLICE_P(fld->value.p), (Py_ssize_t)fld->value.len);
    return list_take(out, item);
}

/* feed(chunk: bytes) -> list of (name, value) str pairs, or the Starlette
 * message (str) of a limit error.  feed(None) ends the body (the last
 * field).  New reference or NULL with an exception. */
static PyObject *ue_feed(PyObject *self, PyObject *arg)
{
    UrlencodedObject *o = (UrlencodedObject *)self;
    if (!o->f) {
        PyErr_SetString(PyExc_RuntimeError, "UrlencodedParser not initialised");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (!out)
        return NULL;
    cel_form_field fld;
    int rc;
    if (arg == Py_None) {
        rc = cel_form_finish(o->f, &fld);
        if (rc == 1 && field_pair(out, &fld) < 0)
            goto fail;
        if (rc < 0) {
            Py_DECREF(out);
            return form_error(rc);
        }
        return out;
    }
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        goto fail;
    size_t off = 0, len = (size_t)b.len;
    for (;;) {
        size_t used = 0;
        rc = cel_form_parse(o->f, (const char *)b.buf + off, len - off, &used, &fld);
        off += used;
        if (rc != 1)
            break;
        if (field_pair(out, &fld) < 0) {
            PyBuffer_Release(&b);
            goto fail;
        }
    }
    PyBuffer_Release(&b);
    if (rc != CEL_EAGAIN) {
        Py_DECREF(out);
        return form_error(rc);
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static void ue_dealloc(PyObject *self)
{
    UrlencodedObject *o = (UrlencodedObject *)self;
    PyTypeObject *tp = Py_TYPE(self);
    cel_form_free(o->f);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef ue_methods[] = {
    {"feed", ue_feed, METH_O,
     "feed(chunk or None at the end) -> list of (name, value), or the error message (str)."},
    {NULL, NULL, 0, NULL}
};

static PyType_Slot ue_slots[] = {
    {Py_tp_init, ue_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, ue_dealloc},
    {Py_tp_methods, ue_methods},
    {Py_tp_doc, "application/x-www-form-urlencoded decoder (src/core/multipart.c)."},
    {0, NULL}
};

static PyType_Spec ue_spec = {
    .name = "celeris._celeris.UrlencodedParser",
    .basicsize = sizeof(UrlencodedObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ue_slots,
};

int celeris_form_add_types(PyObject *m)
{
    PyObject *t = PyType_FromModuleAndSpec(m, &mp_spec, NULL);
    if (!t || PyModule_AddObjectRef(m, "MultipartParser", t) < 0) {
        Py_XDECREF(t);
        return -1;
    }
    Py_DECREF(t);
    t = PyType_FromModuleAndSpec(m, &ue_spec, NULL);
    if (!t || PyModule_AddObjectRef(m, "UrlencodedParser", t) < 0) {
        Py_XDECREF(t);
        return -1;
    }
    Py_DECREF(t);
    return 0;
}
