"""runner.json_loads: json.loads(bytes) with its no-op steps skipped must
give the same value (types, float bits, key order) or raise the same
exception (type, msg, pos) as json.loads for every input."""
from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from celeris.native.runner import json_loads


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
