"""A large multipart upload over a real socket (tests/python/test_native_multipart.py)."""
import hashlib
import os

from typing import Annotated, Optional

from fastapi import FastAPI, Form, Request, UploadFile
from starlette.datastructures import UploadFile as StarletteUploadFile

app = FastAPI()


@app.post("/describe")
async def describe(request: Request, zz_unused: Annotated[Optional[str], Form()] = None):
    """Everything observable of the parsed form: FastAPI's form decoding (the
    Form parameter) parses it -- with the C parsers on the native tier,
    Starlette's with --no-native -- and request.form() returns that form."""
    out = []
    form = await request.form()
    for k, v in form.multi_items():
        if isinstance(v, str):
            out.append([k, "str", v])
            continue
        assert isinstance(v, StarletteUploadFile)
        pos = v.file.tell()
        data = await v.read()
        end = v.file.tell()
        await v.seek(0)
        out.append([k, "file", v.filename, v.size, v.content_type, pos, end,
                    [[a.decode("latin-1"), b.decode("latin-1")] for a, b in v.headers.raw],
                    hashlib.sha256(data).hexdigest(), len(data), v._in_memory, type(v.file).__name__,
                    type(getattr(v.file, "_file", None)).__name__, getattr(v.file, "_max_size", None)])
    return out


@app.post("/upload")
async def upload(file: UploadFile):
    h = hashlib.sha256()
    while True:
        part = await file.read(1 << 20)
        if not part:
            break
        h.update(part)
    return {"size": file.size, "sha256": h.hexdigest(), "filename": file.filename,
            "rolled": not file._in_memory}


@app.get("/pid")
def pid():
    return {"pid": os.getpid()}
