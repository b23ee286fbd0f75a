"""runner.json_loads: json.loads(bytes) with its no-op steps skipped must
give the same value (types, float bits, key order) or raise the same
exception (type, msg, pos) as json.loads for every input."""
from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from pydantic import BaseModel

from celeris.native.runner import json_loads


class Item(BaseModel):       # (module level: this file has postponed annotations)
    name: str


def outcome(fn, body: bytes):
    try:
        return ("ok", canon(fn(body)))
    except json.JSONDecodeError as exc:
        return ("json", exc.msg, exc.pos, exc.lineno, exc.colno)
    except Exception as exc:                    # e.g. UnicodeDecodeError
        return (type(exc).__name__, str(exc))


def canon(v):
    """A comparable form that keeps what == hides: int vs float vs bool,
    -0.0, NaN, key order."""
    if isinstance(v, bool) or v is None:
        return (type(v).__name__, v)
    if isinstance(v, float):
        return ("float", "nan" if math.isnan(v) else v.hex())
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, str):
        return ("str", v)
    if isinstance(v, list):
        return ("list", [canon(x) for x in v])
    assert type(v) is dict
    return ("dict", [(k, canon(x)) for k, x in v.items()])


def same(body: bytes) -> None:
    assert outcome(json_loads, body) == outcome(json.loads, body), body


CASES = [
    b"{}", b"[]", b"{", b"[", b"{}x", b"{} ", b"{}\n", b"[1,2]  ", b'{"a":1}', b'{"a":1,"a":2}',
    b'{"b":1,"a":2,"b":3}', b"[1e400,-1e400,1.5e-400]", b"[NaN,Infinity,-Infinity]",
    b'["\\ud800"]', b'["\\udc00\\ud800"]', b'["\xed\xa0\x80"]', b'["\xff"]', b'["\xc3\xa9"]',
    b'["a\x01"]', b"[-0,-0.0,0.0,1E5,1e-5,123456789012345678901234567890]", b"{\x00}",
    b"[\x00]", b"[1]\x00", b"\xef\xbb\xbf[1]", b"{]", b"[1,]", b'{"a" 1}', b"[01]", b"[.5]",
    b"[1.]", b"[-]", b"[tru]", b"[true,false,null]", b'{"\\u00e9":"\\n\\t\\"\\\\\\/"}',
    b"[" * 50 + b"]" * 50, b"{" + b"}", b"[\"" + b"x" * 5000 + b"\"]",
]


def test_cases():
    for body in CASES:
        same(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=25)


@settings(max_examples=400, deadline=None)
@given(json_values, st.sampled_from(["", " ", "\n", "\t\r "]), st.booleans())
def test_documents(value, pad, ascii_only):
    text = json.dumps(value if isinstance(value, (list, dict)) else [value], ensure_ascii=ascii_only)
    same(text.encode("utf-8"))
    same((text + pad).encode("utf-8"))
    same((pad + text).encode("utf-8"))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40), st.sampled_from([b"{", b"[", b""]))
def test_any_bytes(tail, head):
    same(head + tail)


def test_patched_json_loads_is_what_runs(monkeypatch):
    # FastAPI's own tests patch json.loads (test_body/test_tutorial001.py): the
    # request handler calls json.loads, so a patched one must be called
    calls = []

    def fake(body):
        calls.append(body)
        raise ValueError("patched")

    monkeypatch.setattr(json, "loads", fake)
    try:
        json_loads(b'{"a": 1}')
    except ValueError as exc:
        assert str(exc) == "patched"
    else:
        raise AssertionError("the patched json.loads did not run")
    assert calls == [b'{"a": 1}']


def test_patched_json_loads_answers_400_on_the_native_tier(monkeypatch):
    from fastapi import FastAPI

    from conftest import native_and_asgi_clients

    app = FastAPI()

    @app.post("/items/")
    async def create(item: Item):
        return item

    n, a = native_and_asgi_clients(app)
    monkeypatch.setattr(json, "loads", lambda body: (_ for _ in ()).throw(Exception()))
    rn, ra = n.post("/items/", json={"name": "x"}), a.post("/items/", json={"name": "x"})
    assert (rn.status_code, rn.content) == (ra.status_code, ra.content) == (400, rn.content)


def test_patched_before_first_use_is_seen_too(monkeypatch):
    # the runner may be imported (and the app compiled) while json.loads is
    # patched: the check is by what the function is, not by an earlier read
    from celeris.native import runner

    monkeypatch.setattr(runner, "_JSON_LOADS", [])
    monkeypatch.setattr(json, "loads", lambda body: "patched")
    assert json_loads(b"[1]") == "patched"
    monkeypatch.undo()
    assert json_loads(b"[1]") == [1]
    assert runner._is_own_json_loads(json.loads)
