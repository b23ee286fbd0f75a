/* Building the ASGI `http` scope from a parsed request head, with uvicorn's
 * field values (path = root_path + percent-decoded path, raw_path includes
 * root_path, header names lower-cased bytes, state copied per request). */
#include "binding.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "alloc.h"
#include "urlcode.h"

typedef struct {
    PyObject *client;           /* (host, port) or None */
    PyObject *server;           /* (host, port) or None */
    int trusted;                /* proxy headers: -1 not yet asked, 0 no, 1 the peer is a trusted proxy */
} ConnCache;

static PyObject *addr_tuple(const unsigned char *raw, unsigned len)
{
    const struct sockaddr *sa = (const struct sockaddr *)raw;
    char host[INET6_ADDRSTRLEN];
    int port;
    if (len >= sizeof(struct sockaddr_in) && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)raw;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (len >= sizeof(struct sockaddr_in6) && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)raw;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    } else {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(si)", host, port);
}

/* Per-connection cache of the client/server tuples; freed by
 * celeris_conn_cache_free from the on_close callback. */
static ConnCache *conn_cache(cel_conn *c)
{
    if (c->cache)
        return c->cache;
    ConnCache *cc = PyMem_Calloc(1, sizeof *cc);
    if (!cc) {
        PyErr_NoMemory();
        return NULL;
    }
    cc->trusted = -1;
    cc->client = addr_tuple(c->peer, c->peer_len);
    cc->server = addr_tuple(c->local, c->local_len);
    if (!cc->client || !cc->server) {
        Py_XDECREF(cc->client);
        Py_XDECREF(cc->server);
        PyMem_Free(cc);
        return NULL;
    }
    c->cache = cc;
    return cc;
}

int celeris_conn_cache_set(cel_conn *c, PyObject *client, PyObject *server)
{
    celeris_conn_cache_free(c);
    ConnCache *cc = PyMem_Calloc(1, sizeof *cc);
    if (!cc) {
        PyErr_NoMemory();
        return -1;
    }
    cc->trusted = -1;
    cc->client = Py_NewRef(client);
    cc->server = Py_NewRef(server);
    c->cache = cc;
    return 0;
}

void celeris_conn_cache_free(cel_conn *c)
{
    ConnCache *cc = c->cache;
    if (cc) {
        Py_XDECREF(cc->client);
        Py_XDECREF(cc->server);
        PyMem_Free(cc);
        c->cache = NULL;
    }
}

static int name_is(const cel_slice *name, const char *lower, size_t n)
{
    if (name->len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name->p[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch + 32);
        if (ch != lower[i])
            return 0;
    }
    return 1;
}

/* Is the connection's peer a trusted proxy?  Asked once per connection. */
static int peer_trusted(ServerObject *self, ConnCache *cc)
{
    if (cc->trusted < 0) {
        PyObject *host = Py_None;
        if (PyTuple_Check(cc->client) && PyTuple_GET_SIZE(cc->client) >= 1)
            host = PyTuple_GET_ITEM(cc->client, 0);
        PyObject *r = PyObject_CallOneArg(self->proxy_trusts, host);
        if (!r)
            return -1;
        int t = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (t < 0)
            return -1;
        cc->trusted = t;
    }
    return cc->trusted;
}

static int proxy_apply_cc(ServerObject *self, ConnCache *cc, const cel_http_request *req,
                          PyObject **client, PyObject **scheme)
{
    *client = *scheme = NULL;
    if (!self->proxy_resolve)
        return 0;
    const cel_slice *proto = NULL;
    size_t nfor = 0, forlen = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const cel_header *h = &req->headers[i];
        if (name_is(&h->name, "x-forwarded-proto", 17))
            proto = &h->value;                  /* the last one wins, as in uvicorn */
        else if (name_is(&h->name, "x-forwarded-for", 15)) {
            forlen += (nfor ? 2 : 0) + h->value.len;
            nfor++;
        }
    }
    if (!proto && !nfor)
        return 0;
    int t = peer_trusted(self, cc);
    if (t <= 0)
        return t;
    PyObject *xfp = proto ? PyBytes_FromStringAndSize(proto->p, (Py_ssize_t)proto->len) : Py_NewRef(Py_None);
    if (!xfp)
        return -1;
    PyObject *xff = Py_None;
    if (nfor) {
        /* every X-Forwarded-For value, joined with ", " */
        xff = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)forlen);
        if (!xff) {
            Py_DECREF(xfp);
            return -1;
        }
        char *d = PyBytes_AS_STRING(xff);
        size_t k = 0;
        for (size_t i = 0; i < req->num_headers; i++) {
            const cel_header *h = &req->headers[i];
            if (!name_is(&h->name, "x-forwarded-for", 15))
                continue;
            if (k) {
                memcpy(d + k, ", ", 2);
                k += 2;
            }
            memcpy(d + k, h->value.p, h->value.len);
            k += h->value.len;
        }
    } else {
        Py_INCREF(xff);
    }
    PyObject *args[2] = { xfp, xff };
    PyObject *r = PyObject_Vectorcall(self->proxy_resolve, args, 2, NULL);
    Py_DECREF(xfp);
    Py_DECREF(xff);
    if (!r)
        return -1;
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "proxy resolver must return (scheme, client)");
        return -1;
    }
    PyObject *sc = PyTuple_GET_ITEM(r, 0), *cl = PyTuple_GET_ITEM(r, 1);
    if (sc != Py_None)
        *scheme = Py_NewRef(sc);
    if (cl != Py_None)
        *client = Py_NewRef(cl);
    Py_DECREF(r);
    return 0;
}

