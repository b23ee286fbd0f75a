"""Which ASGI extensions Celeris offers an app.

`http.response.pathsend` (the core sends a FileResponse's file with
sendfile, docs/files.md) is offered unless a middleware of the app would
treat a path-send response differently from the body messages it replaces:
Starlette's GZipMiddleware, for one, leaves path-send responses uncompressed
where uvicorn (no path-send) gets them compressed, and other middleware may
not know the message at all.  So for a Starlette/FastAPI app it is offered
only when its user middleware are ones that pass path-send through unchanged;
any other ASGI app is offered it (the app alone decides whether to use it)."""
from __future__ import annotations

from typing import Any


def pathsend_allowed(app: Any) -> bool:
    try:
        from starlette.applications import Starlette
        from starlette.middleware.cors import CORSMiddleware
        from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
        from starlette.middleware.trustedhost import TrustedHostMiddleware
    except ImportError:  # pragma: no cover - Starlette is a dependency
        return True
    if not isinstance(app, Starlette):
        return True
    passthrough = (CORSMiddleware, TrustedHostMiddleware, HTTPSRedirectMiddleware)
    for m in getattr(app, "user_middleware", ()):
        if getattr(m, "cls", None) not in passthrough:
            return False
    return True
