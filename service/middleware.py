"""Pure-ASGI middleware: a request id on every request and response, the request body size limit, and request
bodies in JSON or YAML with duplicate keys refused."""

from __future__ import annotations

import json
import uuid
from typing import Any

import yaml
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.problems import INVALID_INPUT, PAYLOAD_TOO_LARGE, PROBLEM_MEDIA, Problem, problem_body

REQUEST_ID_HEADER = "X-Request-ID"


class RequestId:
    """Give each HTTP request an id (``scope["state"]["request_id"]``), answered in ``X-Request-ID``: problem
    bodies carry it, and the server logs the request's details under it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                msg.setdefault("headers", [])
                msg["headers"] = [*msg["headers"], (REQUEST_ID_HEADER.lower().encode(), rid.encode())]
            await send(msg)

        await self.app(scope, receive, send_with_id)


class BodySizeLimit:
    """A request body above ``max_bytes`` is answered 413 (by its Content-Length, or while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_big(self, scope: Scope, receive: Receive, send: Send) -> None:
        p = Problem(PAYLOAD_TOO_LARGE, f"request body exceeds {self.max_bytes} bytes", field="body")
        rid = scope.get("state", {}).get("request_id")
        resp = JSONResponse(problem_body(p, scope.get("path"), rid), status_code=413, media_type=PROBLEM_MEDIA)
        await resp(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._too_big(scope, receive, send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooBig()
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooBig:
            if not started:
                await self._too_big(scope, receive, send)


class _TooBig(Exception):
    pass


YAML_MEDIA = ("application/yaml", "application/x-yaml", "text/yaml")


class DuplicateKey(ValueError):
    """A mapping names one key twice (JSON and YAML parsers would silently keep the last)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} appears twice in one object")
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise DuplicateKey(k)
        out[k] = v
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        for i, k in enumerate(keys):
            if k in keys[:i]:
                raise DuplicateKey(str(k))
        return super().construct_mapping(node, deep=deep)


class StructuredBody:
    """Request bodies: ``application/json`` with a key twice in one object is 422 naming the key (not the last
    one silently kept); ``application/yaml`` (also ``text/yaml``) is read with the same rule and handed on as
    JSON, so every route that takes JSON takes the YAML spec files users already have."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, detail: str, field: str) -> None:
        p = Problem(INVALID_INPUT, detail, field=field)
        rid = scope.get("state", {}).get("request_id")
        resp = JSONResponse(problem_body(p, scope.get("path"), rid), status_code=422, media_type=PROBLEM_MEDIA)
        await resp(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        media = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if media != "application/json" and media not in YAML_MEDIA:
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":  # the client went away
                return
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        try:
            if media in YAML_MEDIA:
                doc = yaml.load(body.decode("utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
                body = json.dumps(doc).encode()
                scope = {**scope, "headers": [(k, v) for k, v in scope["headers"]
                                              if k not in (b"content-type", b"content-length")]
                         + [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
            elif body:
                json.loads(body, object_pairs_hook=_no_duplicates)
        except DuplicateKey as e:
            await self._refuse(scope, receive, send, str(e), e.key)
            return
        except (yaml.YAMLError, UnicodeDecodeError, TypeError, ValueError) as e:
            if media in YAML_MEDIA:
                await self._refuse(scope, receive, send, f"not valid YAML: {str(e).splitlines()[0]}", "body")
                return  # invalid JSON is left to the route's own validation (a 422 like any other)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
