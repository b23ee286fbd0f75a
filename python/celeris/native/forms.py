"""request.form() for the native tier, parsed by the C form parsers.

`parse_form(request)` returns what Starlette's `Request.form()` (no limit
arguments: max_files=1000, max_fields=1000, max_part_size=1 MiB) returns
for the same body -- the same `FormData` of `str` and `UploadFile` items in
the same order, file parts in `SpooledTemporaryFile(max_size=1 MiB)`s, names,
filenames and values decoded with the Content-Type charset as Starlette does
-- and raises the same `HTTPException(400, <Starlette's message>)`.  The body
is taken from `request.stream()` chunk by chunk; file data goes to its spool
file as it arrives, so an upload is never held in memory: within 1 MiB
through the SpooledTemporaryFile's write (the write that passes 1 MiB rolls
it over to disk, as Starlette's does), past it the C parser writes each
chunk's data of the part straight to the spool file's descriptor (one write
per chunk, the GIL released; the file object is flushed first and seeked
to 0 at the part's end, so its position and contents are Starlette's).

Fallbacks: a multipart body that starts with CR or LF goes to Starlette's own
MultiPartParser (python-multipart skips such a preamble in a way that
depends on how the body was split into chunks; docs/multipart.md); and with
a Starlette whose form parsing is not the one reproduced here
(starlette_matches), the runner calls request.form() itself."""
from __future__ import annotations

import codecs
from contextlib import aclosing
from tempfile import SpooledTemporaryFile
from typing import Any, AsyncGenerator

from starlette.datastructures import FormData, Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from .._celeris import Cycle, MultipartParser, UrlencodedParser

_SPOOL_MAX = MultiPartParser.spool_max_size
_content_type = MultipartParser.content_type


# What this module reproduces, as Starlette's source says it: checked once
# (starlette_matches) so another Starlette version keeps its own parser.
_STARLETTE_MARKERS = (
    'f"Too many files. Maximum number of files is {self.max_files}."',
    'f"Too many fields. Maximum number of fields is {self.max_fields}."',
    'f"Part exceeded maximum size of {int(self.max_part_size / 1024)}KB."',
    'f"Field exceeded maximum size of {int(self.max_part_size / 1024)}KB."',
    "'The Content-Disposition header field \"name\" must be provided.'",
    '"Missing boundary in multipart."',
    '"Invalid multipart data."',
    "SpooledTemporaryFile(max_size=self.spool_max_size)",
    "headers=Headers(raw=self._current_part.item_headers)",
    "_user_safe_decode(self._current_part.data, self._charset)",
    "self._charset = codecs.lookup(charset).name",
    "unquote_plus(self._field_value.decode(\"latin-1\"))",
)
_matches: list = []


def starlette_matches() -> bool:
    """True when the installed Starlette's form parsing is the one parse_form
    reproduces (Starlette 1.x: messages, spool size, limits, decoding)."""
    if not _matches:
        import inspect

        from starlette import formparsers, requests
        try:
            src = inspect.getsource(formparsers)
            req = inspect.getsource(requests.Request._get_form)
        except (OSError, TypeError, AttributeError):
            src = req = ""
        _matches.append(all(m in src for m in _STARLETTE_MARKERS)
                        and MultiPartParser.spool_max_size == 1024 * 1024
                        and "max_files: int | float = 1000" in req
                        and "max_part_size: int = 1024 * 1024" in req
                        and 'if "app" in self.scope' in req)
    return _matches[0]


def _user_safe_decode(src: bytes, codec: str) -> str:
    try:
        return src.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return src.decode("latin-1")


async def parse_form(request: Any) -> FormData:
    """Starlette's `await request.form()` (default limits), cached on the
    request as Starlette caches it."""
    if request._form is None:
        header = request.headers.get("Content-Type")
        media, boundary, charset = _content_type(header.encode("latin-1")) if header else (b"", None, None)
        try:
            if media == b"multipart/form-data":
                request._form = await _multipart(request, boundary, charset)
            elif media == b"application/x-www-form-urlencoded":
                request._form = await _urlencoded(request)
            else:
                request._form = FormData()
        except MultiPartException as exc:
            if "app" in request.scope:
                raise HTTPException(status_code=400, detail=exc.message)
            raise
    return request._form


async def starlette_form(request: Any) -> FormData:
    """Starlette's own request.form(): for a Starlette starlette_matches()
    does not recognise."""
    return await request.form()


async def _urlencoded(request: Any) -> FormData:
    parser = UrlencodedParser()
    items: list = []
    async with aclosing(request.stream()) as stream:
        async for chunk in stream:
            got = parser.feed(chunk)
            if got.__class__ is str:
                raise MultiPartException(got)
            items += got
    got = parser.feed(None)
    if got.__class__ is str:
        raise MultiPartException(got)
    items += got
    return FormData(items)


