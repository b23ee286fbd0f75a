#include "errors.h"

const char *cel_strerror(int err)
{
    switch (err) {
    case CEL_OK: return "ok";
    case CEL_EAGAIN: return "incomplete input";
    case CEL_ENOMEM: return "out of memory";
    case CEL_EBADREQ: return "malformed request";
    case CEL_EURITOOLONG: return "request line too long";
    case CEL_EHDRTOOLARGE: return "request header fields too large";
    case CEL_EVERSION: return "HTTP version not supported";
    case CEL_ECLTE: return "both Content-Length and Transfer-Encoding";
    case CEL_EBADCL: return "invalid Content-Length";
    case CEL_EBADTE: return "unsupported Transfer-Encoding";
    case CEL_EBADCHUNK: return "invalid chunked encoding";
    case CEL_EBODYTOOLARGE: return "request body too large";
    case CEL_EHDRVALUE: return "invalid header field";
    case CEL_EMETHOD: return "invalid method";
    case CEL_ETARGET: return "invalid request target";
    case CEL_EIO: return "I/O error";
    case CEL_ECLOSED: return "connection closed";
    case CEL_ESTATE: return "invalid state";
    case CEL_EINVAL: return "invalid argument";
    case CEL_ETIMEOUT: return "timeout";
    case CEL_ERESPLONG: return "Response content longer than Content-Length";
    case CEL_ERESPSHORT: return "Response content shorter than Content-Length";
    case CEL_EHDRNAME: return "Invalid HTTP header name.";
    case CEL_ENOSPC: return "output buffer too small";
    case CEL_EUTF8: return "invalid UTF-8";
    case CEL_EMPBOUNDARY: return "invalid multipart boundary";
    case CEL_EMPSYNTAX: return "Invalid multipart data.";
    case CEL_EMPHEADER: return "multipart part header too large";
    case CEL_EMPNONAME: return "The Content-Disposition header field \"name\" must be provided.";
    case CEL_EMPFILES: return "Too many files.";
    case CEL_EMPFIELDS: return "Too many fields.";
    case CEL_EMPPARTSIZE: return "Part exceeded maximum size.";
    case CEL_EFORMFIELDSIZE: return "Field exceeded maximum size.";
    case CEL_EWSPROTO: return "WebSocket protocol error";
    case CEL_EWSUTF8: return "invalid UTF-8 in WebSocket text";
    case CEL_EWSTOOBIG: return "WebSocket message too big";
    case CEL_EWSHANDSHAKE: return "invalid WebSocket handshake";
    case CEL_EWSVERSION: return "unsupported WebSocket version";
    default: return "unknown error";
    }
}

int cel_err_http_status(int err)
{
    switch (err) {
    case CEL_EBADREQ: case CEL_ECLTE: case CEL_EBADCL: case CEL_EBADTE:
    case CEL_EBADCHUNK: case CEL_EHDRVALUE: case CEL_EMETHOD: case CEL_ETARGET:
    case CEL_EMPBOUNDARY: case CEL_EMPSYNTAX: case CEL_EMPHEADER: case CEL_EMPNONAME:
    case CEL_EMPFILES: case CEL_EMPFIELDS: case CEL_EMPPARTSIZE: case CEL_EFORMFIELDSIZE:
        return 400;
    case CEL_EURITOOLONG: return 414;
    case CEL_EHDRTOOLARGE: return 431;
    case CEL_EVERSION: return 505;
    case CEL_EBODYTOOLARGE: return 413;
    case CEL_ETIMEOUT: return 408;
    case CEL_EWSHANDSHAKE: return 400;
    case CEL_EWSVERSION: return 426;
    default: return 500;
    }
}
