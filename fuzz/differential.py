#!/usr/bin/env python3
"""Differential check of src/core/urlcode.c and src/core/multipart.c against the Python code
whose behaviour they reproduce (`python3 fuzz/differential.py [--cases N] [--seed S]`).

Builds the two modules into a shared library (build/differential/libcelforms.so) and compares,
on generated inputs:

- cel_url_unquote_py with urllib.parse.unquote / unquote_plus of the latin-1 text;
- the cookie iterator + cel_cookie_unquote with starlette.requests.cookie_parser;
- the multipart parser (boundary via cel_mp_param, body fed in the same random pieces) with
  Starlette's MultiPartParser on python-multipart: items, file contents and headers, or the
  error message;
- the urlencoded decoder with Starlette's FormParser;
- the limit edges (1000 fields / files, 1 MiB parts and fields, header size and count).

Known, documented difference (docs/multipart.md): python-multipart skips a CR/LF-led preamble
only within one chunk; cases that cut such a preamble are not compared.  Needs starlette and
python-multipart.  A development tool, not part of the test suite; exits 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import random
import subprocess
import sys
import urllib.parse
from pathlib import Path

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import cookie_parser

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "differential"


def build() -> ctypes.CDLL:
    OUT.mkdir(parents=True, exist_ok=True)
    lib = OUT / "libcelforms.so"
    srcs = [ROOT / "src" / "core" / f for f in ("urlcode.c", "multipart.c", "alloc.c", "errors.c")]
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-shared", "-fPIC",
                    f"-I{ROOT / 'src' / 'core'}", *map(str, srcs), "-o", str(lib)], check=True)
    return ctypes.CDLL(str(lib))


L = build()


class Slice(ctypes.Structure):
    _fields_ = [("p", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class Header(ctypes.Structure):
    _fields_ = [("name", Slice), ("value", Slice)]


class Part(ctypes.Structure):
    _fields_ = [("headers", ctypes.POINTER(Header)), ("nheaders", ctypes.c_size_t),
                ("name", Slice), ("has_filename", ctypes.c_int), ("filename", Slice),
                ("content_type", Slice), ("filename_star", Slice),
                ("filename_star_charset", Slice)]


class Event(ctypes.Structure):
    _fields_ = [("part", Part), ("data", Slice)]


class Field(ctypes.Structure):
    _fields_ = [("name", Slice), ("value", Slice)]


class Cookie(ctypes.Structure):
    _fields_ = [("key", ctypes.c_void_p), ("key_len", ctypes.c_size_t),
                ("value", ctypes.c_void_p), ("value_len", ctypes.c_size_t)]


P = ctypes.c_void_p
for name, args in {
    "cel_mp_parse": [P, P, ctypes.c_size_t, P, P], "cel_mp_free": [P], "cel_mp_done": [P],
    "cel_form_parse": [P, P, ctypes.c_size_t, P, P], "cel_form_finish": [P, P],
    "cel_form_free": [P], "cel_form_new": [P], "cel_cookie_init": [P, P, ctypes.c_size_t],
}.items():
    getattr(L, name).argtypes = args
L.cel_form_new.restype = P

MP_MSG = {-26: "Invalid multipart data.", -27: "Invalid multipart data.",
          -25: "Invalid multipart data.",
          -28: 'The Content-Disposition header field "name" must be provided.',
          -29: "Too many files. Maximum number of files is 1000.",
          -30: "Too many fields. Maximum number of fields is 1000.",
          -31: "Part exceeded maximum size of 1024KB."}
FORM_MSG = {-30: "Too many fields. Maximum number of fields is 1000.",
            -32: "Field exceeded maximum size of 1024KB."}


def sb(s: Slice) -> bytes:
    return ctypes.string_at(s.p, s.len) if s.len else b""


def pieces(body: bytes, cuts) -> list[bytes]:
    out, s = [], 0
    for c in list(cuts) + [len(body)]:
        out.append(body[s:c])
        s = c
    return out


def feed(piece: bytes):
    """A ctypes buffer for piece and its address (None for empty)."""
    if not piece:
        return None, 0
    b = ctypes.create_string_buffer(piece, len(piece))
    return b, ctypes.addressof(b)


def safe_decode(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


# ---- urlcode ----

def c_unquote(b: bytes, plus: int) -> str:
    out = ctypes.create_string_buffer(2 * len(b) + 1)
    n = L.cel_url_unquote_py(b, len(b), out, plus)
    return out.raw[:n].decode("utf-8")


def c_cookies(b: bytes) -> dict:
    it = (ctypes.c_char * 64)()
    buf, base = feed(b)
    L.cel_cookie_init(it, base, len(b))
    c, d = Cookie(), {}
    while L.cel_cookie_next(it, ctypes.byref(c)):
        k = b[c.key - base:c.key - base + c.key_len]
        v = b[c.value - base:c.value - base + c.value_len]
        o = ctypes.create_string_buffer(len(v) + 1)
        n = L.cel_cookie_unquote(v, len(v), o)
        d[k.decode("latin-1")] = o.raw[:n].decode("latin-1")
    return d


URL_ALPHA = [b"%", b"+", b"a", b"F", b"0", b"%C3", b"%A9", b"%E0", b"%80", b"%ED", b"%A0", b"%F0",
             b"%90", b"%F4", b"%FF", b"\xc3", b"\xa9", b"\x85", b"=", b"&", b"%e2%82", b"%AC",
             b"%C0", b"%2"]
COOKIE_ALPHA = [b";", b"=", b" ", b'"', b"\\", b"\\0", b"12", b"7", b"\n", b"\t", b"\xa0", b"\x85",
                b"a", b"\x1c", b'\\"']


def check_urlcode(rng: random.Random, n: int) -> int:
    bad = 0
    for _ in range(n):
        s = b"".join(rng.choice(URL_ALPHA) for _ in range(rng.randint(0, 8)))
        for plus, ref in ((0, urllib.parse.unquote), (1, urllib.parse.unquote_plus)):
            if c_unquote(s, plus) != ref(s.decode("latin-1")):
                bad += 1
                print("unquote mismatch", s, plus)
        c = b"".join(rng.choice(COOKIE_ALPHA) for _ in range(rng.randint(0, 10)))
        want = cookie_parser(c.decode("latin-1"))
        got = c_cookies(c)
        if got != want or list(got) != list(want):
            bad += 1
            print("cookie mismatch", c, got, want)
    return bad


# ---- multipart ----

def c_multipart(body: bytes, ctype: bytes, cuts):
    buf = ctypes.create_string_buffer(len(ctype) + 1)
    n = ctypes.c_size_t()
    if L.cel_mp_param(ctype, len(ctype), b"boundary", 8, buf, len(ctype), ctypes.byref(n)) != 1:
        return ("err", "Missing boundary in multipart.")
    bnd = buf.raw[:n.value]
    mp = ctypes.c_void_p()
    rc = L.cel_mp_new(ctypes.byref(mp), bnd, len(bnd), None)
    if rc:
        return ("err", MP_MSG[rc])
    items, cur, ev, used = [], None, Event(), ctypes.c_size_t()
    try:
        for piece in pieces(body, cuts):
            keep, base = feed(piece)
            off = 0
            while True:
                rc = L.cel_mp_parse(mp, base + off if keep else None, len(piece) - off,
                                    ctypes.byref(used), ctypes.byref(ev))
                off += used.value
                if rc == -1:
                    break
                if rc < 0:
                    return ("err", MP_MSG[rc])
                if rc == 1:
                    p = ev.part
                    hdrs = [(sb(p.headers[i].name).lower(), sb(p.headers[i].value))
                            for i in range(p.nheaders)]
                    cur = [safe_decode(sb(p.name)),
                           safe_decode(sb(p.filename)) if p.has_filename else None, b"", hdrs]
                elif rc == 2:
                    cur[2] += sb(ev.data)
                elif rc == 3:
                    items.append(cur)
                    cur = None
        return ("ok", [(i[0], None, safe_decode(i[2])) if i[1] is None else tuple(i)
                       for i in items])
    finally:
        L.cel_mp_free(mp)


async def starlette_multipart(body: bytes, ctype: bytes, cuts):
    async def stream():
        for p in pieces(body, cuts):
            yield p

    try:
        form = await MultiPartParser(Headers({"content-type": ctype.decode("latin-1")}),
                                     stream()).parse()
    except MultiPartException as e:
        return ("err", e.message)
    items = []
    for k, v in form.multi_items():
        if isinstance(v, UploadFile):
            await v.seek(0)
            items.append((k, v.filename, await v.read(), list(v.headers.raw)))
        else:
            items.append((k, None, v))
    return ("ok", items)


def compare_multipart(body: bytes, ctype: bytes, cuts=()) -> bool:
    got = c_multipart(body, ctype, cuts)
    want = asyncio.run(starlette_multipart(body, ctype, cuts))
    if got != want:
        print("multipart mismatch", repr(body)[:300], ctype, cuts, "\n  C:", str(got)[:300],
              "\n  Starlette:", str(want)[:300])
        return False
    return True


def gen_part(rng: random.Random, b: bytes) -> bytes:
    cd = rng.choice([b'form-data; name="n%d"' % rng.randint(0, 3),
                     b'form-data; name=n1; filename="f.txt"',
                     b"form-data; NAME=\"u\"; filename*=UTF-8''%C3%A9.txt",
                     b'form-data; name="a;b"; filename="x\\"y"', b"form-data; name", b"form-data",
                     b'form-data; name="q"; filename="\\\\srv\\f"',
                     b'form-data;name=  "sp" ;filename=', b'form-data; filename="only"',
                     b'form-data; name="\xc3\xa9"'])
    hs = []
    if rng.random() < 0.9:
        hs.append(rng.choice([b"Content-Disposition", b"content-disposition"]) + b":"
                  + rng.choice([b" ", b"", b"  ", b"\t"]) + cd)
    if rng.random() < 0.3:
        hs.append(b"Content-Type: " + rng.choice([b"text/plain", b"", b"a/b "]))
    if rng.random() < 0.1:
        hs.append(b"X-A: 1")
    if rng.random() < 0.05:
        hs.append(b"Bad Name: 1")
    if rng.random() < 0.05:
        hs.append(b": empty")
    if rng.random() < 0.03:
        hs.extend([b"X: y"] * 9)
    data = rng.choice([b"", b"hello", b"\r\n", b"\r\n--" + b, b"\r\n--" + b + b"x",
                       b"\r\n--" + b + b"-x", b"\r\n--" + b + b"\rx", b"\r", b"\r\r\n", b"--" + b,
                       b"\xff\xfe", b"a" * rng.randint(0, 300)])
    if rng.random() < 0.5:
        data += rng.choice([b"", b"\r", b"\r\n-", b"\r\n--" + b[:2]])
    return b"\r\n".join(hs) + b"\r\n\r\n" + data


def gen_body(rng: random.Random, b: bytes) -> bytes:
    out = rng.choice([b"", b"\r\n", b"\n\r\nxx", b"junk"]) if rng.random() < 0.1 else b""
    out += b"--" + b + b"\r\n"
    n = rng.randint(0, 4)
    for i in range(n):
        out += gen_part(rng, b)
        if i < n - 1:
            sep = rng.choice([b"\r\n", b"\r\n", b" \t\r\n", b" x\r\n", b"--", b"-", b"\r\r\n"])
        else:
            sep = rng.choice([b"--", b"--\r\n", b"--\r\nepi", b"", b"\r\n", b"  \r\n"])
        out += b"\r\n--" + b + sep
    if n == 0:
        out = rng.choice([out, b"--" + b + b"--", b"--" + b + b"-x", b"--" + b + b"\rx"])
    if rng.random() < 0.2 and out:
        k = rng.randrange(len(out))
        out = out[:k] + bytes([rng.choice(b"\r\n-: a\"")]) + out[k + 1:]
    if rng.random() < 0.1 and out:
        k = rng.randrange(len(out))
        out = out[:k] + out[k + 1:]
    return out


def cuts_preamble(body: bytes, cuts) -> bool:
    if not body[:1] or body[:1] not in b"\r\n":
        return False
    dash = body.find(b"-")
    return any(0 < c <= (dash if dash >= 0 else len(body)) for c in cuts)


def check_multipart(rng: random.Random, n: int) -> int:
    bad = 0
    for _ in range(n):
        b = rng.choice([b"XyZ", b"", b"a-b", b"--", b"x" * 70])
        ctype = rng.choice([b"multipart/form-data; boundary=" + b,
                            b'multipart/form-data; boundary="' + b + b'"',
                            b"multipart/form-data; charset=utf-8; boundary=" + b + b" "])
        body = gen_body(rng, b)
        cuts = sorted(rng.sample(range(len(body) + 1), min(len(body) + 1, rng.randint(0, 3))))
        if cuts_preamble(body, cuts):
            continue
        bad += not compare_multipart(body, ctype, cuts)
    return bad


def check_multipart_limits() -> int:
    ct = b"multipart/form-data; boundary=b"

    def fld(i, data=b"v"):
        return b'Content-Disposition: form-data; name="f%d"\r\n\r\n' % i + data + b"\r\n--b"

    def fil(i):
        return b'Content-Disposition: form-data; name="f"; filename="x%d"\r\n\r\nd\r\n--b' % i

    cases = [
        (b"--b\r\n" + b"\r\n".join(fld(i) for i in range(1000)) + b"--", ct),
        (b"--b\r\n" + b"\r\n".join(fld(i) for i in range(1001)) + b"--", ct),
        (b"--b\r\n" + b"\r\n".join(fil(i) for i in range(1001)) + b"--", ct),
        (b"--b\r\n" + fld(0, b"x" * (1 << 20)) + b"--", ct),
        (b"--b\r\n" + fld(0, b"x" * ((1 << 20) + 1)) + b"--", ct),
        (b"--b\r\nX: " + b"v" * 4221 + b"\r\n" + fld(0) + b"--", ct),
        (b"--b\r\nX: " + b"v" * 4222 + b"\r\n" + fld(0) + b"--", ct),
        (b"--b\r\n" + b"X: 1\r\n" * 7 + fld(0) + b"--", ct),
        (b"--b\r\n" + b"X: 1\r\n" * 8 + fld(0) + b"--", ct),
        (b"--b\r\n" + fld(0), b"multipart/form-data"),
        (b"--b\r\n" + fld(0) + b"--", b"multipart/form-data; BOUNDARY=b"),
        (b"--b\r\n" + fld(0) + b"--", b"multipart/form-data; boundary*=b"),
        (b"--" + b"b" * 256 + b"--", b"multipart/form-data; boundary=" + b"b" * 256),
        (b"--" + b"b" * 257 + b"--", b"multipart/form-data; boundary=" + b"b" * 257),
    ]
    return sum(not compare_multipart(body, ctype) for body, ctype in cases)


# ---- urlencoded ----

def c_form(body: bytes, cuts):
    f = L.cel_form_new(None)
    out, used, items = Field(), ctypes.c_size_t(), []
    try:
        for piece in pieces(body, cuts):
            keep, base = feed(piece)
            off = 0
            while True:
                rc = L.cel_form_parse(f, base + off if keep else None, len(piece) - off,
                                      ctypes.byref(used), ctypes.byref(out))
                off += used.value
                if rc == -1:
                    break
                if rc < 0:
                    return ("err", FORM_MSG[rc])
                items.append((sb(out.name).decode(), sb(out.value).decode()))
        rc = L.cel_form_finish(f, ctypes.byref(out))
        if rc < 0:
            return ("err", FORM_MSG[rc])
        if rc == 1:
            items.append((sb(out.name).decode(), sb(out.value).decode()))
        return ("ok", items)
    finally:
        L.cel_form_free(f)


async def starlette_form(body: bytes, cuts):
    async def stream():
        for p in pieces(body, cuts):
            yield p

    try:
        form = await FormParser(Headers({}), stream()).parse()
    except MultiPartException as e:
        return ("err", e.message)
    return ("ok", list(form.multi_items()))


def check_form(rng: random.Random, n: int) -> int:
    alpha = [b"&", b"=", b"a", b"+", b"%20", b"%C3", b"%A9", b"\xc3\xa9", b"%", b"%FF", b"&&"]
    edges = [b"a" * (1 << 20) + b"=", b"a" * (1 << 20) + b"=b",
             b"&".join(b"x=%d" % i for i in range(1000)),
             b"&".join(b"x=%d" % i for i in range(1001)), b"&".join(b"x" for _ in range(1001))]
    bad = 0
    for i in range(n + len(edges)):
        body = edges[i] if i < len(edges) else b"".join(
            rng.choice(alpha) for _ in range(rng.randint(0, 12)))
        cuts = sorted(rng.sample(range(len(body) + 1), min(len(body) + 1, rng.randint(0, 3))))
        got, want = c_form(body, cuts), asyncio.run(starlette_form(body, cuts))
        if got != want:
            bad += 1
            print("form mismatch", body[:100], cuts, str(got)[:200], str(want)[:200])
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    import logging
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    rng = random.Random(args.seed)
    results = {
        "urlcode": check_urlcode(rng, args.cases),
        "multipart": check_multipart(rng, args.cases),
        "multipart limits": check_multipart_limits(),
        "urlencoded": check_form(rng, args.cases),
    }
    for k, v in results.items():
        print(f"{k}: {'ok' if not v else f'{v} mismatches'}")
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
