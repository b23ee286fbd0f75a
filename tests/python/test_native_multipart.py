"""Forms parsed by the C parsers (celeris/native/forms.py) against Starlette.

1. Through the core: the same requests to the native tier (C parsers) and to
   the ASGI tier (FastAPI + Starlette's python-multipart parser), compared on
   status, raw headers and body -- many multipart and urlencoded shapes, the
   limits, broken bodies, FastAPI's Form/File/UploadFile 422s.
2. parse_form() itself against Starlette's Request.form() with the body split
   into chunks at many places: the same items (str values, UploadFile
   filename/size/headers/content/spool state) or the same error.
3. A ~100 MB upload over a real socket: the server's RSS grows < 20 MB.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
import time
from typing import Annotated, Optional

import pytest
from fastapi import FastAPI, File, Form, Request, UploadFile
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request as StarletteRequest

from celeris import testclient as tc
from celeris.native.forms import parse_form
from conftest import ServerProcess, answer, native_and_asgi_clients
from rawhttp import Conn

MiB = 1024 * 1024


async def describe(form) -> list:
    """Everything observable of a FormData, files read and rewound."""
    out = []
    for k, v in form.multi_items():
        if isinstance(v, str):
            out.append([k, "str", v])
            continue
        assert isinstance(v, StarletteUploadFile)
        pos = v.file.tell()
        data = await v.read()
        await v.seek(0)
        out.append([k, "file", v.filename, v.size, v.content_type, pos,
                    [[a.decode("latin-1"), b.decode("latin-1")] for a, b in v.headers.raw],
                    hashlib.sha256(data).hexdigest(), len(data), data[:40].decode("latin-1"),
                    v._in_memory, type(v.file).__name__, getattr(v.file, "_max_size", None)])
    return out


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/dump")
    async def dump(request: Request, zz_unused: Annotated[Optional[str], Form()] = None):
        return await describe(await request.form())

    @app.post("/login")
    async def login(username: Annotated[str, Form()], password: Annotated[str, Form(min_length=3)]):
        return {"u": username, "p": password}

    @app.post("/upload")
    async def upload(file: UploadFile, note: Annotated[Optional[str], Form()] = None):
        data = await file.read()
        return {"name": file.filename, "ct": file.content_type, "size": file.size, "len": len(data),
                "note": note, "sha": hashlib.sha256(data).hexdigest()}

    @app.post("/files")
    async def files(files: Annotated[list[UploadFile], File()], tags: Annotated[list[str], Form()] = []):
        return {"names": [f.filename for f in files], "sizes": [f.size for f in files], "tags": tags}

    @app.post("/bytes")
    def raw_bytes(data: Annotated[bytes, File()], n: Annotated[int, Form()]):
        return {"len": len(data), "n": n}

    return app


B = "bnd"


def part(name: Optional[str] = "f", body: bytes = b"v", filename: Optional[str] = None,
         headers: tuple = (), disposition: Optional[bytes] = None) -> bytes:
    if disposition is None:
        disposition = b"form-data"
        if name is not None:
            disposition += b'; name="' + name.encode("latin-1") + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename.encode("latin-1") + b'"'
    head = b"Content-Disposition: " + disposition + b"\r\n"
    for h in headers:
        head += h + b"\r\n"
    return head + b"\r\n" + body


def mp(*parts: bytes, boundary: str = B, preamble: bytes = b"", epilogue: bytes = b"",
       close: bool = True) -> bytes:
    bb = boundary.encode("latin-1")
    out = preamble
    for p in parts:
        out += b"--" + bb + b"\r\n" + p + b"\r\n"
    if close:
        out += b"--" + bb + b"--\r\n" + epilogue
    return out


def ct(boundary: str = B, extra: str = "") -> dict:
    return {"content-type": f"multipart/form-data; boundary={boundary}{extra}"}


UE = {"content-type": "application/x-www-form-urlencoded"}
BIG = bytes(range(256)) * 4096 + b"tail"              # 1 MiB + 4: spooled to disk

# (target, body, headers)
MULTIPART = [
    ("several", mp(part("a", b"1"), part("f1", b"one", "a.txt", (b"Content-Type: text/plain",)),
                   part("a", b"2"), part("f2", b"", "empty.bin"), part("b", b""))),
    ("no-filename", mp(part("f", b"plain value"))),
    ("empty-filename", mp(part("f", b"data", ""))),
    ("filename-star", mp(part(disposition=b"form-data; name=\"f\"; filename=\"e.txt\"; "
                                          b"filename*=UTF-8''%E2%82%AC.txt", body=b"x"))),
    ("filename-star-only", mp(part(disposition=b"form-data; name=\"f\"; filename*=UTF-8''a.txt",
                                   body=b"x"))),
    ("quoted-escapes", mp(part(disposition=b'form-data; name="a\\"b\\\\c"; filename="q\\"x.txt"',
                               body=b"q"))),
    ("ie-path", mp(part("f", b"x", "C:\\dir\\file.txt"))),
    ("utf8-names", mp(part("n\u00e9", "v\u00e9".encode(), ), part("g", b"x", "f\u00e9.txt"))),
    ("latin1-charset", mp(part("n\xe9", b"v\xe9"), part("g", b"x", "f\xe9.txt"))),
    ("bad-utf8", mp(part("n", b"\xff\xfe"))),
    ("part-headers", mp(part("f", b"x", "h.txt", (b"Content-Type: image/png", b"X-Custom-Header: A b ",
                                                  b"content-type: second")))),
    ("unquoted-params", mp(part(disposition=b"form-data; name=plain; filename=un.txt", body=b"u"))),
    ("preamble-epilogue", mp(part("a", b"1"), preamble=b"", epilogue=b"trailing junk\r\nmore")),
    ("crlf-preamble", mp(part("a", b"1"), preamble=b"\r\nignored preamble\r\n")),
    ("lf-preamble", mp(part("a", b"1"), preamble=b"\nx")),
    ("junk-preamble", mp(part("a", b"1"), preamble=b"junk")),
    ("truncated-file", mp(part("a", b"1"), part("f", b"partial", "t.txt"), close=False)[:-2]),
    ("truncated-field", mp(part("a", b"1"), part("b", b"partial"), close=False)[:-2]),
    ("truncated-head", mp(part("a", b"1")) [:-10]),
    ("only-close", b"--" + B.encode() + b"--\r\n"),
    ("empty-body", b""),
    ("no-name", mp(part(name=None, body=b"x"))),
    ("no-disposition", b"--bnd\r\nContent-Type: text/plain\r\n\r\nx\r\n--bnd--\r\n"),
    ("bad-header", b"--bnd\r\nbad header line\r\n\r\nx\r\n--bnd--\r\n"),
    ("huge-header", mp(part("f", b"x", "h", (b"X-Big: " + b"a" * 5000,)))),
    ("header-4224", mp(part("f", b"x", "h", (b"X-Big: " + b"a" * (4224 - 7),)))),
    ("many-headers", mp(part("f", b"x", "h", tuple(b"X-%d: v" % i for i in range(8))))),
    ("delimiter-lookalike", mp(part("f", b"a\r\n--bndX\r\n--bn", "l.txt"), part("g", b"\r\n--bnd"))),
    ("padding-after-delimiter", b"--bnd \t\r\n" + part("a", b"1") + b"\r\n--bnd--\r\n"),
    ("bad-padding", b"--bnd x\r\n" + part("a", b"1") + b"\r\n--bnd--\r\n"),
    ("big-file", mp(part("f", BIG, "big.bin"), part("n", b"after"))),
    ("big-field", mp(part("f", b"x" * MiB))),
    ("field-too-big", mp(part("f", b"x" * (MiB + 1)))),
    ("file-not-limited", mp(part("f", b"x" * (MiB + 1), "ok.bin"))),
    ("1000-fields", mp(*[part("f%d" % i, b"v") for i in range(1000)])),
    ("1001-fields", mp(*[part("f%d" % i, b"v") for i in range(1001)])),
    ("1001-files", mp(*[part("f", b"v", "x%d" % i) for i in range(1001)])),
]

MP_HEADERS = {
    "latin1-charset": ct(extra="; charset=latin-1"),
    "bad-utf8": ct(extra="; charset=utf-8"),
    "utf8-names": ct(extra='; charset="UTF-8"'),
}

EXTRA = [
    # Content-Type variants
    ("/dump", mp(part("a", b"1")), {"content-type": "multipart/form-data"}),              # no boundary
    ("/dump", mp(part("a", b"1")), ct(extra="; charset=no-such-codec")),
    ("/dump", mp(part("a", b"1"), boundary="x" * 257), ct("x" * 257)),                   # too long
    ("/dump", mp(part("a", b"1"), boundary="x" * 256), ct("x" * 256)),
    ("/dump", mp(part("a", b"1"), boundary='a"b'), {"content-type": 'multipart/form-data; boundary="a\\"b"'}),
    ("/dump", mp(part("a", b"1"), boundary=""), {"content-type": "multipart/form-data; boundary="}),
    ("/dump", mp(part("a", b"1")), {"content-type": "Multipart/Form-Data; BOUNDARY=bnd"}),
    ("/dump", mp(part("a", b"1")), {"content-type": "multipart/form-data;boundary=bnd;boundary=other"}),
    ("/dump", mp(part("a", b"1")), {"content-type": "multipart/mixed; boundary=bnd"}),
    ("/dump", mp(part("a", b"1")), {"content-type": "text/plain"}),
    ("/dump", b"", {"content-type": "multipart/form-data; boundary=" + "y" * 300}),
    ("/dump", b"a=1", {}),
    # urlencoded
    ("/dump", b"a=1+2&b=%41%42%c3%a9&c=%ff&d=%zz&e", UE),
    ("/dump", b"k=1&k=2&k=&=v&&x=&", UE),
    ("/dump", b"", UE),
    ("/dump", b"\xe9=\xff&caf%C3%A9=%E2%82", UE),
    ("/dump", b"a=b=c&+=+", UE),
    ("/dump", b"&".join(b"f%d=v" % i for i in range(1000)), UE),
    ("/dump", b"&".join(b"f%d=v" % i for i in range(1001)), UE),
    ("/dump", b"f=" + b"x" * (MiB - 1), UE),
    ("/dump", b"f=" + b"x" * MiB, UE),
    ("/dump", b"a=1", {"content-type": "application/x-www-form-urlencoded; charset=latin-1"}),
    # FastAPI parameters: values, 422s, 400s
    ("/login", b"username=a&password=secret", UE),
    ("/login", b"username=a&password=x", UE),
    ("/login", b"username=a", UE),
    ("/login", b"", UE),
    ("/login", mp(part("username", b"a"), part("password", b"pw\xe9")), ct()),
    ("/login", mp(part("username", b"a"), part("password", b"s", "f.txt")), ct()),
    ("/login", b"{}", {"content-type": "application/json"}),
    ("/login", b"username=a&password=secret", {"content-type": "text/plain"}),
    ("/upload", mp(part("file", b"hello", "a.txt", (b"Content-Type: text/plain",)), part("note", b"n")), ct()),
    ("/upload", mp(part("file", BIG, "big.bin")), ct()),
    ("/upload", mp(part("file", b"not a file")), ct()),
    ("/upload", mp(part("note", b"n")), ct()),
    ("/upload", b"file=x", UE),
    ("/upload", mp(part("file", b"x", "a"))[:-5], ct()),
    ("/files", mp(part("files", b"1", "a"), part("tags", b"t1"), part("files", b"22", "b"),
                  part("tags", b"t2")), ct()),
    ("/files", mp(part("tags", b"t")), ct()),
    ("/bytes", mp(part("data", b"xyz", "d"), part("n", b"3")), ct()),
    ("/bytes", mp(part("data", b"xyz"), part("n", b"three")), ct()),
    ("/bytes", mp(part("data", b"x" * (MiB + 1)), part("n", b"1")), ct()),
]

CASES = [("/dump", body, MP_HEADERS.get(name, ct())) for name, body in MULTIPART] + EXTRA
IDS = [f"mp-{name}" for name, _ in MULTIPART] + [f"x{i}-{t.strip('/')}" for i, (t, _, _) in enumerate(EXTRA)]


@pytest.fixture(scope="module")
def clients():
    return native_and_asgi_clients(make_app())


def _send(client, target, body, headers):
    return answer(client.post(target, content=body, headers=headers))


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_native_form_matches_asgi(clients, i):
    target, body, headers = CASES[i]
    n, a = clients
    before = tc.stats["native"]
    got = _send(n, target, body, headers)
    assert tc.stats["native"] == before + 1          # really served by the native tier
    assert got == _send(a, target, body, headers)


def test_cases_cover_the_error_answers(clients):
    """The table above reaches every one of Starlette's form errors."""
    _, a = clients
    details = set()
    for target, body, headers in CASES:
        r = a.post(target, content=body, headers=headers)
        if r.status_code == 400:
            details.add(r.json()["detail"])
    assert details == {
        "Missing boundary in multipart.", "Invalid multipart data.",
        'The Content-Disposition header field "name" must be provided.',
        "Too many files. Maximum number of files is 1000.",
        "Too many fields. Maximum number of fields is 1000.",
        "Part exceeded maximum size of 1024KB.", "Field exceeded maximum size of 1024KB.",
    }


