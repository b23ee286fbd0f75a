/* _celeris.Inotify: a recursive directory watcher for the `--reload`
 * supervisor (Linux inotify, no dependency).  inotify is not recursive: one
 * watch per directory, and a watch is added for every directory that appears
 * later (created or moved in).  The object owns one inotify descriptor and a
 * dict {watch descriptor (int): directory path (str)}. */
#include "binding.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define WATCH_MASK (IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM \
                    | IN_MOVED_TO | IN_DELETE_SELF | IN_ATTRIB | IN_ONLYDIR)

typedef struct {
    PyObject_HEAD
    int fd;                 /* -1 once closed */
    PyObject *wds;          /* dict: int wd -> str directory path (owned) */
} InotifyObject;

/* Add a watch on `path` (bytes, filesystem encoding) and, recursively, on its
 * subdirectories.  When `found` is not NULL, the path of every entry met
 * below `path` is appended to it (files created in a new directory before
 * its watch existed).  Returns 0, or -1 with an exception set: OSError for
 * ENOSPC/ENOMEM (the watch limit) and for errors on the top directory when
 * `strict`; other errors below (a directory gone meanwhile, no permission)
 * skip that directory.  Borrows `path`; owns nothing on return. */
static int add_tree(InotifyObject *self, const char *path, PyObject *found, int strict)
{
    int wd = inotify_add_watch(self->fd, path, WATCH_MASK);
    if (wd < 0) {
        if (errno == ENOSPC || errno == ENOMEM || strict) {
            PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
            return -1;
        }
        return 0;
    }
    PyObject *key = PyLong_FromLong(wd);
    PyObject *val = PyUnicode_DecodeFSDefault(path);
    int rc = (key && val) ? PyDict_SetItem(self->wds, key, val) : -1;
    Py_XDECREF(key);
    Py_XDECREF(val);
    if (rc < 0)
        return -1;

    DIR *d = opendir(path);
    if (!d)
        return 0;               /* gone or unreadable: the watch stays */
    /* On the heap: a tree nested ~PATH_MAX/2 deep would otherwise put a
     * PATH_MAX buffer per level on the C stack. */
    char *sub = PyMem_Malloc(PATH_MAX);
    if (!sub) {
        closedir(d);
        PyErr_NoMemory();
        return -1;
    }
    struct dirent *e;
    int ret = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int n = snprintf(sub, PATH_MAX, "%s/%s", path, e->d_name);
        if (n < 0 || n >= PATH_MAX)
            continue;
        if (found) {
            PyObject *p = PyUnicode_DecodeFSDefault(sub);
            if (!p || PyList_Append(found, p) < 0) {
                Py_XDECREF(p);
                ret = -1;
                break;
            }
            Py_DECREF(p);
        }
        int isdir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN) {
            struct stat st;
            isdir = lstat(sub, &st) == 0 && S_ISDIR(st.st_mode);
        }
        if (isdir && add_tree(self, sub, found, 0) < 0) {
            ret = -1;
            break;
        }
    }
    closedir(d);
    PyMem_Free(sub);
    return ret;
}

/* Inotify(dirs): watch every directory in the iterable `dirs` (str or
 * path-like), recursively.  Raises OSError if inotify is unavailable, a
 * directory cannot be watched or the watch limit is reached (ENOSPC). */
static PyObject *inotify_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *dirs;
    static char *kwlist[] = {"dirs", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Inotify", kwlist, &dirs))
        return NULL;
    PyObject *seq = PySequence_Fast(dirs, "Inotify: dirs must be a sequence");
    if (!seq)
        return NULL;
    InotifyObject *self = (InotifyObject *)type->tp_alloc(type, 0);
    if (!self) {
        Py_DECREF(seq);
        return NULL;
    }
    self->fd = -1;
    self->wds = PyDict_New();
    if (!self->wds)
        goto fail;
    self->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (self->fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto fail;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *b = NULL;
        if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(seq, i), &b))
            goto fail;
        int rc = add_tree(self, PyBytes_AS_STRING(b), NULL, 1);
        Py_DECREF(b);
        if (rc < 0)
            goto fail;
    }
    Py_DECREF(seq);
    return (PyObject *)self;
fail:
    Py_DECREF(seq);
    Py_DECREF(self);            /* dealloc closes the fd */
    return NULL;
}

/* fileno() -> int: the inotify descriptor (readable when events are pending).
 * ValueError once closed. */
static PyObject *inotify_fileno(PyObject *op, PyObject *Py_UNUSED(a))
{
    InotifyObject *self = (InotifyObject *)op;
    if (self->fd < 0) {
        PyErr_SetString(PyExc_ValueError, "Inotify is closed");
        return NULL;
    }
    return PyLong_FromLong(self->fd);
}