int celeris_proxy_apply(ServerObject *self, cel_conn *c, const cel_http_request *req,
                        PyObject **client, PyObject **scheme)
{
    *client = *scheme = NULL;
    if (!self->proxy_resolve)
        return 0;
    ConnCache *cc = conn_cache(c);
    if (!cc)
        return -1;
    return proxy_apply_cc(self, cc, req, client, scheme);
}

static PyObject *method_str(celeris_state *st, const cel_slice *m)
{
    switch (m->len) {
    case 3:
        if (memcmp(m->p, "GET", 3) == 0) return Py_NewRef(st->s_GET);
        if (memcmp(m->p, "PUT", 3) == 0) return Py_NewRef(st->s_PUT);
        break;
    case 4:
        if (memcmp(m->p, "POST", 4) == 0) return Py_NewRef(st->s_POST);
        if (memcmp(m->p, "HEAD", 4) == 0) return Py_NewRef(st->s_HEAD);
        break;
    case 5:
        if (memcmp(m->p, "PATCH", 5) == 0) return Py_NewRef(st->s_PATCH);
        break;
    case 6:
        if (memcmp(m->p, "DELETE", 6) == 0) return Py_NewRef(st->s_DELETE);
        break;
    case 7:
        if (memcmp(m->p, "OPTIONS", 7) == 0) return Py_NewRef(st->s_OPTIONS);
        break;
    }
    return PyUnicode_DecodeASCII(m->p, (Py_ssize_t)m->len, "strict");
}

/* A WebSocket scope's scheme: "ws", or from X-Forwarded-Proto as uvicorn's
 * proxy middleware maps it ("https" -> "wss", "http" -> "ws").  Borrowed. */
static PyObject *ws_scheme(celeris_state *st, PyObject *pscheme)
{
    if (pscheme && PyUnicode_Check(pscheme)) {
        if (PyUnicode_CompareWithASCIIString(pscheme, "https") == 0
            || PyUnicode_CompareWithASCIIString(pscheme, "wss") == 0)
            return st->ws.s_wss;
    }
    return st->ws.s_ws;
}

/* root_path + urllib.parse.unquote(raw_path): %XX decoded (invalid escapes
 * kept literally), then UTF-8 with errors="replace". */
static PyObject *decode_path(ServerObject *self, const char *p, size_t n)
{
    Py_ssize_t rlen = PyUnicode_GET_LENGTH(self->root_path);
    if (memchr(p, '%', n) == NULL && rlen == 0) {
        return PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "replace");
    }
    char small[512] = {0};
    char *buf = n <= sizeof small ? small : PyMem_Malloc(n);
    if (!buf)
        return PyErr_NoMemory();
    size_t o = cel_url_decode(p, n, buf, 0);   /* '+' kept: a path */
    PyObject *path = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)o, "replace");
    if (buf != small)
        PyMem_Free(buf);
    if (!path || rlen == 0)
        return path;
    PyObject *full = PyUnicode_Concat(self->root_path, path);
    Py_DECREF(path);
    return full;
}

