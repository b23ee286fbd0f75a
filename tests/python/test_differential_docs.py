"""The docs_src differential harness (tests/differential/docs_apps.py) on a
small stand-in for the sdist's docs_src: it must count what it imports and
skips, compare the tiers, and fail the run on a mismatch."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "differential" / "docs_apps.py"

GOOD = '''
from typing import Annotated
from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel

class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []

app = FastAPI()
items = {}

@app.get("/items/{item_id}")
async def read(item_id: int, q: str | None = None, x_token: Annotated[str, Header()] = "t"):
    return {"item_id": item_id, "q": q, "x": x_token}

@app.post("/items/")
async def create(item: Item):
    items[len(items)] = item          # state: both tiers see the same sequence
    return {"n": len(items), "item": item}

@app.get("/teapot")
def teapot():
    raise HTTPException(418)

@app.get("/file")
async def file():
    return FileResponse("no-such-file.bin")
'''

MISSING_DEP = '''
import celeris_no_such_package
from fastapi import FastAPI
app = FastAPI()
'''

# The task's coroutine is a NativeCall on the native tier and a coroutine on
# the ASGI tier: a deliberate, deterministic difference.
DIFFERENT = '''
import asyncio
from fastapi import FastAPI
app = FastAPI()

@app.get("/who")
async def who():
    return {"coro": type(asyncio.current_task().get_coro()).__name__}
'''


# A header that changes on every request, and a `random` choice: the first is
# unstable (checked where stable), the second equal on both tiers (seeded).
VARYING = '''
import random, time
from fastapi import FastAPI, Response
app = FastAPI()

@app.get("/t")
async def t(response: Response):
    response.headers["x-t"] = str(time.perf_counter_ns())
    return {"pick": random.choice(range(1000))}
'''


def _sdist(tmp_path: Path, modules: dict[str, str]) -> Path:
    src = tmp_path / "fastapi-x"
    for name, text in modules.items():
        f = src / "docs_src" / name
        f.parent.mkdir(parents=True, exist_ok=True)
        (f.parent / "__init__.py").touch()
        f.write_text(text)
    return src


def _run(tmp_path: Path, src: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HARNESS), "--sdist", str(src), "--workdir", str(tmp_path / "work"),
         "--no-extras", "-v"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env=dict(os.environ))


def test_counts_and_passes_when_tiers_agree(tmp_path):
    src = _sdist(tmp_path, {"good/tutorial001.py": GOOD, "needs/tutorial001.py": MISSING_DEP,
                            "plain/tutorial001.py": "x = 1\n"})
    out = _run(tmp_path, src)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "apps found (modules assigning `app`): 2" in text
    assert "imported FastAPI apps:   1" in text
    assert "skipped, missing package: 1 (celeris_no_such_package x1)" in text
    assert "docs_src.needs.tutorial001: celeris_no_such_package" in text
    assert "mismatches: 0" in text
    requests = int(text.split("requests: ")[1].split()[0])
    native = int(text.split("served natively: ")[1].split()[0])
    assert requests > 20 and 0 < native <= requests


def test_mismatch_fails_the_run(tmp_path):
    src = _sdist(tmp_path, {"diff/tutorial001.py": DIFFERENT})
    out = _run(tmp_path, src)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "docs_src.diff.tutorial001: GET /who [valid-min] (served natively)" in out.stdout
    assert "b'{\"coro\":\"coroutine\"}'" in out.stdout
    last = out.stdout.rstrip().splitlines()[-1]
    assert last.startswith("differential-docs: ") and not last.endswith(" 0 failed")


def test_deterministic(tmp_path):
    src = _sdist(tmp_path, {"good/tutorial001.py": GOOD})
    first, second = _run(tmp_path, src), _run(tmp_path, src)
    assert first.returncode == second.returncode == 0
    summary = lambda out: out.stdout[out.stdout.index("apps found"):]  # noqa: E731
    assert summary(first) == summary(second)


def test_time_varying_header_is_unstable_not_a_mismatch(tmp_path):
    src = _sdist(tmp_path, {"vary/tutorial001.py": VARYING})
    out = _run(tmp_path, src)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "docs_src.vary.tutorial001: GET /t [valid-min]" in out.stdout
    assert "mismatches: 0" in out.stdout