async def _multipart(request: Any, boundary: bytes | None, charset_param: bytes | None) -> FormData:
    # MultiPartParser.parse's charset and boundary steps, in its order
    charset: Any = "utf-8" if charset_param is None else charset_param.decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "latin-1"
    if boundary is None:
        raise MultiPartException("Missing boundary in multipart.")
    try:
        parser = MultipartParser(boundary)
    except ValueError as exc:
        raise MultiPartException(str(exc)) from None

    sink = _Spooler(charset)
    cycle = getattr(request._receive, "__self__", None)
    # the native tier's receive(), no middleware around it, the body not read before
    direct = cycle.__class__ is Cycle and not hasattr(request, "_body")
    async with aclosing(request.stream()) as stream:
        try:
            first = True
            async for chunk in stream:
                if first:
                    first = False
                    if chunk[:1] in (b"\r", b"\n"):
                        return await _starlette_fallback(request, stream, chunk)
                sink.take(parser.feed(chunk, sink.fd))
                if direct and not request._stream_consumed:
                    break   # the rest is read from the connection's buffer
            else:
                direct = False
            if direct:
                await _feed_direct(request, cycle, parser, sink)
            parser.wait()           # (every part that ended has waited for its writes)
        except BaseException:
            try:
                parser.wait()       # no spool write in flight before the files close
            finally:
                for spool in sink.spools:
                    spool.close()
            raise
    return sink.finish()


class _Spooler:
    """The form being built from the parser's events (MultipartParser.feed)."""

    def __init__(self, charset: str) -> None:
        self.charset = charset
        self.items: list = []
        self.spools: list = []      # every spool file made: closed if the parse fails
        self.upload: Any = None     # the UploadFile of the file part in progress
        self.in_memory = False      # its data still goes through the spool object (within the spool size)
        self.fd = -1                # else its spool file's descriptor: the parser writes the data there

    def take(self, events: Any) -> None:
        if events.__class__ is str:
            raise MultiPartException(events)
        for ev in events:
            cls = ev.__class__
            if cls is int:          # written to fd by the parser
                self.upload.size += ev
            elif cls is bytes:
                # the part's data of this chunk while in memory
                upload = self.upload
                upload.size += len(ev)
                f = upload.file
                f.write(ev)         # past the spool size this rolls it over to disk
                if self.in_memory and f._rolled:
                    self.in_memory = False
                    f.flush()
                    self.fd = f.fileno()
            elif cls is tuple:
                if len(ev) == 2:
                    self.items.append((_user_safe_decode(ev[0], self.charset),
                                       _user_safe_decode(ev[1], self.charset)))
                    continue
                name, filename, headers = ev
                spool = SpooledTemporaryFile(max_size=_SPOOL_MAX)
                self.spools.append(spool)
                self.upload = UploadFile(file=spool, size=0,  # type: ignore[arg-type]
                                         filename=_user_safe_decode(filename, self.charset),
                                         headers=Headers(raw=headers))
                self.items.append((_user_safe_decode(name, self.charset), self.upload))
                self.in_memory = True
                self.fd = -1
            else:   # the file part ended
                self.upload.file.seek(0)
                self.upload = None
                self.in_memory = False
                self.fd = -1

    def finish(self) -> FormData:
        if self.upload is not None:
            # truncated body: Starlette drops the part in progress (it never
            # reaches the form); its spool file is closed here
            self.items.pop()
            self.upload.file.close()
        return FormData(self.items)


async def _feed_direct(request: Any, cycle: Any, parser: Any, sink: _Spooler) -> None:
    """The rest of request.stream() (Starlette's loop: the same end, the same
    ClientDisconnect), its bytes fed to the parser from the connection's
    buffer (MultipartParser.feed_from) instead of one bytes object per
    receive() message."""
    while True:
        events, state = parser.feed_from(cycle, sink.fd)
        sink.take(events)
        if state == 0:
            request._stream_consumed = True
            sink.take(parser.feed(b"", sink.fd))    # stream()'s closing b""
            return
        if state == 1:
            await cycle.body_wait()
            continue
        message = await request._receive()   # what stopped the direct feed
        if message["type"] == "http.request":
            more = message.get("more_body", False)
            if not more:
                request._stream_consumed = True
            body = message.get("body", b"")
            if body:
                sink.take(parser.feed(body, sink.fd))
            if not more:
                sink.take(parser.feed(b"", sink.fd))
                return
        elif message["type"] == "http.disconnect":
            request._is_disconnected = True
            raise ClientDisconnect()


async def _starlette_fallback(request: Any, stream: AsyncGenerator[bytes, None], first: bytes) -> FormData:
    """Starlette's MultiPartParser on the body from its first chunk on."""
    async def rest() -> AsyncGenerator[bytes, None]:
        yield first
        async for chunk in stream:
            yield chunk

    async with aclosing(rest()) as body:
        return await MultiPartParser(request.headers, body).parse()
