/* _celeris.ThreadPool: runs `def` endpoints and dependencies off the loop.
 *
 * What FastAPI does with anyio.to_thread.run_sync (Starlette's
 * run_in_threadpool), with less handing-over of the GIL:
 *   - submit(func, kwargs) copies the caller's contextvars Context, queues the
 *     job and returns an asyncio Future of the loop;
 *   - worker threads (at most `max_threads`, started on demand, kept) take
 *     jobs from a shared queue; a worker that finishes a job takes the next
 *     queued one while it still holds the GIL, so a burst of short calls
 *     costs one GIL hand-over, not one per call;
 *   - finished jobs go on a done list; the first one onto an empty list
 *     writes the eventfd the loop watches (add_reader), and drain() on the
 *     loop thread resolves every finished job's Future at once.
 * A Future cancelled meanwhile is left alone (the call still ran to its end,
 * as anyio's run_sync without abandon_on_cancel).
 *
 * Ownership: the pool core (struct pool_core, C heap) is shared by the Python
 * object and each worker thread and freed by the last of them (refcount under
 * the mutex).  A job owns strong references to func, kwargs, ctx, fut and its
 * outcome; they are released with the GIL held, by drain() or shutdown() on
 * the loop thread, or by a worker that finds the pool shut down. */
#include "binding.h"

#include <errno.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct job {
    struct job *next;
    PyObject *func, *kwargs, *ctx, *fut;
    PyObject *result;       /* set by the worker: return value, or NULL ... */
    PyObject *exc;          /* ... and the exception raised */
} job;

typedef struct pool_core {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *q_head, *q_tail;       /* submitted, not taken */
    job *d_head, *d_tail;       /* finished, not drained */
    int efd;                    /* eventfd: done list became non-empty */
    int threads, idle, max_threads;
    int waking;                 /* a worker was woken/started and has not looked at the queue */
    int refs;                   /* the Python object + each running worker */
    int shutdown;
} pool_core;

typedef struct {
    PyObject_HEAD
    pool_core *core;
    PyObject *create_future;    /* loop.create_future */
    Py_ssize_t unsettled;       /* submitted, Future not yet settled by drain() (loop thread) */
} PoolObject;

/* Release a job's references and free it.  Needs the GIL. */
static void job_free(job *j)
{
    Py_XDECREF(j->func);
    Py_XDECREF(j->kwargs);
    Py_XDECREF(j->ctx);
    Py_XDECREF(j->fut);
    Py_XDECREF(j->result);
    Py_XDECREF(j->exc);
    PyMem_RawFree(j);
}

/* Drop one reference to the core; the last one frees it.  Called with the
 * mutex NOT held. */
static void core_unref(pool_core *p)
{
    pthread_mutex_lock(&p->mu);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (last) {
        close(p->efd);
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        PyMem_RawFree(p);
    }
}

/* Run one job in the worker (GIL held): func(**kwargs) inside the job's
 * context; the outcome is stored in the job. */
static void run_job(job *j)
{
    if (PyContext_Enter(j->ctx) < 0) {
        j->exc = PyErr_GetRaisedException_compat();
        return;
    }
    PyObject *empty = PyTuple_New(0);
    j->result = empty ? PyObject_Call(j->func, empty, j->kwargs) : NULL;
    Py_XDECREF(empty);
    if (!j->result)
        j->exc = PyErr_GetRaisedException_compat();
    if (PyContext_Exit(j->ctx) < 0)
        PyErr_Clear();
}

static void kick_locked(pool_core *p);