static PyObject *build_headers(const cel_http_request *req)
{
    PyObject *list = PyList_New((Py_ssize_t)req->num_headers);
    if (!list)
        return NULL;
    for (size_t i = 0; i < req->num_headers; i++) {
        const cel_header *h = &req->headers[i];
        PyObject *name = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)h->name.len);
        if (!name)
            goto error;
        char *d = PyBytes_AS_STRING(name);
        for (size_t k = 0; k < h->name.len; k++) {
            char ch = h->name.p[k];
            d[k] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        }
        PyObject *value = PyBytes_FromStringAndSize(h->value.p, (Py_ssize_t)h->value.len);
        if (!value) {
            Py_DECREF(name);
            goto error;
        }
        PyObject *t = PyTuple_New(2);
        if (!t) {
            Py_DECREF(name);
            Py_DECREF(value);
            goto error;
        }
        PyTuple_SET_ITEM(t, 0, name);
        PyTuple_SET_ITEM(t, 1, value);
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
error:
    Py_DECREF(list);
    return NULL;
}

static int set_steal(PyObject *d, PyObject *key, PyObject *value)
{
    if (!value)
        return -1;
    int rc = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return rc;
}

/* The http scope's keys in uvicorn's order (constant values set, the rest None), and its
 * "asgi" dict: built once per server (the keys depend only on the server:
 * pathsend, lifespan state), so a request's scope is a copy of it with its
 * values replaced -- a dict cloned at its final size, no growing.  0, or -1
 * with an exception. */
static int http_templates(ServerObject *self)
{
    celeris_state *st = self->st;
    if (self->scope_tmpl)
        return 0;
    PyObject *keys[] = {
        st->s_type, st->s_asgi, st->s_http_version, st->s_server, st->s_client, st->s_scheme,
        st->s_method, st->s_root_path, st->s_path, st->s_raw_path, st->s_query_string,
        st->s_headers, self->pathsend ? st->ws.s_extensions : NULL,
        self->state != Py_None ? st->s_state : NULL,
    };
    PyObject *tmpl = PyDict_New(), *asgi = PyDict_New();
    if (!tmpl || !asgi || PyDict_SetItem(asgi, st->s_version, st->s_v30) < 0
        || PyDict_SetItem(asgi, st->s_spec_version, st->s_v23) < 0)
        goto error;
    /* the values every request of this server has (a proxy's scheme and
     * HTTP/1.0 replace theirs), the others None */
    PyObject *values[] = {
        st->s_http, Py_None, st->s_v11, Py_None, Py_None, self->scheme,
        Py_None, self->root_path, Py_None, Py_None, Py_None, Py_None, Py_None, Py_None,
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i] && PyDict_SetItem(tmpl, keys[i], values[i]) < 0)
            goto error;
    self->scope_tmpl = tmpl;
    self->asgi_tmpl = asgi;
    return 0;
error:
    Py_XDECREF(tmpl);
    Py_XDECREF(asgi);
    return -1;
}

