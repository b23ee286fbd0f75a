"""asyncio semantics inside the application: each request runs as a real
asyncio Task."""
import sys
import threading

from rawhttp import Conn, build_request, get


def test_asyncio_facts(raw_server):
    facts = get(raw_server.addr, "/asyncio").json()
    assert facts["current_task"] is True
    assert facts["is_task"] is True
    try:
        import sniffio  # noqa: F401
        assert facts["sniffio"] == "asyncio"
    except ImportError:
        pass
    if sys.version_info >= (3, 11):
        assert facts["timeout"] == "fired"
    assert facts["wait_for"] == "fired"
    assert facts["future"] == 42
    assert facts["gather"] == [1, 2]


def test_contextvars_do_not_leak_between_requests_on_one_connection(raw_server):
    with Conn(raw_server.addr) as c:
        r1 = c.request("GET", "/ctx?set=first").json()
        r2 = c.request("GET", "/ctx?set=second").json()
    assert r1 == {"before": "<unset>", "after": "first"}
    assert r2 == {"before": "<unset>", "after": "second"}


def test_contextvars_do_not_leak_between_pipelined_requests(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(b"".join(build_request("GET", f"/ctx?set=v{i}") for i in range(5)))
        for i in range(5):
            assert c.read_response().json() == {"before": "<unset>", "after": f"v{i}"}


def test_contextvars_do_not_leak_between_connections(raw_server):
    results = []

    def worker(i):
        results.append(get(raw_server.addr, f"/ctx?set=t{i}").json())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(results) == 10
    assert all(r["before"] == "<unset>" for r in results)
