"""The app bench/mem.py measures: a file download, and two 100 MB uploads
(streamed into a hash, and as a multipart UploadFile)."""
import hashlib
import os

from fastapi import FastAPI, Request, UploadFile
from starlette.responses import FileResponse

app = FastAPI()


@app.get("/download")
def download(path: str):
    return FileResponse(path)


@app.post("/upload-stream")
async def upload_stream(request: Request):
    h = hashlib.sha256()
    n = 0
    async for part in request.stream():
        h.update(part)
        n += len(part)
    return {"size": n, "sha256": h.hexdigest()}


@app.post("/upload-form")
async def upload_form(file: UploadFile):
    h = hashlib.sha256()
    n = 0
    while True:
        part = await file.read(1 << 20)
        if not part:
            break
        h.update(part)
        n += len(part)
    return {"size": n, "sha256": h.hexdigest(), "filename": file.filename}


@app.get("/pid")
def pid():
    return {"pid": os.getpid()}


@app.post("/upload-form-size")
async def upload_form_size(file: UploadFile):
    """The form is parsed (the file spooled) but not read back: the upload's own cost."""
    return {"size": file.size, "filename": file.filename}