static void *worker_main(void *arg)
{
    pool_core *p = arg;
    PyGILState_STATE g = PyGILState_Ensure();
    int fresh = 1;      /* just started or woken: the pool counts us as on the way */
    for (;;) {
        job *j = NULL;
        /* First try without giving up the GIL: a queued job runs now. */
        pthread_mutex_lock(&p->mu);
        if (fresh) {
            p->waking = 0;
            fresh = 0;
        }
        if (!p->shutdown && p->q_head) {
            j = p->q_head;
            if (!(p->q_head = j->next))
                p->q_tail = NULL;
            kick_locked(p);
        }
        pthread_mutex_unlock(&p->mu);
        if (!j) {
            Py_BEGIN_ALLOW_THREADS
            pthread_mutex_lock(&p->mu);
            p->idle++;
            while (!p->shutdown && !p->q_head) {
                pthread_cond_wait(&p->cv, &p->mu);
                p->waking = 0;  /* woken: even if another worker took the job first */
            }
            p->idle--;
            if (!p->shutdown) {
                j = p->q_head;
                if (!(p->q_head = j->next))
                    p->q_tail = NULL;
                kick_locked(p);
            }
            pthread_mutex_unlock(&p->mu);
            Py_END_ALLOW_THREADS
        }
        if (!j)
            break;
        run_job(j);
        j->next = NULL;
        pthread_mutex_lock(&p->mu);
        int dropped = p->shutdown, wake = 0;
        if (!dropped) {
            wake = p->d_head == NULL;
            if (p->d_tail)
                p->d_tail->next = j;
            else
                p->d_head = j;
            p->d_tail = j;
        }
        pthread_mutex_unlock(&p->mu);
        if (dropped)
            job_free(j);
        else if (wake) {
            uint64_t one = 1;
            ssize_t n;
            do
                n = write(p->efd, &one, sizeof one);
            while (n < 0 && errno == EINTR);
        }
    }
    pthread_mutex_lock(&p->mu);
    p->threads--;
    pthread_mutex_unlock(&p->mu);
    PyGILState_Release(g);
    core_unref(p);
    return NULL;
}

/* Start one more worker (mutex held by the caller).  0, or -1 (no thread). */
static int spawn_locked(pool_core *p)
{
    pthread_t t;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    p->refs++;
    p->threads++;
    int rc = pthread_create(&t, &attr, worker_main, p);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        p->refs--;
        p->threads--;
        return -1;
    }
    return 0;
}

/* Jobs are queued: get one more worker on its way unless one already is
 * (mutex held).  A worker taking a job calls this again, so wake-ups chain
 * while the queue lasts, one at a time: a worker that holds the GIL goes on
 * through the queue itself, and a call that blocks (sleep, I/O) lets the
 * woken worker take the next job meanwhile. */
static void kick_locked(pool_core *p)
{
    if (!p->q_head || p->waking || p->shutdown)
        return;
    if (p->idle > 0) {
        p->waking = 1;
        pthread_cond_signal(&p->cv);
    } else if (p->threads < p->max_threads && spawn_locked(p) == 0) {
        p->waking = 1;
    }
}

/* ThreadPool(loop, max_threads) */
static PyObject *pool_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"loop", "max_threads", NULL};
    PyObject *loop;
    int max_threads = 40;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|i", kwlist, &loop, &max_threads))
        return NULL;
    if (max_threads < 1) {
        PyErr_SetString(PyExc_ValueError, "max_threads must be >= 1");
        return NULL;
    }
    PoolObject *self = (PoolObject *)tp->tp_alloc(tp, 0);
    if (!self)
        return NULL;
    if (!(self->create_future = PyObject_GetAttrString(loop, "create_future"))) {
        Py_DECREF(self);
        return NULL;
    }
    pool_core *p = PyMem_RawCalloc(1, sizeof *p);
    if (!p) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        PyMem_RawFree(p);
        Py_DECREF(self);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->max_threads = max_threads;
    p->refs = 1;
    self->core = p;
    return (PyObject *)self;
}

/* submit(func, kwargs) -> Future resolved with func(**kwargs), run in a
 * worker thread inside a copy of the current contextvars Context. */
