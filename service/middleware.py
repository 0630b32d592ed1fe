"""Pure-ASGI middleware: a request id on every request and response, and the request body size limit."""

from __future__ import annotations

import uuid

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.problems import PAYLOAD_TOO_LARGE, PROBLEM_MEDIA, Problem, problem_body

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
