"""An ASGI app that does not support the lifespan protocol (it raises on it)."""


async def app(scope, receive, send):
    assert scope["type"] == "http", "only http is supported"
    body = b"no lifespan here"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
