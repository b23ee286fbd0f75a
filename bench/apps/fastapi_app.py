"""The FastAPI app every FastAPI scenario of bench/run.py hits.

Run it under any ASGI server as ``fastapi_app:app`` (with bench/apps on the path).
Routes mirror /work/shared/BENCHMARKS.md: /plain, /sync, /items/{item_id}, POST /items, /chain.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel

app = FastAPI()


@app.get("/plain")
async def plain() -> dict:
    return {"hello": "world"}


@app.get("/sync")
def sync() -> dict:
    return {"hello": "world", "sync": True}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict:
    return {"item_id": item_id, "q": q}


class Item(BaseModel):
    name: str
    price: float
    quantity: int = 1
    tags: list[str] = []


@app.post("/items", response_model=Item)
async def create_item(item: Item) -> Item:
    return item


# /chain: chain -> get_user -> get_db (a yield dependency) -> get_settings.


async def get_settings() -> dict:
    return {"prefix": "bench"}


async def get_db(settings: Annotated[dict, Depends(get_settings)]):
    db = {"name": settings["prefix"] + "-db", "open": True}
    try:
        yield db
    finally:
        db["open"] = False


async def get_user(db: Annotated[dict, Depends(get_db)]) -> dict:
    return {"name": "alice", "db": db["name"]}


@app.get("/chain")
async def chain(user: Annotated[dict, Depends(get_user)]) -> dict:
    return {"user": user["name"], "db": user["db"]}
