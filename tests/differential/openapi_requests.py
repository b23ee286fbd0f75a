"""Request synthesis for the docs_src differential harness: values from JSON
schemas (valid and wrongly typed) and the requests built from one OpenAPI
operation.  Everything here is deterministic: same schema, same requests."""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

BOUNDARY = "celerisdifferentialboundary"
_FORMATS = {
    "date": "2024-01-02", "date-time": "2024-01-02T03:04:05", "time": "03:04:05",
    "uuid": "00000000-0000-4000-8000-000000000001", "email": "user@example.com",
    "uri": "https://example.com/", "duration": "P1D", "ipv4": "127.0.0.1",
    "ipv6": "::1", "password": "secret", "binary": "file-content",
}
_STRING_CANDIDATES = ["foo", "bar", "abc", "a", "1", "fixedquery", "item", "2024-01-02",
                      "user@example.com", "A1", "x" * 10]


@dataclass
class Req:
    kind: str                   # "valid-min", "valid-full", "missing", "wrong-type", ...
    method: str
    path: str                   # with the query string
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None

    def label(self) -> str:
        return f"{self.method} {self.path} [{self.kind}]"


class Schemas:
    """Samples values of the JSON schemas of one OpenAPI document."""

    def __init__(self, openapi: dict) -> None:
        self.components = (openapi.get("components") or {}).get("schemas") or {}

    def resolve(self, schema: Any) -> dict:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 20:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.components.get(name, {})
            seen += 1
        return schema if isinstance(schema, dict) else {}

    def _branch(self, schema: dict, depth: int = 0) -> dict:
        """The first typed non-null alternative of anyOf/oneOf; allOf merged
        into the schema (properties and required lists combined)."""
        if depth > 8:
            return schema
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self._branch(self.resolve(s), depth + 1) for s in schema[key]]
                real = [s for s in options if s.get("type") != "null" and set(s) - {"not", "title"}]
                return real[0] if real else {"type": "null"}
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for sub in schema["allOf"]:
                sub = self._branch(self.resolve(sub), depth + 1)
                for k, v in sub.items():
                    if k == "properties":
                        merged["properties"] = {**v, **merged.get("properties", {})}
                    elif k == "required":
                        merged["required"] = list(merged.get("required", [])) + list(v)
                    else:
                        merged.setdefault(k, v)
            return merged
        return schema

    def sample(self, schema: Any, full: bool = True, depth: int = 0) -> Any:
        """A value the schema accepts (best effort; both tiers see the same one)."""
        schema = self._branch(self.resolve(schema))
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        if "default" in schema and schema["default"] is not None and not full:
            return schema["default"]
        if "examples" in schema and isinstance(schema["examples"], list) and schema["examples"]:
            return schema["examples"][0]
        if "example" in schema:
            return schema["example"]
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "string":
            return self._string(schema)
        if kind == "integer":
            return int(self._number(schema, 1))
        if kind == "number":
            return self._number(schema, 1.5)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        if kind == "array":
            if depth > 4:
                return []
            items = self.sample(schema.get("items", {}), full, depth + 1)
            n = max(1, int(schema.get("minItems", 1)))
            if schema.get("maxItems") == 0:
                n = 0
            return [items] * n
        if kind == "object" or "properties" in schema:
            if depth > 4:
                return {}
            required = set(schema.get("required", []))
            out = {}
            for name, sub in (schema.get("properties") or {}).items():
                if full or name in required:
                    out[name] = self.sample(sub, full, depth + 1)
            return out
        return "foo"

    def _string(self, schema: dict) -> str:
        fmt = schema.get("format")
        if fmt in _FORMATS:
            return _FORMATS[fmt]
        lo = int(schema.get("minLength", 0))
        hi = schema.get("maxLength")
        pattern = schema.get("pattern")
        for cand in _STRING_CANDIDATES:
            if len(cand) < lo:
                cand = cand + "x" * (lo - len(cand))
            if hi is not None and len(cand) > hi:
                cand = cand[:hi]
            if pattern is None or re.search(pattern, cand):
                return cand
        return "foo"

    @staticmethod
    def _number(schema: dict, value: float) -> float:
        if "minimum" in schema:
            value = max(value, schema["minimum"])
        if "exclusiveMinimum" in schema:
            value = max(value, schema["exclusiveMinimum"] + 1)
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        if "exclusiveMaximum" in schema:
            value = min(value, schema["exclusiveMaximum"] - 0.5)
        return value

    def wrong(self, schema: Any, depth: int = 0) -> Any:
        """A value of the wrong type for the schema (objects: every field wrong)."""
        schema = self._branch(self.resolve(schema))
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind in ("integer", "number"):
            return "not-a-number"
        if kind == "boolean":
            return "maybe"
        if kind == "array":
            return "not-a-list"
        if (kind == "object" or "properties" in schema) and depth < 3:
            props = schema.get("properties") or {}
            if props:
                return {name: self.wrong(sub, depth + 1) for name, sub in props.items()}
            return 5
        if kind == "string" or schema.get("enum"):
            return {"not": "a string"}
        return None

    def wrong_scalar(self, schema: Any) -> str | None:
        """A query/path/header/cookie string the schema rejects, or None."""
        schema = self._branch(self.resolve(schema))
        kind = schema.get("type")
        if kind == "array":
            return self.wrong_scalar(schema.get("items", {}))
        if kind in ("integer", "number"):
            return "not-a-number"
        if kind == "boolean":
            return "maybe"
        if schema.get("enum"):
            return "not-a-member"
        if schema.get("format") in ("date", "date-time", "uuid", "email", "time"):
            return "not-valid"
        if kind == "string" and ("maxLength" in schema or "minLength" in schema):
            return "" if schema.get("minLength") else "y" * (int(schema["maxLength"]) + 1)
        return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _security_headers(operation: dict, openapi: dict) -> tuple[list, list, list]:
    """Credentials for the operation's first security requirement: headers,
    query pairs and cookies (the docs tutorials' own example users)."""
    headers: list = []
    query: list = []
    cookies: list = []
    schemes = (openapi.get("components") or {}).get("securitySchemes") or {}
    requirements = operation.get("security") or []
    for name in (requirements[0] if requirements else {}):
        scheme = schemes.get(name, {})
        kind = scheme.get("type")
        if kind in ("oauth2", "openIdConnect") or (kind == "http" and scheme.get("scheme", "").lower() == "bearer"):
            headers.append(("authorization", "Bearer johndoe"))
        elif kind == "http":
            token = base64.b64encode(b"stanleyjobson:swordfish").decode()
            headers.append(("authorization", f"Basic {token}"))
        elif kind == "apiKey":
            where = {"header": headers, "query": query, "cookie": cookies}.get(scheme.get("in"), headers)
            where.append((scheme.get("name", "key"), "secret"))
    seen: set = set()
    headers = [h for h in headers if not (h[0] in seen or seen.add(h[0]))]
    return headers, query, cookies


