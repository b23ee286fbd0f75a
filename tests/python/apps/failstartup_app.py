"""A FastAPI app whose lifespan startup fails."""
from contextlib import asynccontextmanager

from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app):
    raise RuntimeError("startup exploded")
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def root():
    return {"never": "served"}