static PyObject *pool_submit(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    PoolObject *self = (PoolObject *)op;
    pool_core *p = self->core;
    if (nargs != 2 || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "submit(func, kwargs: dict)");
        return NULL;
    }
    if (!p || p->shutdown) {
        PyErr_SetString(PyExc_RuntimeError, "thread pool is shut down");
        return NULL;
    }
    job *j = PyMem_RawCalloc(1, sizeof *j);
    if (!j)
        return PyErr_NoMemory();
    j->func = Py_NewRef(args[0]);
    j->kwargs = Py_NewRef(args[1]);
    if (!(j->ctx = PyContext_CopyCurrent()) || !(j->fut = PyObject_CallNoArgs(self->create_future))) {
        job_free(j);
        return NULL;
    }
    PyObject *fut = Py_NewRef(j->fut);
    pthread_mutex_lock(&p->mu);
    if (p->q_tail)
        p->q_tail->next = j;
    else
        p->q_head = j;
    p->q_tail = j;
    kick_locked(p);
    int spawn_failed = p->threads == 0;
    if (spawn_failed)   /* no worker at all: take the job back */
        p->q_head = p->q_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    if (spawn_failed) {
        job_free(j);
        Py_DECREF(fut);
        PyErr_SetString(PyExc_RuntimeError, "cannot start a worker thread");
        return NULL;
    }
    self->unsettled++;
    return fut;
}

/* Resolve one finished job's Future (loop thread, GIL held); consumes j. */
static void settle(celeris_state *st, job *j)
{
    PyObject *done = PyObject_CallMethodNoArgs(j->fut, st->s_done);
    int skip = done != Py_False;    /* cancelled meanwhile (or error): leave it */
    Py_XDECREF(done);
    PyErr_Clear();
    if (!skip) {
        /* (not CallMethod "O": a tuple result would become the argument list) */
        PyObject *r = PyObject_CallMethodOneArg(j->fut, j->exc ? st->s_set_exception : st->s_set_result,
                                                j->exc ? j->exc : j->result);
        if (!r)
            PyErr_WriteUnraisable(j->fut);
        Py_XDECREF(r);
    }
    job_free(j);
}

/* drain(): the loop's reader callback for fileno(); resolves the Future of
 * every finished job. */
static PyObject *pool_drain(PyObject *op, PyObject *Py_UNUSED(a))
{
    pool_core *p = ((PoolObject *)op)->core;
    if (!p)
        Py_RETURN_NONE;
    uint64_t v;
    while (read(p->efd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&p->mu);
    job *j = p->d_head;
    p->d_head = p->d_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    celeris_state *st = celeris_get_state_from_type(Py_TYPE(op));
    while (j) {
        job *next = j->next;
        ((PoolObject *)op)->unsettled--;
        settle(st, j);
        j = next;
    }
    Py_RETURN_NONE;
}

/* Stop taking jobs: queued and finished-but-undrained jobs have their Future
 * cancelled; workers exit after their current call.  Idempotent. */
static void pool_shutdown_core(PoolObject *self)
{
    pool_core *p = self->core;
    if (!p)
        return;
    self->core = NULL;
    pthread_mutex_lock(&p->mu);
    p->shutdown = 1;
    job *q = p->q_head, *d = p->d_head;
    p->q_head = p->q_tail = p->d_head = p->d_tail = NULL;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (job *lists[2] = { q, d }, **l = lists; l < lists + 2; l++) {
        for (job *j = *l; j;) {
            job *next = j->next;
            PyObject *r = PyObject_CallMethod(j->fut, "cancel", NULL);
            Py_XDECREF(r);
            PyErr_Clear();
            job_free(j);
            j = next;
        }
    }
    core_unref(p);
}

static PyObject *pool_shutdown(PyObject *op, PyObject *Py_UNUSED(a))
{
    pool_shutdown_core((PoolObject *)op);
    Py_RETURN_NONE;
}

static PyObject *pool_fileno(PyObject *op, PyObject *Py_UNUSED(a))
{
    pool_core *p = ((PoolObject *)op)->core;
    if (!p) {
        PyErr_SetString(PyExc_ValueError, "thread pool is shut down");
        return NULL;
    }
    return PyLong_FromLong(p->efd);
}

static PyObject *pool_get_threads(PyObject *op, void *Py_UNUSED(c))
{
    pool_core *p = ((PoolObject *)op)->core;
    if (!p)
        return PyLong_FromLong(0);
    pthread_mutex_lock(&p->mu);
    int n = p->threads;
    pthread_mutex_unlock(&p->mu);
    return PyLong_FromLong(n);
}

static PyObject *pool_get_max_threads(PyObject *op, void *Py_UNUSED(c))
{
    pool_core *p = ((PoolObject *)op)->core;
    return PyLong_FromLong(p ? p->max_threads : 0);
}

static int pool_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((PoolObject *)op)->create_future);
    return 0;
}

