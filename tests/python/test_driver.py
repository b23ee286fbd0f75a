"""One Driver Task per keep-alive connection (src/binding/driver.c): the
requests of a connection run in one asyncio Task, each in its own contextvars
Context; a request still running after its response (background tasks) does
not hold up the next one; cancellation stays inside its request; the Task
ends with its connection."""
import json

import pytest

from conftest import start_server
from rawhttp import Closed, Conn, wait_until



@pytest.fixture(scope="module", params=["logged", "unlogged"])
def driver_server(request):
    # Without the access log a simple native route's first step runs before
    # its Cycle and NativeCall exist (native_call.c celeris_ncall_first_step):
    # every test here runs both ways.
    srv = start_server("driver_app:app", *(["--no-access-log"] if request.param == "unlogged" else []))
    try:
        yield srv
    finally:
        srv.stop()


def get(c: Conn, path: str) -> dict:
    r = c.request("GET", path)
    assert r.status == 200, (path, r.status, r.body)
    return json.loads(r.body)


def test_requests_on_a_connection_share_a_task_but_not_contextvars(driver_server):
    with Conn(driver_server.addr) as c, Conn(driver_server.addr) as other:
        first = get(c, "/task?set=a")
        second = get(c, "/task?set=b")
        third = get(c, "/sleep") and get(c, "/task")
        elsewhere = get(other, "/task")
    assert first["is_task"] and second["is_task"]
    assert first["var_before"] == second["var_before"] == third["var_before"] == "unset"
    assert first["task"] == second["task"] == third["task"]     # the connection's Task
    assert elsewhere["task"] != first["task"]
    assert first["library"] == "asyncio" and first["anyio_task"]
    assert get(Conn(driver_server.addr), "/sync-task") == {"var": "unset"}


def test_cancellation_inside_a_request_leaves_the_connection_usable(driver_server):
    with Conn(driver_server.addr) as c:
        assert get(c, "/timeout") == {"timed_out": True}
        after = get(c, "/task")
        assert after["cancelling"] == 0
        assert get(c, "/timeout") == {"timed_out": True}


def test_background_work_does_not_hold_up_the_next_request(driver_server):
    # The first request's background task waits for the second request on the
    # same connection: if the connection's Task carried both in turn, the
    # second would never run (the read below would time out).
    with Conn(driver_server.addr, timeout=10) as c:
        assert get(c, "/background") == {"queued": True}
        assert get(c, "/release") == {"released": True}
        wait_until(lambda: get(c, "/done") == {"done": ["background done"]}, timeout=10)
        assert get(c, "/task")["is_task"]


def test_a_request_that_cancels_itself_does_not_take_others_down(driver_server):
    # (the request's Task ends cancelled; its connection is closed unanswered)
    with Conn(driver_server.addr, timeout=10) as c:
        c.send(b"GET /cancel-self HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(Closed):
            c.read_response()
    with Conn(driver_server.addr) as c:
        assert get(c, "/task")["is_task"]
        assert get(c, "/task")["is_task"]


def test_connection_tasks_end_with_their_connections(driver_server):
    with Conn(driver_server.addr) as probe:
        base = get(probe, "/tasks")["tasks"]
        for _ in range(20):
            with Conn(driver_server.addr) as c:
                get(c, "/task")
        wait_until(lambda: get(probe, "/tasks")["tasks"] <= base, timeout=10)


@pytest.mark.parametrize("eager", ["0", "1"])
def test_cancel_of_the_running_request_reaches_its_next_await(eager):
    # With eager steps (the default) a request runs inside server.poll()
    # before its Task is woken; Task.cancel() there must still arrive at the
    # request's next await, and leave the connection's Task usable.
    srv = start_server("driver_app:app", env={"CELERIS_DRIVER_EAGER": eager})
    try:
        with Conn(srv.addr) as c:
            before = get(c, "/task")
            assert get(c, "/cancel-now") == {"caught": True, "args": ["bye"]}
            after = get(c, "/task")
            assert get(c, "/cancel-now") == {"caught": True, "args": ["bye"]}
            assert get(c, "/cancel-awaited") == {"caught": True, "inner_cancelled": True}
            assert get(c, "/sleep") == {"slept": True}
        assert after["cancelling"] == 0
        assert after["task"] == before["task"]
    finally:
        srv.stop()


@pytest.mark.parametrize("flag", ["0", "1"])
def test_switch_off_and_on(flag):
    srv = start_server("driver_app:app", env={"CELERIS_CONN_DRIVER": flag})
    try:
        with Conn(srv.addr) as c:
            a, b = get(c, "/task?set=x"), get(c, "/task")
        assert b["var_before"] == "unset"
        assert (a["task"] == b["task"]) == (flag == "1")
    finally:
        srv.stop()


def _pipelined(c: Conn, paths: list, tail: bytes = b"") -> list:
    c.send(b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in paths) + tail)
    return [c.read_response() for _ in paths]


def test_pipelined_requests_see_their_task_and_leave_none_current(driver_server):
    # A pipelined burst keeps the connection's Task current from one request
    # to the next (driver.c held_task): every kind of request in the burst --
    # finishing at once, suspending, a def endpoint, raising, spawning a Task
    # -- and another connection's burst in the same poll must still see the
    # right task, and the loop must have no current task afterwards (else the
    # next Task step anywhere raises "Cannot enter into task ...").
    burst = ["/task?set=a", "/task", "/spawn?tag=a1", "/sync-task", "/task", "/boom",
             "/task?set=b", "/sleep", "/spawn?tag=a2", "/task"] * 2
    with Conn(driver_server.addr, timeout=10) as c, Conn(driver_server.addr, timeout=10) as o:
        o.send(b"GET /task HTTP/1.1\r\nHost: x\r\n\r\n" * 8)
        # (ends with the start of one more request: the poll ends with input
        # buffered after a finished request)
        answers = _pipelined(c, burst, b"GET /task HTTP/1.1\r\nHo")
        others = [json.loads(o.read_response().body) for _ in range(8)]
        assert [r.status for r in answers] == [500 if p == "/boom" else 200 for p in burst]
        bodies = [json.loads(r.body) for r, p in zip(answers, burst) if p != "/boom"]
        tasks = {b["task"] for b in bodies if "task" in b}
        assert len(tasks) == 1                  # the connection's Task, every time
        assert all(b.get("same", True) for b in bodies)
        assert all(b.get("var_before", "unset") == "unset" and b.get("var", "unset") == "unset"
                   for b in bodies)
        assert all(b["is_task"] and b["library"] == "asyncio" and b["anyio_task"]
                   for b in bodies if "is_task" in b)
        assert {o_["task"] for o_ in others} != tasks and len({o_["task"] for o_ in others}) == 1
        # the spawned Tasks ran as Tasks of their own, and the loop still steps Tasks
        wait_until(lambda: len(get(o, "/spawned")["spawned"]) >= 4, timeout=10)
        assert get(o, "/spawned")["spawned"] == [["a1", True], ["a1", True], ["a2", True], ["a2", True]]
        assert get(o, "/sleep") == {"slept": True}
        c.send(b"st: x\r\n\r\n")
        assert json.loads(c.read_response().body)["task"] in tasks
        assert get(c, "/sleep") == {"slept": True}