PyObject *celeris_build_scope(ServerObject *self, cel_conn *c, const cel_http_request *req)
{
    celeris_state *st = self->st;
    ConnCache *cc = conn_cache(c);
    if (!cc)
        return NULL;

    /* absolute-form: the path starts after scheme://authority */
    const char *pp = req->path.p;
    size_t pn = req->path.len;
    if (pn && pp[0] != '/' && pp[0] != '*') {
        const char *sep = memchr(pp, ':', pn);
        if (sep && (size_t)(pp + pn - sep) >= 3 && sep[1] == '/' && sep[2] == '/') {
            const char *auth = sep + 3;
            const char *slash = memchr(auth, '/', (size_t)(pp + pn - auth));
            if (slash) {
                pn = (size_t)(pp + pn - slash);
                pp = slash;
            } else {
                pp = "/";
                pn = 1;
            }
        }
    }

    PyObject *pclient = NULL, *pscheme = NULL;
    if (proxy_apply_cc(self, cc, req, &pclient, &pscheme) < 0)
        return NULL;
    int ws = c->ws != NULL;
    PyObject *scope = ws ? PyDict_New()
                         : http_templates(self) < 0 ? NULL : PyDict_Copy(self->scope_tmpl);
    if (!scope) {
        Py_XDECREF(pclient);
        Py_XDECREF(pscheme);
        return NULL;
    }
    /* every key the http template has is set below (its None replaced) */
    PyObject *asgi = ws ? PyDict_New() : PyDict_Copy(self->asgi_tmpl);
    if (!asgi)
        goto error;
    if (ws && (PyDict_SetItem(asgi, st->s_version, st->s_v30) < 0
               || PyDict_SetItem(asgi, st->s_spec_version, st->ws.s_v24) < 0)) {
        Py_DECREF(asgi);
        goto error;
    }
    /* (the http template holds type, HTTP/1.1, the server's scheme and root_path already) */
    if ((ws && PyDict_SetItem(scope, st->s_type, st->ws.s_websocket) < 0)
        || set_steal(scope, st->s_asgi, asgi) < 0
        || ((ws || req->minor_version != 1)
            && PyDict_SetItem(scope, st->s_http_version,
                              req->minor_version == 1 ? st->s_v11 : st->s_v10) < 0)
        || PyDict_SetItem(scope, st->s_server, cc->server) < 0
        || PyDict_SetItem(scope, st->s_client, pclient ? pclient : cc->client) < 0
        || ((ws || pscheme)
            && PyDict_SetItem(scope, st->s_scheme, ws ? ws_scheme(st, pscheme) : pscheme) < 0)
        || (!ws && set_steal(scope, st->s_method, method_str(st, &req->method)) < 0)
        || (ws && PyDict_SetItem(scope, st->s_root_path, self->root_path) < 0)
        || set_steal(scope, st->s_path, decode_path(self, pp, pn)) < 0)
        goto error;
    PyObject *raw;
    if (PyBytes_GET_SIZE(self->root_path_bytes)) {
        raw = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(self->root_path_bytes) + (Py_ssize_t)pn);
        if (raw) {
            memcpy(PyBytes_AS_STRING(raw), PyBytes_AS_STRING(self->root_path_bytes),
                   (size_t)PyBytes_GET_SIZE(self->root_path_bytes));
            memcpy(PyBytes_AS_STRING(raw) + PyBytes_GET_SIZE(self->root_path_bytes), pp, pn);
        }
    } else {
        raw = PyBytes_FromStringAndSize(pp, (Py_ssize_t)pn);
    }
    if (set_steal(scope, st->s_raw_path, raw) < 0
        || set_steal(scope, st->s_query_string,
                     req->query.len ? PyBytes_FromStringAndSize(req->query.p, (Py_ssize_t)req->query.len)
                                    : Py_NewRef(st->empty_bytes)) < 0
        || set_steal(scope, st->s_headers, build_headers(req)) < 0)
        goto error;
    if (ws) {
        /* uvicorn's websocket scope: subprotocols, and the denial-response extension */
        PyObject *ext = Py_BuildValue("{O{}}", st->ws.s_ext_http_response);
        if (set_steal(scope, st->ws.s_subprotocols, celeris_ws_subprotocols(req)) < 0
            || set_steal(scope, st->ws.s_extensions, ext) < 0
            || set_steal(scope, st->s_state,
                         self->state != Py_None ? PyDict_Copy(self->state) : PyDict_New()) < 0)
            goto error;
        return scope;
    }
    /* the ASGI path-send extension (docs/files.md): a fresh dict per
     * request, since apps and middleware may add to it */
    if (self->pathsend) {
        PyObject *ext = PyDict_New(), *inner = PyDict_New();
        int rc = ext && inner ? PyDict_SetItem(ext, st->s_http_response_pathsend, inner) : -1;
        Py_XDECREF(inner);
        if (rc < 0) {
            Py_XDECREF(ext);
            goto error;
        }
        if (set_steal(scope, st->ws.s_extensions, ext) < 0)
            goto error;
    }
    if (self->state != Py_None) {
        if (set_steal(scope, st->s_state, PyDict_Copy(self->state)) < 0)
            goto error;
    }
    Py_XDECREF(pclient);
    Py_XDECREF(pscheme);
    return scope;
error:
    Py_XDECREF(pclient);
    Py_XDECREF(pscheme);
    Py_DECREF(scope);
    return NULL;
}

PyObject *celeris_ws_subprotocols(const cel_http_request *req)
{
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    for (size_t i = 0; i < req->num_headers; i++) {
        const cel_header *h = &req->headers[i];
        if (h->name.len != 22 || strncasecmp(h->name.p, "sec-websocket-protocol", 22) != 0)
            continue;
        /* comma-separated tokens, stripped (as uvicorn) */
        const char *p = h->value.p, *end = p + h->value.len;
        while (p <= end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *e = comma ? comma : end;
            const char *a = p, *b = e;
            while (a < b && (*a == ' ' || *a == '\t'))
                a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                b--;
            PyObject *tok = PyUnicode_DecodeLatin1(a, b - a, NULL);
            if (!tok || PyList_Append(list, tok) < 0) {
                Py_XDECREF(tok);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(tok);
            if (!comma)
                break;
            p = comma + 1;
        }
    }
    return list;
}
