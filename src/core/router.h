/* Path router with Starlette's matching semantics.
 *
 * Routes are tried in insertion order, as starlette.routing.Router does.  A
 * path template ("/items/{item_id:int}/{rest:path}") is parsed the way
 * starlette.routing.compile_path parses it and matched the way Python's
 * re.match would match the compiled regex: greedy convertors with
 * backtracking, "$" also matching before one final "\n", "path" ('.*') not
 * crossing a "\n".  No regex library; the search is bounded by a work budget
 * and reports CEL_ROUTER_EBUDGET instead of deciding when it runs out.
 *
 * The path given to cel_router_match is the percent-DECODED route path
 * (the scope's "path" minus "root_path", see starlette._utils.get_route_path)
 * as UTF-8.  Backtracking steps over whole UTF-8 sequences, so results equal
 * Python's (which counts code points) for valid UTF-8; invalid UTF-8 is
 * matched safely but is not guaranteed to agree with anything.
 *
 * The router does no I/O and keeps no state between matches: one router may
 * be matched from several threads at once once it is built.
 */
#ifndef CEL_ROUTER_H
#define CEL_ROUTER_H

#include <stddef.h>

#include "http1.h"              /* cel_slice */

#define CEL_ROUTER_MAX_PARAMS 16            /* per route; more -> CEL_EINVAL */
#define CEL_ROUTER_MAX_TEMPLATE 65536       /* template bytes; more -> CEL_EINVAL */
#define CEL_ROUTER_DEFAULT_BUDGET (1ul << 16) /* work units per cel_router_match */

/* cel_router_match ran out of budget before it could decide.  Not a cel_err
 * (errors.h is shared); outside that enum's range, so never confused with one. */
#define CEL_ROUTER_EBUDGET (-1000)

typedef struct cel_router cel_router;

enum cel_route_kind {
    CEL_ROUTE_PATH = 0,         /* starlette Route / FastAPI APIRoute */
    CEL_ROUTE_MOUNT = 1,        /* starlette Mount: template + "/{path:path}", any method */
    CEL_ROUTE_OPAQUE = 2        /* may match anything: matching stops here */
};

enum cel_route_conv {
    CEL_CONV_STR = 1,           /* [^/]+ (also the default when no type is given) */
    CEL_CONV_PATH = 2,          /* .*   (no "\n") */
    CEL_CONV_INT = 3,           /* [0-9]+ */
    CEL_CONV_FLOAT = 4,         /* [0-9]+(\.[0-9]+)? */
    CEL_CONV_UUID = 5           /* hex{8}-?hex{4}-?hex{4}-?hex{4}-?hex{12}, either case */
};

/* Return values of cel_router_match (besides CEL_ROUTER_EBUDGET). */
enum cel_router_result {
    CEL_ROUTER_NONE = 0,        /* no FULL match (see partial_seen) */
    CEL_ROUTER_FULL = 1,        /* a PATH or MOUNT route matched path and method */
    CEL_ROUTER_OPAQUE = 2       /* reached an OPAQUE entry before any FULL match */
};

typedef struct cel_route_param {
    cel_slice name;             /* borrowed from the router; valid until cel_router_free */
    cel_slice value;            /* borrowed from the matched path; empty in cel_route_info */
    int conv;                   /* enum cel_route_conv */
} cel_route_param;

typedef struct cel_route_match {
    int id;                     /* the id given to cel_router_add */
    int kind;                   /* enum cel_route_kind */
    size_t index;               /* insertion index of the route (0-based) */
    size_t nparams;             /* params in template order; a MOUNT's own "path" is last */
    cel_route_param params[CEL_ROUTER_MAX_PARAMS];
    size_t mount_prefix_len;    /* MOUNT: bytes of path Starlette appends to root_path
                                   (route_path[:-len("/" + path_param)]); else 0 */
    int partial_seen;           /* a PATH route before the result matched the path only */
    int partial_id;             /* id of the first such route, -1 if none */
} cel_route_match;

/* Static description of one route, for mapping params to arguments once. */
typedef struct cel_route_info {
    int id;
    int kind;
    size_t nparams;
    cel_route_param params[CEL_ROUTER_MAX_PARAMS];  /* value is empty */
} cel_route_info;

/* A new, empty router, or NULL when out of memory.  Caller frees with
 * cel_router_free. */
cel_router *cel_router_new(void);

/* Free the router and everything it owns; accepts NULL. */
void cel_router_free(cel_router *r);

/* Append a route.  `tpl`/`len` is the template (copied; need not be
 * NUL-terminated): for CEL_ROUTE_PATH it must start with '/'; for
 * CEL_ROUTE_MOUNT it is the mount path ("" or starting with '/'; trailing
 * slashes are stripped as Mount does); for CEL_ROUTE_OPAQUE it is ignored
 * (may be NULL).  `methods` is a NUL-terminated comma-separated list
 * ("GET,HEAD"; upper-cased here as Route does) or NULL for any method; an
 * empty string is Starlette's empty set, which also allows any method.
 * Only CEL_ROUTE_PATH takes methods; pass NULL for the other kinds.  Nothing
 * is added for you: Starlette's Route adds HEAD beside GET, FastAPI's
 * APIRoute does not, so the caller passes the final set.
 *
 * Returns 0; CEL_EINVAL for a template Starlette rejects (unknown convertor,
 * duplicated param name), more than CEL_ROUTER_MAX_PARAMS params, a template
 * over CEL_ROUTER_MAX_TEMPLATE bytes, an empty method name, a bad kind or
 * argument (message via cel_router_error); CEL_ENOMEM.  On error the router
 * is unchanged. */
int cel_router_add(cel_router *r, int kind, const char *tpl, size_t len,
                   const char *methods, int id);

/* Message for the last failed cel_router_add ("" if none).  Borrowed from r,
 * valid until the next cel_router_add or cel_router_free. */
const char *cel_router_error(const cel_router *r);

/* Work budget for each cel_router_match, in units: one per candidate end
 * position tried and per literal compared, plus one per 16 bytes scanned.
 * Ordinary routes use a few units per route; the default only stops
 * templates that backtrack polynomially (e.g. "/{a}{b}{c}" on a long path).
 * 0 restores the default.  Not thread-safe against concurrent matches. */
void cel_router_set_budget(cel_router *r, unsigned long units);

/* Number of routes added. */
size_t cel_router_count(const cel_router *r);

/* Describe route `index` (insertion order).  Returns 0 or CEL_EINVAL for an
 * index out of range.  Names are borrowed from r. */
int cel_router_route_info(const cel_router *r, size_t index, cel_route_info *out);

/* Find the first route (insertion order) that FULLY matches method + path,
 * as Starlette's Router.app loop does.  method/mlen is compared byte for
 * byte (Starlette compares scope["method"] as sent); path/plen is the decoded
 * route path (see above).  Allocates nothing.
 *
 * Returns CEL_ROUTER_FULL with *m filled (param values are slices of path);
 * CEL_ROUTER_OPAQUE with m->id/kind/index of the opaque entry reached first;
 * CEL_ROUTER_NONE when nothing matched fully; CEL_ROUTER_EBUDGET when the
 * budget ran out before a decision (the caller must route another way).
 * partial_seen/partial_id are valid for every result except EBUDGET; a
 * route whose method cannot match is only path-matched until the first
 * partial match has been seen. */
int cel_router_match(const cel_router *r, const char *method, size_t mlen,
                     const char *path, size_t plen, cel_route_match *m);

#endif
