"""Example app for `make run`: a small FastAPI app."""
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI(title="Celeris example")


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/")
async def root():
    return {"hello": "world"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item) -> Item:
    return item