def _multipart(values: dict, schema: dict, schemas: Schemas) -> bytes:
    props = (schemas.resolve(schema).get("properties")) or {}
    parts = []
    for name, value in values.items():
        sub = schemas._branch(schemas.resolve(props.get(name, {})))
        items = value if isinstance(value, list) else [value]
        is_file = sub.get("format") == "binary" or \
            schemas._branch(schemas.resolve(sub.get("items", {}))).get("format") == "binary"
        for i, item in enumerate(items):
            if is_file:
                head = (f'Content-Disposition: form-data; name="{name}"; filename="f{i}.txt"\r\n'
                        "Content-Type: text/plain\r\n")
            else:
                head = f'Content-Disposition: form-data; name="{name}"\r\n'
            parts.append(f"--{BOUNDARY}\r\n{head}\r\n{_text(item)}\r\n".encode())
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _encode_body(media: str, value: Any, schema: dict, schemas: Schemas) -> tuple[str, bytes]:
    if media == "multipart/form-data":
        return f"multipart/form-data; boundary={BOUNDARY}", _multipart(value if isinstance(value, dict) else {}, schema, schemas)
    if media == "application/x-www-form-urlencoded":
        pairs = []
        for k, v in (value if isinstance(value, dict) else {}).items():
            for item in (v if isinstance(v, list) else [v]):
                pairs.append((k, _text(item)))
        return media, urlencode(pairs).encode()
    return "application/json", json.dumps(value).encode()


