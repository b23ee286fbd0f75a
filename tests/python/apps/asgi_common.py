"""Pieces the raw ASGI test apps share (raw_app, ws_app, ws_waiter_app,
files_app).  Not an app itself: importable because the servers put this
folder on sys.path (--app-dir), as do the tests that import an app here."""
from urllib.parse import parse_qs


def jsonable(obj):
    """obj made JSON-serialisable: bytes as latin-1 strings, tuples as lists,
    keys as strings, anything else not JSON as its repr()."""
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    if isinstance(obj, (list, tuple)):
        return [jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return repr(obj)


def query(scope, encoding: str = "utf-8") -> dict[str, str]:
    """The first value of each query-string parameter."""
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode(encoding)).items()}


async def lifespan_ok(receive, send) -> None:
    """Answer the lifespan protocol's startup and shutdown, doing nothing else."""
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return
