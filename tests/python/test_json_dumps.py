"""_celeris.json_dumps against the reference it replaces: Starlette's
JSONResponse.render, i.e. json.dumps(obj, ensure_ascii=False, allow_nan=False,
indent=None, separators=(",", ":")).encode("utf-8").

Random trees come from a seeded generator (reproducible, no extra test
dependency); every case compares bytes on success and exception type and
message on failure.  See docs/json.md for the contract.
"""
from __future__ import annotations

import collections
import decimal
import enum
import json
import math
import random
import struct
import sys

import pytest
from starlette.responses import JSONResponse

from celeris import _celeris


def dumps(obj):
    fn = getattr(_celeris, "json_dumps", None)
    assert fn is not None, (
        "celeris._celeris.json_dumps is missing: wire src/binding/json_encode.c "
        "into module.c (see docs/json.md)"
    )
    return fn(obj)


def reference(obj) -> bytes:
    return json.dumps(
        obj, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def outcome(fn, obj):
    try:
        return ("ok", fn(obj))
    except Exception as exc:  # noqa: BLE001 - the exception is the result
        return (type(exc), str(exc))


def same(obj) -> None:
    assert outcome(dumps, obj) == outcome(reference, obj)


# ---- random trees ----

ALPHABET = (
    [chr(c) for c in range(0x20)]                          # controls
    + list(' "\\/\x7f azAZ09{}[]:,')
    + ["é", "ÿ", "\x80", "\xa0", "€", "\u2028", "\u2029", "中", "\ufeff", "\uffff"]
    + ["😀", "𝄞", "\U0010ffff"]
)


def rand_str(rng: random.Random) -> str:
    n = rng.choice([0, 1, 2, 5, 10, 40])
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def rand_int(rng: random.Random) -> int:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randint(-1000, 1000)
    if kind == 1:
        return rng.choice([2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64, 2**64 - 1, 0, -1])
    if kind == 2:
        return rng.randint(-(2**64), 2**64)
    if kind == 3:
        return rng.randint(-(10**300), 10**300)
    return rng.getrandbits(rng.randint(1, 200)) * rng.choice([1, -1])


def rand_float(rng: random.Random) -> float:
    kind = rng.randrange(7)
    if kind == 0:                                          # any finite bit pattern
        while True:
            x = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
            if math.isfinite(x):
                return x
    if kind == 1:                                          # subnormal
        return struct.unpack("<d", rng.getrandbits(52).to_bytes(8, "little"))[0]
    if kind == 2:                                          # short decimal
        return float(f"{rng.randint(0, 10**rng.randint(1, 17))}e{rng.randint(-30, 30)}")
    if kind == 3:
        return rng.choice([0.0, -0.0, 1e16, 1e-5, 1e-4, 9999999999999998.0, 5e-324,
                           1.7976931348623157e308, 2.2250738585072014e-308, 0.1, 100.0])
    if kind == 4:
        return float(rng.randint(-(2**60), 2**60))
    if kind == 5:
        return math.ldexp(1.0, rng.randint(-1074, 1023)) * rng.choice([1, -1])
    return rng.uniform(-1e6, 1e6)


def rand_key(rng: random.Random):
    kind = rng.randrange(8)
    if kind < 4:
        return rand_str(rng)
    if kind == 4:
        return rand_int(rng)
    if kind == 5:
        return rand_float(rng)
    return rng.choice([True, False, None])


def rand_tree(rng: random.Random, depth: int = 0):
    kind = rng.randrange(10 if depth < 5 else 7)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind in (1, 2):
        return rand_str(rng)
    if kind == 3:
        return rand_int(rng)
    if kind in (4, 5):
        return rand_float(rng)
    if kind == 6:
        return rng.choice(["", [], {}, ()])
    n = rng.randrange(6)
    if kind == 7:
        return [rand_tree(rng, depth + 1) for _ in range(n)]
    if kind == 8:
        return tuple(rand_tree(rng, depth + 1) for _ in range(n))
    return {rand_key(rng): rand_tree(rng, depth + 1) for _ in range(n)}


@pytest.mark.parametrize("seed", range(8))
def test_random_trees_match(seed):
    rng = random.Random(seed)
    for _ in range(400):
        same(rand_tree(rng))


def test_render_is_the_reference():
    # Guards the premise: Starlette still renders with exactly these options.
    obj = {"a": [1, 2.5, "é\n"], "b": None}
    assert JSONResponse(obj).body == reference(obj) == dumps(obj)


def test_out_of_memory_raises_memory_error():
    # the output buffer's next allocation: a body larger than the per-thread
    # buffer keeps between calls (64 KiB) must grow it
    _celeris._alloc_fail_after(1)
    try:
        with pytest.raises(MemoryError):
            dumps(["x" * 200_000])
    finally:
        _celeris._alloc_fail_after(0)
    assert dumps(["x"]) == b'["x"]'


def test_returns_bytes():
    assert type(dumps({})) is bytes
    assert dumps(None) == b"null"


# ---- scalars ----

@pytest.mark.parametrize("s", [
    "", "plain", '"\\/', "\b\f\n\r\t", "\x00\x01\x1f\x7f", "é€😀", "\u2028\u2029",
    "ÿ" * 3, "a" * 100_000, ("x\n\"é€😀" * 5000), "\U0010ffff\ufeff",
])
def test_strings(s):
    same(s)
    same([s, {s: s}])


def test_every_code_point_below_0x3000_and_some_astral():
    same("".join(chr(c) for c in range(0xD800)))
    same([chr(c) for c in range(0x3000)])
    same("".join(chr(c) for c in range(0xE000, 0x10000)) + "\U0001F600\U00010000")


@pytest.mark.parametrize("n", [
    0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64,
    10**100, -(10**100), 10**4000,
])
def test_ints(n):
    same(n)
    same({n: n})


def test_int_digit_limit_error_matches():
    # Python >= 3.11 (and 3.10.7+) limits int->str conversion: the same
    # ValueError as json.dumps; without the limit, the same digits.
    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
    big = 10 ** ((limit or 4300) + 5)
    kind, message = outcome(dumps, [big])
    assert kind == (ValueError if limit else "ok")
    assert (kind, message) == outcome(reference, [big])
    assert outcome(dumps, {big: 1}) == outcome(reference, {big: 1})


@pytest.mark.parametrize("x", [
    0.1, 1e16, 1e-5, 123456789012345678.0, 5e-324, 1.7976931348623157e308, -0.0,
    0.30000000000000004, 1e22, 9007199254740993.0, 2.5, 100.0, 1e-4, 1e15, 1.5e-5,
    1e-7, 2.2250738585072014e-308, 9999999999999998.0, 0.0, 1 / 3,
])
def test_floats(x):
    same(x)
    same({x: x})


def test_many_random_floats():
    rng = random.Random(1234)
    floats = [rand_float(rng) for _ in range(20000)]
    assert dumps(floats) == reference(floats)


# ---- dict keys ----

def test_key_coercions():
    same({True: 1, False: 2, None: 3, 1.5: 4, 7: 5, -3: 6, 2**70: 7, 1e16: 8, -0.0: 9})
    same({1: "int", "1": "str"})        # json keeps both, as strings
    same({1.0: "x"})                     # "1.0", not "1"


@pytest.mark.parametrize("key", [(1, 2), b"bytes", frozenset(), object()])
def test_unsupported_key_types(key):
    kind, message = outcome(dumps, {key: 1})
    assert kind is TypeError and message.startswith("keys must be str, int, float, bool or None")
    assert (kind, message) == outcome(reference, {key: 1})


# ---- errors, same type and message as json.dumps + encode ----

@pytest.mark.parametrize("obj", [
    float("nan"), float("inf"), float("-inf"), [1, float("nan")], {"a": float("inf")},
    {float("nan"): 1}, {float("-inf"): 1}, ((float("nan"),),),
])
def test_non_finite_floats(obj):
    kind, _ = outcome(dumps, obj)
    assert kind is ValueError
    same(obj)


class Color(enum.Enum):
    RED = 1


@pytest.mark.parametrize("obj", [
    object(), {1, 2}, b"bytes", bytearray(b"x"), decimal.Decimal("1.5"), Color.RED,
    1j, range(3), [1, {"a": object()}], len,
])
def test_unserializable_types(obj):
    kind, message = outcome(dumps, obj)
    assert kind is TypeError and message.endswith("is not JSON serializable")
    same(obj)


def test_first_error_in_document_order_wins():
    same([object(), float("nan")])
    same([float("nan"), object()])
    same({"a": float("nan"), (1,): 2})
    same({(1,): float("nan")})


@pytest.mark.parametrize("obj", [
    "\ud800", "a\udc80b", "\ud83d\ude00", ["ok", "x\udfff"], {"\ud800": 1},
    {"k": ["é", "\ud800\ud800z", "\udc00"]},
])
def test_lone_surrogates(obj):
    mine, ref = _raised(dumps, obj), _raised(reference, obj)
    assert type(mine) is type(ref) is UnicodeEncodeError
    assert str(mine) == str(ref)
    assert (mine.encoding, mine.object, mine.start, mine.end, mine.reason) == (
        ref.encoding, ref.object, ref.start, ref.end, ref.reason)


def test_surrogate_loses_to_later_json_errors():
    # json.dumps builds the whole text before .encode() sees the surrogate.
    same(["\ud800", float("nan")])
    same(["\ud800", object()])
    same({"\ud800": {(1,): 1}})


def _raised(fn, obj):
    try:
        fn(obj)
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError("no exception")


def test_cycles():
    a = []
    a.append(a)
    d = {}
    d["self"] = d
    indirect = {"k": [1, 2]}
    indirect["k"].append({"back": indirect})
    for obj in (a, d, indirect, [1, [2, a]]):
        kind, message = outcome(dumps, obj)
        assert (kind, message) == (ValueError, "Circular reference detected")
        same(obj)


def test_deep_nesting():
    ok = []
    for i in range(400):
        ok = [i, ok] if i % 2 else {"k": ok, "i": i}
    same(ok)
    deep = []
    for _ in range(100_000):
        deep = [deep]
    assert outcome(dumps, deep)[0] is RecursionError
    assert outcome(reference, deep)[0] is RecursionError


# ---- deliberate difference: only exact types are encoded ----

class MyStr(str):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyDict(dict):
    pass


class MyList(list):
    pass


class MyTuple(tuple):
    pass


class StrColor(str, enum.Enum):
    RED = "red"


@pytest.mark.parametrize("obj", [
    MyStr("x"), MyInt(1), MyFloat(1.5), MyDict(a=1), MyList([1]), MyTuple((1,)),
    StrColor.RED, collections.OrderedDict(a=1), collections.defaultdict(list),
    [1, MyStr("nested")],
])
def test_subclasses_are_refused(obj):
    # json.dumps accepts these; jsonable_encoder may not pass them through
    # unchanged, so the native tier must fall back to FastAPI for them.
    kind, message = outcome(dumps, obj)
    assert kind is TypeError
    leaf = obj[1] if isinstance(obj, list) and len(obj) == 2 else obj
    assert message == f"Object of type {type(leaf).__name__} is not JSON serializable"


@pytest.mark.parametrize("key", [MyStr("k"), MyInt(1), MyFloat(1.0), StrColor.RED])
def test_subclass_keys_are_refused(key):
    kind, message = outcome(dumps, {key: 1})
    assert kind is TypeError
    assert message == (
        f"keys must be str, int, float, bool or None, not {type(key).__name__}"
    )


# ---- the small flat-dict path (json_encode.c encode_small) ----
#
# json_dumps writes an exact dict of plain ASCII str keys and str / 64-bit
# int / bool / None values itself, without the general encoder; anything
# else goes to the general encoder from the start.  Both must give
# json.dumps's bytes or its error, and the path must be taken exactly where
# it applies.

SMALL_CAP = 512


def _plain_ascii(s) -> bool:
    return type(s) is str and all(0x20 <= ord(c) < 0x80 and c not in '"\\' for c in s)


def small_applies(obj) -> bool:
    """Whether the small path takes obj (text well inside its buffer)."""
    if type(obj) is not dict:
        return False
    for k, v in obj.items():
        if not _plain_ascii(k) or k.startswith("_sa"):
            return False
        if not (_plain_ascii(v) or v is None or v is True or v is False
                or (type(v) is int and -(2**63) <= v < 2**63)):
            return False
    return len(reference(obj)) < SMALL_CAP - 64


SMALL_KEYS = ["", "a", "hello", "item_id", "x" * 7, "y" * 8, "z" * 9, "k" * 17, "with space",
              "_s", "_sa", "_sax", "sa_", "q\"", "b\\s", "tab\t", "nl\n", "\x00", "\x1f", "\x7f",
              "é", "中", "😀", "\ud800", 1, -1, 2**64, 1.5, True, False, None]
SMALL_VALUES = ["", "w", "world", "x" * 8, "y" * 16, "z" * 33, "a\"b", "c\\d", "\x01", "\x7f",
                "é", "€", "😀", "\ud800", "\udfff", 0, 1, -1, 7, 2**63 - 1, -(2**63), 2**63,
                -(2**63) - 1, 10**30, True, False, None, 1.5, float("nan"), float("inf"),
                [], {}, [1], {"a": 1}, (1,), b"x"]


def rand_small(rng: random.Random):
    n = rng.choice([0, 1, 1, 2, 3, 5, 8, 20])
    plain = rng.random() < 0.5
    d = {}
    for _ in range(n):
        if plain:
            k = "".join(rng.choice("abcxyz_ 09-./:{}") for _ in range(rng.randrange(12)))
            v = rng.choice([rng.randint(-(2**63), 2**63 - 1), rng.randint(-9, 99), None, True,
                            False, "".join(rng.choice("hello world!~#") for _ in range(rng.randrange(40)))])
        else:
            k = rng.choice(SMALL_KEYS)
            v = rng.choice(SMALL_VALUES)
        d[k] = v
    return d


def check_small(obj) -> None:
    fast = _celeris._json_dumps_small(obj)
    if small_applies(obj):
        assert fast == reference(obj)
    elif fast is not None:
        # only a long text near the buffer's size may go either way
        assert fast == reference(obj) and len(fast) >= SMALL_CAP - 64
    same(obj)


@pytest.mark.parametrize("key", SMALL_KEYS)
@pytest.mark.parametrize("value", SMALL_VALUES)
def test_small_dict_members(key, value):
    check_small({key: value})
    check_small({"first": 1, key: value, "last": None})


def test_small_dicts_random():
    rng = random.Random(20261207)
    taken = 0
    for _ in range(4000):
        obj = rand_small(rng)
        check_small(obj)
        taken += _celeris._json_dumps_small(obj) is not None
    assert taken > 1000


def test_small_dict_size_limit():
    # around the stack buffer's size: either path, always json.dumps's bytes
    for n in range(SMALL_CAP - 80, SMALL_CAP + 20):
        check_small({"k": "v" * n})
        check_small({"k" * n: 1})
        check_small({str(i): 2**63 - 1 for i in range(n // 24)})
    assert _celeris._json_dumps_small({"k": "v" * 600}) is None


def test_small_path_leaves_other_objects():
    for obj in [[], [1], "s", 1, None, {"a": {}}, {"a": []}, {"a": 1.0}]:
        assert _celeris._json_dumps_small(obj) is None
        same(obj)
    assert _celeris._json_dumps_small({}) == b"{}"
    # subclasses are refused by json_dumps (test_subclasses_are_refused): by
    # the general encoder, never written by the small path
    for obj in [{"a": MyStr("s")}, {"a": MyInt(3)}, {"a": StrColor.RED}, {MyStr("k"): 1},
                MyDict(a=1), collections.OrderedDict(a=1)]:
        assert _celeris._json_dumps_small(obj) is None
        assert outcome(dumps, obj)[0] is TypeError


def test_small_dict_recursion_limit():
    # at the recursion limit the small path steps aside: the general
    # encoder's guard raises json's RecursionError
    def nest(n):
        if n:
            return nest(n - 1)
        return outcome(dumps, {"a": 1})

    limit = sys.getrecursionlimit()
    here, f = 0, sys._getframe()
    while f:
        here, f = here + 1, f.f_back
    seen = set()
    sys.setrecursionlimit(here + 60)
    try:
        for depth in range(0, 100):
            try:
                got = nest(depth)
            except RecursionError:
                break
            assert got == ("ok", b'{"a":1}') or got[0] is RecursionError
            seen.add(got[0])
    finally:
        sys.setrecursionlimit(limit)
    assert seen == {"ok", RecursionError}
