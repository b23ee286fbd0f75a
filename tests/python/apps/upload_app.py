"""A large multipart upload over a real socket (tests/python/test_native_multipart.py)."""
import hashlib
import os

from fastapi import FastAPI, UploadFile

app = FastAPI()


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
