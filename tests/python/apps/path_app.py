"""A FastAPI app echoing the path parameter it was routed with (the native
tier's raw-path fast path vs its percent-decoding path)."""
from fastapi import FastAPI

app = FastAPI()


@app.get("/p/{rest:path}")
async def echo(rest: str):
    return {"rest": rest}