static int pool_clear(PyObject *op)
{
    Py_CLEAR(((PoolObject *)op)->create_future);
    return 0;
}

static void pool_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    pool_shutdown_core((PoolObject *)op);
    pool_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef pool_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))pool_submit, METH_FASTCALL,
     "submit(func, kwargs) -> Future of func(**kwargs) run in a worker thread"},
    {"drain", pool_drain, METH_NOARGS, "resolve the Futures of finished jobs (loop reader callback)"},
    {"fileno", pool_fileno, METH_NOARGS, "the eventfd to watch for finished jobs"},
    {"shutdown", pool_shutdown, METH_NOARGS, "cancel queued jobs; workers exit"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef pool_getset[] = {
    {"threads", pool_get_threads, NULL, "worker threads started and running", NULL},
    {"max_threads", pool_get_max_threads, NULL, "the most worker threads it starts", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot pool_slots[] = {
    {Py_tp_new, pool_new},
    {Py_tp_dealloc, pool_dealloc},
    {Py_tp_traverse, pool_traverse},
    {Py_tp_clear, pool_clear},
    {Py_tp_methods, pool_methods},
    {Py_tp_getset, pool_getset},
    {Py_tp_doc, "ThreadPool(loop, max_threads=40): runs def endpoints off the loop"},
    {0, NULL},
};

PyType_Spec celeris_threadpool_spec = {
    .name = "celeris._celeris.ThreadPool",
    .basicsize = sizeof(PoolObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = pool_slots,
};

/* The Server's pool, started on first use: a borrowed reference, or NULL
 * with an exception.  Its eventfd is watched by the server's loop. */
PyObject *celeris_server_pool(ServerObject *self)
{
    if (self->pool)
        return self->pool;
    int max_threads = 40;
    PyObject *mod = PyImport_ImportModule("celeris.native.runtime");
    PyObject *lim = mod ? PyObject_CallMethod(mod, "thread_limit", NULL) : NULL;
    Py_XDECREF(mod);
    if (lim && PyLong_Check(lim))
        max_threads = (int)PyLong_AsLong(lim);
    Py_XDECREF(lim);
    PyErr_Clear();
    if (max_threads < 1)
        max_threads = 40;
    PyObject *pool = PyObject_CallFunction((PyObject *)self->st->ThreadPool_Type, "Oi",
                                           self->loop, max_threads);
    if (!pool)
        return NULL;
    PyObject *fd = PyObject_CallMethod(pool, "fileno", NULL);
    PyObject *drain = fd ? PyObject_GetAttrString(pool, "drain") : NULL;
    PyObject *r = drain ? PyObject_CallMethod(self->loop, "add_reader", "OO", fd, drain) : NULL;
    Py_XDECREF(fd);
    Py_XDECREF(drain);
    if (!r) {
        pool_shutdown_core((PoolObject *)pool);
        Py_DECREF(pool);
        return NULL;
    }
    Py_DECREF(r);
    self->pool = pool;
    return pool;
}

int celeris_server_pool_busy(ServerObject *self)
{
    return self->pool && ((PoolObject *)self->pool)->unsettled > 0;
}

/* Stop watching and shut the Server's pool down (server close/dealloc). */
void celeris_server_pool_close(ServerObject *self)
{
    PyObject *pool = self->pool;
    if (!pool)
        return;
    self->pool = NULL;
    if (((PoolObject *)pool)->core) {
        PyObject *exc = PyErr_GetRaisedException_compat();
        PyObject *r = PyObject_CallMethod(self->loop, "remove_reader", "i",
                                          ((PoolObject *)pool)->core->efd);
        Py_XDECREF(r);
        PyErr_Clear();
        PyErr_SetRaisedException_compat(exc);
    }
    pool_shutdown_core((PoolObject *)pool);
    Py_DECREF(pool);
}
