"""FastAPI WebSocket echo for the "ws" scenarios: every text message sent back as it came.
GET / answers {"hello":"world"} (readiness)."""
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.get("/")
async def root():
    return {"hello": "world"}


@app.websocket("/ws")
async def echo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