def operation_requests(path: str, method: str, operation: dict, openapi: dict) -> list[Req]:
    """Valid and invalid requests for one OpenAPI operation."""
    schemas = Schemas(openapi)
    params = [p for p in operation.get("parameters", []) if isinstance(p, dict)]
    body = operation.get("requestBody") or {}
    content = body.get("content") or {}
    media = next(iter(content), None)
    body_schema = content.get(media, {}).get("schema", {}) if media else {}
    auth_h, auth_q, auth_c = _security_headers(operation, openapi)
    M = method.upper()

    def build(kind: str, values: dict, *, body_bytes: bytes | None = None,
              ctype: str | None = None, auth: bool = True, repeat: bool = False) -> Req:
        url = path
        for p in params:
            if p.get("in") == "path":
                url = url.replace("{" + p["name"] + "}", quote(_text(values.get(("path", p["name"]), "1")), safe=""))
        query = [(k, v) for (where, k), v in values.items() if where == "query"]
        pairs: list = []
        for k, v in query:
            for item in (v if isinstance(v, list) else [v]):
                pairs.append((k, _text(item)))
        headers: list = []
        cookies: list = []
        for (where, k), v in values.items():
            if where == "header":
                headers.append((k, _text(v if not isinstance(v, list) else v[0])))
            elif where == "cookie":
                cookies.append((k, _text(v)))
        if repeat:
            pairs += pairs
        if auth:
            pairs += auth_q
            headers += [h for h in auth_h if h[0] not in {x[0].lower() for x in headers}]
            cookies += auth_c
        if cookies:
            headers.append(("cookie", "; ".join(f"{k}={v}" for k, v in cookies)))
        if pairs:
            url += "?" + urlencode(pairs)
        if ctype is not None:
            headers.append(("content-type", ctype))
        return Req(kind, M, url, headers, body_bytes)

    def values_for(full: bool, wrong: bool = False) -> dict:
        out: dict = {}
        for p in params:
            key = (p.get("in"), p["name"])
            if p.get("in") == "path" or p.get("required") or full:
                v = schemas.sample(p.get("schema", {}), full=full)
                if wrong:
                    bad = schemas.wrong_scalar(p.get("schema", {}))
                    v = bad if bad is not None else v
                out[key] = v
        return out

    def body_for(full: bool) -> tuple[bytes | None, str | None]:
        if not media:
            return None, None
        if not full and not body.get("required"):
            return None, None
        ctype, data = _encode_body(media, schemas.sample(body_schema, full=full), body_schema, schemas)
        return data, ctype

    reqs = []
    for kind, full in (("valid-min", False), ("valid-full", True)):
        data, ctype = body_for(full)
        reqs.append(build(kind, values_for(full), body_bytes=data, ctype=ctype))
    # Odd but valid: string path parameters with non-ASCII text, every query parameter twice.
    odd = values_for(True)
    strings = [p["name"] for p in params if p.get("in") == "path"
               and schemas._branch(schemas.resolve(p.get("schema", {}))).get("type") == "string"
               and not schemas._branch(schemas.resolve(p.get("schema", {}))).get("enum")]
    for name in strings:
        odd[("path", name)] = "zo\u00eb \u2603"
    if strings or any(p.get("in") == "query" for p in params):
        data, ctype = body_for(True)
        reqs.append(build("odd", odd, body_bytes=data, ctype=ctype, repeat=True))
    # Invalid: nothing but the path parameters, no body, no credentials.
    path_only = {k: v for k, v in values_for(False).items() if k[0] == "path"}
    reqs.append(build("missing", path_only, auth=False))
    # Invalid: every parameter that can be of the wrong type is, and so is every body field.
    wrong_values = values_for(True, wrong=True)
    wrong_body, wrong_ctype = None, None
    if media:
        wrong_ctype, wrong_body = _encode_body(media, schemas.wrong(body_schema), body_schema, schemas)
    reqs.append(build("wrong-type", wrong_values, body_bytes=wrong_body, ctype=wrong_ctype))
    if media:
        valid = values_for(False)
        reqs.append(build("invalid-json", valid, body_bytes=b'{"broken": ', ctype="application/json"))
        data, _ = _encode_body(media, schemas.sample(body_schema), body_schema, schemas)
        reqs.append(build("wrong-content-type", valid, body_bytes=data, ctype="text/plain"))
        if media != "application/json":
            reqs.append(build("json-for-form", valid, body_bytes=json.dumps(schemas.sample(body_schema)).encode(),
                              ctype="application/json"))
        reqs.append(build("empty-body", valid, body_bytes=b"", ctype=media if media != "multipart/form-data"
                          else f"multipart/form-data; boundary={BOUNDARY}"))
    if M == "GET":
        full = reqs[1]
        reqs.append(Req("head", "HEAD", full.path, list(full.headers), None))
    return reqs
