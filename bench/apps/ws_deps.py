"""FastAPI WebSocket route with parameters and dependencies, for per-session
instruction counts (bench/ws_instructions.py --sessions): each session is
accepted, sent one text message and closed by the server.  /ws/{room}: path,
query and header parameters, a Depends chain with a yield dependency and a
def dependency; /plain: none.
GET / answers {"hello":"world"} (readiness)."""
from typing import Annotated

from fastapi import Depends, FastAPI, Header, WebSocket

app = FastAPI()


@app.get("/")
async def root():
    return {"hello": "world"}


async def settings() -> dict:
    return {"prefix": "p"}


async def session(s: Annotated[dict, Depends(settings)], limit: int = 10):
    try:
        yield f"{s['prefix']}:{limit}"
    finally:
        pass


def user(token: str = "anon", user_agent: Annotated[str, Header()] = "") -> str:
    return token


@app.websocket("/ws/{room}")
async def room(websocket: WebSocket, room: str, n: int = 1,
               sess: Annotated[str, Depends(session)] = "",
               who: Annotated[str, Depends(user)] = ""):
    await websocket.accept()
    await websocket.send_text(f"{room}:{n}:{sess}:{who}")
    await websocket.close()


@app.websocket("/plain")
async def plain(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text("plain")
    await websocket.close()
