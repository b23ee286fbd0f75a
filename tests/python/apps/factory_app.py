"""An application factory, for --factory."""


def create_app():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"7")]})
        await send({"type": "http.response.body", "body": b"factory"})
    return app
