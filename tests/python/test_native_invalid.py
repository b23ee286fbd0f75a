"""Invalid or missing parameters of simple routes (no dependencies, no body)
are answered natively with FastAPI's own validation (native/invalid.py):
same status, headers and body as FastAPI's, and served by the native tier."""
import enum
from typing import Annotated, Optional

import pytest
from fastapi import Cookie, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from celeris import testclient as tc
from conftest import answer, native_and_asgi_clients


class Color(str, enum.Enum):
    red = "red"
    blue = "blue"


def make_app(cors: bool = False, handler: bool = False) -> FastAPI:
    app = FastAPI()
    if cors:
        app.add_middleware(CORSMiddleware, allow_origins=["*"])
    if handler:
        @app.exception_handler(RequestValidationError)
        async def rve(request: Request, exc: RequestValidationError):
            return JSONResponse({"n": len(exc.errors()), "path": request.url.path,
                                 "pp": request.path_params}, status_code=400)

    @app.get("/a/{n}/{s}")
    async def a(n: int, s: str, q: Annotated[int, Query(ge=1, le=5)] = 1,
                tags: Annotated[Optional[list[int]], Query()] = None):
        return {"n": n, "s": s, "q": q, "tags": tags}

    @app.get("/b")
    async def b(must: int, color: Color = Color.red):
        return {"must": must, "color": color}

    @app.get("/c")
    async def c(x_num: Annotated[int, Header()], session: Annotated[Optional[int], Cookie()] = None):
        return {"x_num": x_num, "session": session}

    @app.get("/d/{f}")
    def d(f: float, flag: bool = False):
        return {"f": f, "flag": flag}

    @app.get("/e/{p}")
    async def e(p: str, u: Annotated[str, Query(min_length=3)] = "abc",
                limit: Annotated[int, Query(alias="lim")] = 0):
        return {"p": p, "u": u, "limit": limit}

    return app


REQUESTS = [
    ("/a/x/y", {}), ("/a/1/y?q=9", {}), ("/a/1/y?q=x&tags=1&tags=z", {}), ("/a/x/y?q=0&tags=w", {}),
    ("/a/1/y?q=3&tags=4", {}), ("/b", {}), ("/b?must=x", {}), ("/b?must=1&color=green", {}),
    ("/b?must=2&color=blue", {}), ("/c", {}), ("/c", {"x-num": "x"}), ("/c", {"x-num": "1", "cookie": "session=z"}),
    ("/c", {"x-num": "1", "cookie": "session=4"}), ("/d/abc", {}), ("/d/1.5?flag=maybe", {}), ("/d/2?flag=yes", {}),
    ("/e/x?u=ab", {}), ("/e/x?lim=q", {}), ("/e/x?u=abcd&lim=3", {}),
]


@pytest.fixture(scope="module", params=[(False, False), (True, False), (False, True)],
                ids=["plain", "cors", "handler"])
def clients(request):
    return native_and_asgi_clients(make_app(*request.param))


@pytest.mark.parametrize("url,headers", REQUESTS)
def test_invalid_parameters_match_fastapi_and_are_native(clients, url, headers):
    n, a = clients
    headers = dict(headers, origin="https://x.example")
    before = tc.stats["native"]
    r = n.get(url, headers=headers)
    assert tc.stats["native"] == before + 1
    assert answer(r) == answer(a.get(url, headers=headers))
