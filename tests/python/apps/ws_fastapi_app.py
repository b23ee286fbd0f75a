"""A FastAPI app with WebSocket routes (path/query params, Depends,
WebSocketDisconnect, denial through an exception before accept)."""
from fastapi import Depends, FastAPI, Query, WebSocket, WebSocketDisconnect, WebSocketException, status

app = FastAPI()
DISCONNECTS: list[int] = []


def get_token(token: str = Query(...)) -> str:
    return token


@app.get("/")
def root():
    return {"ok": True}


@app.get("/disconnects")
def disconnects():
    return DISCONNECTS


@app.websocket("/items/{item_id}")
async def items(websocket: WebSocket, item_id: int, q: str | None = None,
                token: str = Depends(get_token)):
    if token == "bad":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION)
    await websocket.accept()
    await websocket.send_json({"item_id": item_id, "q": q, "token": token})
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_text(f"{item_id}: {data}")
    except WebSocketDisconnect as exc:
        DISCONNECTS.append(exc.code)


@app.websocket("/json")
async def json_echo(websocket: WebSocket):
    await websocket.accept()
    data = await websocket.receive_json()
    await websocket.send_json({"got": data})
    await websocket.close(code=1000)