# ---- parse_form() vs Starlette's Request.form(), body split into chunks ----

def request_for(body_chunks: list[bytes], headers: dict) -> StarletteRequest:
    msgs = [{"type": "http.request", "body": c, "more_body": True} for c in body_chunks]
    msgs.append({"type": "http.request", "body": b"", "more_body": False})
    it = iter(msgs)

    async def receive():
        return next(it)

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"", "app": object(),
             "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]}
    return StarletteRequest(scope, receive)


async def outcome(coro_fn, req) -> tuple:
    try:
        form = await coro_fn(req)
    except HTTPException as exc:
        return ("error", exc.status_code, exc.detail)
    try:
        return ("form", await describe(form))
    finally:
        await form.close()


def splits(n: int) -> list[list[int]]:
    """Cut positions: none, each single cut for small bodies (a sample for
    larger ones), and a few pairs."""
    singles = range(1, n) if n <= 400 else sorted({1, 2, n // 3, n // 2, n - 2, n - 1} | set(range(1, n, n // 97)))
    out = [[]] + [[c] for c in singles]
    out += [[c, c + d] for c in list(singles)[:: max(1, len(singles) // 10)] for d in (1, 7) if c + d < n]
    return out


SPLIT_CASES = [(name, body, MP_HEADERS.get(name, ct())) for name, body in MULTIPART
               if len(body) < 20000] + [
    ("ue-1", EXTRA[12][1], UE), ("ue-2", EXTRA[13][1], UE), ("ue-3", EXTRA[15][1], UE),
    ("ue-4", EXTRA[16][1], UE),
]


@pytest.mark.parametrize("name,body,headers", SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
def test_parse_form_matches_starlette_at_every_split(name, body, headers):
    async def run():
        mismatches = []
        for cuts in splits(len(body)):
            bounds = [0] + cuts + [len(body)]
            chunks = [body[a:b] for a, b in zip(bounds, bounds[1:])]
            ours = await outcome(parse_form, request_for(chunks, headers))
            theirs = await outcome(lambda r: r.form(), request_for(chunks, headers))
            if ours != theirs:
                mismatches.append((cuts, ours, theirs))
        return mismatches

    assert asyncio.run(run()) == []


@pytest.mark.parametrize("sizes", [[65536], [MiB - 100, 50, 50, 50, 3000], [MiB + 200, 1, 1, 1, 999],
                                   [1000, MiB, 7, 3 * MiB], [4 * MiB]])
def test_parse_form_big_files_in_any_chunking(sizes):
    """Files that cross the spool size, cut so that small pieces follow the
    spill to disk (those must queue behind the thread pool's writes)."""
    body = mp(part("f", BIG + BIG[:5000], "a.bin"), part("n", b"x"), part("g", BIG[::-1] * 2, "b.bin"),
              part("h", b"small", "c.bin"))
    chunks, pos, i = [], 0, 0
    while pos < len(body):
        n = sizes[i % len(sizes)]
        chunks.append(body[pos:pos + n])
        pos += n
        i += 1

    async def run():
        ours = await outcome(parse_form, request_for(chunks, ct()))
        theirs = await outcome(lambda r: r.form(), request_for(chunks, ct()))
        return ours, theirs
    ours, theirs = asyncio.run(run())
    assert ours[0] == "form" and [x[10] for x in ours[1] if x[1] == "file"] == [False, False, True]
    assert ours == theirs


def test_the_reproduction_is_active_on_the_starlette_it_was_verified_against():
    # other Starlette versions keep Starlette's own parser (next test)
    import starlette

    from celeris.native.forms import starlette_matches
    assert starlette_matches() or starlette.__version__ != "1.10.0"


def test_unknown_starlette_keeps_its_own_parser(monkeypatch):
    import celeris.native.forms as forms
    from celeris.native.runner import make_form_decoder
    monkeypatch.setattr(forms, "_matches", [False])
    called = []

    async def fake_form():
        called.append(1)
        return await StarletteRequest.form(req)

    req = request_for([mp(part("a", b"1"))], ct())
    req.form = fake_form

    class Stack:
        def push_async_callback(self, cb):
            pass

    form = asyncio.run(make_form_decoder()(req, Stack()))
    assert called == [1] and form.multi_items() == [("a", "1")]


def test_parse_form_caches_like_request_form():
    async def run():
        req = request_for([mp(part("a", b"1"))], ct())
        first = await parse_form(req)
        assert await req.form() is first          # Starlette's request.form() sees the same form
        assert await parse_form(req) is first
    asyncio.run(run())


def test_failed_parse_closes_the_spool_files(monkeypatch):
    made = []
    import celeris.native.forms as forms
    real = forms.SpooledTemporaryFile

    def spy(*a, **k):
        f = real(*a, **k)
        made.append(f)
        return f
    monkeypatch.setattr(forms, "SpooledTemporaryFile", spy)
    body = mp(part("f", BIG, "a.bin"), part("g", b"x", "b.bin"), part(None, b"x"))

    async def run():
        return await outcome(parse_form, request_for([body[i:i + 65536] for i in range(0, len(body), 65536)], ct()))
    assert asyncio.run(run()) == ("error", 400, 'The Content-Disposition header field "name" must be provided.')
    assert made and all(f.closed for f in made)


# ---- a ~100 MB upload over a socket: bounded server memory ----

def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))


def upload(addr, size: int, block: bytes) -> dict:
    pre = (b'--' + B.encode() + b'\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
           b"Content-Type: application/octet-stream\r\n\r\n")
    post = b"\r\n--" + B.encode() + b"--\r\n"
    head = (f"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary={B}\r\n"
            f"Content-Length: {len(pre) + size + len(post)}\r\n\r\n").encode()
    with Conn(addr, timeout=120) as c:
        c.send(head + pre)
        left = size
        while left:
            piece = block[:min(left, len(block))]
            c.sock.sendall(piece)
            left -= len(piece)
        c.send(post)
        r = c.read_response("POST")
    assert r.status == 200, r.body[:300]
    return json.loads(r.body)


def test_100mb_upload_keeps_server_rss_bounded():
    env = None
    if os.environ.get("CELERIS_EXPECT_SANITIZED"):
        # under ASan (make pytest-asan) freed blocks wait in its quarantine
        # (256 MiB by default) and count as RSS: keep it small for this server
        env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"}
    proc = ServerProcess("upload_app:app", env=env).wait_started()
    try:
        with Conn(proc.addr) as c:
            pid = c.request("GET", "/pid").json()["pid"]
        block = hashlib.sha256(b"seed").digest() * (MiB // 32)
        size = 100 * MiB
        upload(proc.addr, 3 * MiB, block)                   # warm-up: imports, thread pool
        base = rss_kib(pid)
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")                                # reset VmHWM to the current RSS
            peak = hwm_kib
        except OSError:
            peak = rss_kib
        got = upload(proc.addr, size, block)
        h = hashlib.sha256()
        for _ in range(size // len(block)):
            h.update(block)
        assert got == {"size": size, "sha256": h.hexdigest(), "filename": "big.bin", "rolled": True}
        grown = max(peak(pid), rss_kib(pid)) - base
        assert grown < 20 * 1024, f"server RSS grew {grown} KiB during a 100 MiB upload"
    finally:
        proc.stop()


def test_upload_socket_split_anywhere():
    """Parts and delimiters cut across TCP segments arrive intact."""
    proc = ServerProcess("upload_app:app").wait_started()
    try:
        body = mp(part("file", b"a\r\n--bn" * 5000 + b"\r\n--bnX", "s.bin"))
        head = (f"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary={B}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with Conn(proc.addr) as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.send(head)
            for i in range(0, len(body), 997):
                c.send(body[i:i + 997])
            r = c.read_response("POST")
        data = b"a\r\n--bn" * 5000 + b"\r\n--bnX"
        assert r.status == 200
        assert json.loads(r.body) == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                      "filename": "s.bin", "rolled": False}
    finally:
        proc.stop()


def spool_fds(pid: int) -> list[str]:
    """The server's open files that are unlinked temporary files (what a
    rolled-over SpooledTemporaryFile is)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.endswith("(deleted)"):
            out.append(target)
    return out


def test_client_gone_mid_upload_leaves_no_spool_file():
    """A client that disconnects inside a file part past the spool size: the
    spool file (on disk by then) is closed, the server keeps serving."""
    proc = ServerProcess("upload_app:app").wait_started()
    try:
        with Conn(proc.addr) as c:
            pid = c.request("GET", "/pid").json()["pid"]
        upload(proc.addr, 3 * MiB, bytes(MiB))                 # warm-up
        deadline = time.monotonic() + 10      # closed by FastAPI's exit stack after the response
        while spool_fds(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert spool_fds(pid) == []
        pre = (b'--' + B.encode() + b'\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n')
        head = (f"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary={B}\r\n"
                f"Content-Length: {len(pre) + 10 * MiB}\r\n\r\n").encode()
        with Conn(proc.addr) as c:
            c.send(head + pre + bytes(4 * MiB))
            deadline = time.monotonic() + 10      # the server spools what it got: on disk
            while not spool_fds(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(spool_fds(pid)) == 1
        deadline = time.monotonic() + 10
        while spool_fds(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert spool_fds(pid) == []
        assert upload(proc.addr, 10, b"0123456789")["size"] == 10
    finally:
        proc.stop()


# ---- over a socket, the body arriving in pieces: the native tier's direct
# feed (MultipartParser.feed_from from the connection buffer, file data
# written to the spool file's descriptor) against Starlette's parser on the
# ASGI tier (--no-native) ----

ROLL_BODY = mp(part("a", bytes(range(256)) * 4096, "exact.bin"),            # exactly 1 MiB: in memory
               part("n", b"field"),
               part("b", (b"0123456789abcdef" * 65536)[::-1] + b"+", "over.bin"),  # 1 MiB + 1: on disk
               part("c", b"x" * (3 * MiB + 17), "big.bin", headers=(b"Content-Type: image/png",)),
               part("d", b"", "empty.bin"),
               part("e", b"\r\n--bn" * 200000, "delim.bin"))       # 1.2 MB of near-delimiters


def _cuts(body: bytes) -> list[list[int]]:
    """Piece boundaries around each file part's 1 MiB rollover and the part
    delimiters, plus even splits."""
    marks = []
    for name in (b"exact.bin", b"over.bin", b"big.bin", b"delim.bin"):
        start = body.index(b"\r\n\r\n", body.index(name)) + 4
        marks += [start, start + 1, start + MiB - 1, start + MiB, start + MiB + 1, start + MiB + 2]
    for m in re.finditer(b"\r\n--" + B.encode(), body):
        marks += [m.start() - 1, m.start() + 2, m.end()]
    marks = sorted({m for m in marks if 0 < m < len(body)})
    return [marks, marks[::3], marks[1::3], list(range(65536, len(body), 65536)),
            list(range(997, len(body), 300007))]


def _send_pieces(addr, body: bytes, cuts: list[int], chunked: bool) -> tuple[int, bytes]:
    te = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    head = (f"POST /describe HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary={B}\r\n"
            f"{te}\r\n\r\n").encode()
    bounds = [0] + cuts + [len(body)]
    with Conn(addr, timeout=60) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(head)
        for a, b in zip(bounds, bounds[1:]):
            piece = body[a:b]
            if chunked:
                piece = b"%x\r\n" % len(piece) + piece + b"\r\n"
            c.sock.sendall(piece)
            time.sleep(0.002)        # the server reads and parses each piece on its own
        if chunked:
            c.send(b"0\r\n\r\n")
        r = c.read_response("POST")
    return r.status, r.body


@pytest.fixture(scope="module")
def upload_servers():
    native = ServerProcess("upload_app:app").wait_started()
    asgi = ServerProcess("upload_app:app", "--no-native").wait_started()
    try:
        yield native, asgi
    finally:
        native.stop()
        asgi.stop()


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_upload_pieces_match_starlette_across_the_rollover(upload_servers, chunked):
    native, asgi = upload_servers
    want = _send_pieces(asgi.addr, ROLL_BODY, [], chunked)
    assert want[0] == 200
    described = json.loads(want[1])
    assert [x[10] for x in described if x[1] == "file"] == [True, False, False, True, False]
    for cuts in _cuts(ROLL_BODY):
        assert _send_pieces(native.addr, ROLL_BODY, cuts, chunked) == want, cuts


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_upload_pieces_errors_match_starlette(upload_servers, chunked):
    """A parse error after the direct feed took over (a part with no name
    past a rolled-over file; a broken delimiter): the same 400 answer."""
    native, asgi = upload_servers
    bodies = [mp(part("f", BIG * 2, "a.bin"), part(None, b"x")),
              mp(part("f", BIG * 2, "a.bin"), close=False)[:-2] + b"\r\n--" + B.encode() + b"Z\r\n"]
    for body in bodies:
        want = _send_pieces(asgi.addr, body, [], chunked)
        assert want[0] in (200, 400)
        for cuts in ([65536, 2 * MiB], list(range(100000, len(body), 100000))):
            assert _send_pieces(native.addr, body, cuts, chunked) == want, cuts


def test_direct_feed_framing_error_and_disconnect(upload_servers):
    """A bad chunk-size line after the direct feed took over is answered as
    before (400, connection closed), a client that leaves mid-file leaves no
    spool file, and the server keeps serving."""
    native, _ = upload_servers
    with Conn(native.addr) as c:
        pid = c.request("GET", "/pid").json()["pid"]
    pre = b"--" + B.encode() + b'\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
    head = (f"POST /describe HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary={B}\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n").encode()
    with Conn(native.addr) as c:
        c.send(head + b"%x\r\n" % len(pre) + pre + b"\r\n")
        for _ in range(3):
            c.send(b"100000\r\n" + bytes(MiB) + b"\r\n")
            time.sleep(0.01)
        c.send(b"zz\r\n")
        r = c.read_response("POST")
        assert r.status == 400
    with Conn(native.addr) as c:
        c.send(head + b"%x\r\n" % len(pre) + pre + b"\r\n")
        for _ in range(3):
            c.send(b"100000\r\n" + bytes(MiB) + b"\r\n")
            time.sleep(0.01)
    from celeris.native.forms import starlette_matches

    if starlette_matches():
        # Celeris's parser (the direct feed) closes its spool files itself; with
        # a Starlette whose parsing it does not reproduce, Starlette's parser
        # runs and its files wait for the garbage collector, as on the ASGI tier
        deadline = time.monotonic() + 10
        while spool_fds(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert spool_fds(pid) == []
    assert _send_pieces(native.addr, mp(part("f", b"ok", "f.txt")), [5], False)[0] == 200


def test_parse_form_rollover_cuts_match_starlette():
    """parse_form over a plain receive() (feed(chunk, fd)), the body cut at
    and around each file's 1 MiB rollover: what Starlette's Request.form()
    yields (contents, size, position, spool state)."""
    async def run():
        bad = []
        for cuts in _cuts(ROLL_BODY):
            bounds = [0] + cuts + [len(ROLL_BODY)]
            chunks = [ROLL_BODY[a:b] for a, b in zip(bounds, bounds[1:])]
            ours = await outcome(parse_form, request_for(chunks, ct()))
            theirs = await outcome(lambda r: r.form(), request_for(chunks, ct()))
            if ours != theirs:
                bad.append(cuts[:5])
        return bad
    assert asyncio.run(run()) == []


def test_feed_writes_a_rolled_part_to_the_fd(tmp_path):
    """MultipartParser.feed(chunk, fd): the data of the part in progress goes
    to fd (reported as an int), a part that starts in the chunk comes back
    as bytes; an fd with no file part in progress is refused."""
    from celeris._celeris import MultipartParser
    p = MultipartParser(B.encode())
    body = mp(part("f", b"A" * 5000, "a.bin"), part("g", b"B" * 10, "b.bin"))
    cut = body.index(b"A") + 100
    first = p.feed(body[:cut])
    assert first[0][:2] == (b"f", b"a.bin") and first[1] == b"A" * 100
    with open(tmp_path / "spool", "w+b") as f:
        rest = p.feed(body[cut:], f.fileno())
        f.seek(0)
        assert f.read() == b"A" * 4900
    assert rest[0] == 4900 and rest[1] is None and rest[2][:2] == (b"g", b"b.bin")
    assert rest[3:] == [b"B" * 10, None]
    with pytest.raises(ValueError):
        MultipartParser(B.encode()).feed(b"", 1)


def test_concurrent_uploads_past_the_writer_thread_cap(upload_servers):
    """More concurrent rolled-over uploads than spool-writer threads (16):
    the rest write from the loop's thread; every file arrives intact."""
    import concurrent.futures
    native, _ = upload_servers
    n = 20

    def one(i: int) -> bool:
        data = hashlib.sha256(b"%d" % i).digest() * (3 * MiB // 32) + b"%d" % i
        body = mp(part("f", data, f"f{i}.bin"))
        status, got = _send_pieces(native.addr, body, list(range(262144, len(body), 262144)), i % 2 == 1)
        d = json.loads(got)
        return status == 200 and d[0][3] == len(data) and d[0][8] == hashlib.sha256(data).hexdigest()

    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        assert all(ex.map(one, range(n)))


def test_part_end_waits_for_the_spool_writer_in_memory():
    """On an in-memory connection: a 4 MiB read is handed to the spool writer
    and the closing delimiter, fed at once, is parsed while the writer is
    still at it (a feed with no data for the part, just its end); the file
    the endpoint reads back must be whole -- the part's end waits for the
    write before the rewind.  (Without that wait the write landed at offset
    0 after the rewind: a short, scrambled file.)"""
    from celeris import _celeris
    from celeris.server import task_factory

    app = FastAPI()

    @app.post("/up")
    async def up(file: UploadFile):
        data = await file.read()
        return {"size": file.size, "len": len(data), "sha": hashlib.sha256(data).hexdigest()}

    first = bytes(range(256)) * (2 * MiB // 256)            # rolls the spool over
    second = hashlib.sha256(b"w").digest() * (4 * MiB // 32)
    pre = b"--" + B.encode() + b'\r\nContent-Disposition: form-data; name="file"; filename="m.bin"\r\n\r\n'
    post = b"\r\n--" + B.encode() + b"--\r\n"
    head = (f"POST /up HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary={B}\r\n"
            f"Content-Length: {len(pre) + len(first) + len(second) + len(post)}\r\n\r\n").encode()
    from celeris import native
    from celeris.native import runtime
    native_app, _ = native.build(app, runtime=runtime)

    async def run() -> bytes:
        loop = asyncio.get_running_loop()
        core = _celeris.Server(lambda scope, cycle: None, loop, date_header=False, server_header=False,
                               native=native_app, task_factory=task_factory(loop))
        conn = core.memory_conn(client=["t", 1], server=["t", 80])
        try:
            conn.feed(head + pre + first)
            await asyncio.sleep(0.05)           # parsed, rolled over, waiting for more
            conn.feed(second)
            for _ in range(3):
                await asyncio.sleep(0)          # fed from the buffer: handed to the writer
            conn.feed(post)
            out = b""
            for _ in range(500):
                out += conn.take()
                if b"}" in out:
                    break
                await asyncio.sleep(0.01)
            return out
        finally:
            conn.close()
            core.close()

    for _ in range(3):
        out = asyncio.run(run())
        body = json.loads(out.split(b"\r\n\r\n", 1)[1])
        data = first + second
        assert body == {"size": len(data), "len": len(data), "sha": hashlib.sha256(data).hexdigest()}