/* read() -> (paths: list[str], overflow: bool): drain the pending events
 * without blocking.  paths are the full paths the events name (duplicates
 * possible, in event order); a directory created or moved in gets its watches
 * and its entries are reported too.  overflow is True when the kernel queue
 * overflowed (events were lost: the caller should rescan).  Raises OSError
 * for a read error or the watch limit (ENOSPC) on a new directory,
 * ValueError once closed.  Returns a new reference. */
static PyObject *inotify_read(PyObject *op, PyObject *Py_UNUSED(a))
{
    InotifyObject *self = (InotifyObject *)op;
    if (self->fd < 0) {
        PyErr_SetString(PyExc_ValueError, "Inotify is closed");
        return NULL;
    }
    PyObject *paths = PyList_New(0);
    if (!paths)
        return NULL;
    int overflow = 0;
    _Alignas(struct inotify_event) char buf[16384];
    for (;;) {
        ssize_t n = read(self->fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            PyErr_SetFromErrno(PyExc_OSError);
            goto fail;
        }
        if (n == 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                overflow = 1;
                continue;
            }
            PyObject *key = PyLong_FromLong(ev->wd);
            if (!key)
                goto fail;
            PyObject *dir = PyDict_GetItemWithError(self->wds, key);     /* borrowed */
            if (!dir) {
                Py_DECREF(key);
                if (PyErr_Occurred())
                    goto fail;
                continue;       /* a watch already removed */
            }
            Py_INCREF(dir);
            if (ev->mask & IN_IGNORED) {
                int rc = PyDict_DelItem(self->wds, key);
                Py_DECREF(key);
                Py_DECREF(dir);
                if (rc < 0)
                    goto fail;
                continue;
            }
            Py_DECREF(key);
            PyObject *full;
            if (ev->len > 0 && ev->name[0]) {
                PyObject *name = PyUnicode_DecodeFSDefault(ev->name);
                full = name ? PyUnicode_FromFormat("%U/%U", dir, name) : NULL;
                Py_XDECREF(name);
            } else {
                full = Py_NewRef(dir);
            }
            Py_DECREF(dir);
            if (!full || PyList_Append(paths, full) < 0) {
                Py_XDECREF(full);
                goto fail;
            }
            if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
                PyObject *b = NULL;
                if (!PyUnicode_FSConverter(full, &b)) {
                    Py_DECREF(full);
                    goto fail;
                }
                int rc = add_tree(self, PyBytes_AS_STRING(b), paths, 0);
                Py_DECREF(b);
                if (rc < 0) {
                    Py_DECREF(full);
                    goto fail;
                }
            }
            Py_DECREF(full);
        }
    }
    return Py_BuildValue("(NO)", paths, overflow ? Py_True : Py_False);
fail:
    Py_DECREF(paths);
    return NULL;
}

/* close(): close the descriptor (idempotent). */
static PyObject *inotify_close(PyObject *op, PyObject *Py_UNUSED(a))
{
    InotifyObject *self = (InotifyObject *)op;
    if (self->fd >= 0) {
        close(self->fd);
        self->fd = -1;
    }
    if (self->wds)
        PyDict_Clear(self->wds);
    Py_RETURN_NONE;
}

/* watch_count() -> int: directories currently watched. */
static PyObject *inotify_watch_count(PyObject *op, PyObject *Py_UNUSED(a))
{
    InotifyObject *self = (InotifyObject *)op;
    return PyLong_FromSsize_t(self->wds ? PyDict_Size(self->wds) : 0);
}

static void inotify_dealloc(PyObject *op)
{
    InotifyObject *self = (InotifyObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (self->fd >= 0)
        close(self->fd);
    Py_CLEAR(self->wds);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef inotify_methods[] = {
    {"fileno", inotify_fileno, METH_NOARGS, "The inotify file descriptor."},
    {"read", inotify_read, METH_NOARGS, "Drain pending events: (paths, overflow)."},
    {"close", inotify_close, METH_NOARGS, "Close the inotify descriptor."},
    {"watch_count", inotify_watch_count, METH_NOARGS, "Number of watched directories."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot inotify_slots[] = {
    {Py_tp_new, inotify_new},
    {Py_tp_dealloc, inotify_dealloc},
    {Py_tp_methods, inotify_methods},
    {Py_tp_doc, "Inotify(dirs): recursive inotify watcher (used by --reload)."},
    {0, NULL},
};

PyType_Spec celeris_inotify_spec = {
    .name = "celeris._celeris.Inotify",
    .basicsize = sizeof(InotifyObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = inotify_slots,
};
