"""An app whose native tier fails to build (celeris.native.build is replaced
by one that raises, as a native-tier bug would): `celeris run` must serve it
on the ASGI tier instead of failing to start."""
from fastapi import FastAPI

from celeris import native


def _broken_build(app, runtime=None):
    raise ValueError("plan: path parameter 'p' not in the template")


native.build = _broken_build

app = FastAPI()


@app.get("/items/{item_id}")
async def item(item_id: int):
    return {"item_id": item_id}
