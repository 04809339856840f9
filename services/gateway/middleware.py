"""ASGI middleware: request body size limit and the last-resort error handler."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.problems import ProblemError, internal_error_response, problem_response

log = logging.getLogger(__name__)


class PayloadTooLarge(ProblemError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, "payload_too_large", f"The request body exceeds {max_bytes} bytes.")


class BodySizeLimitMiddleware:
    """413 ``payload_too_large`` for bodies above ``max_bytes``.

    The declared Content-Length is checked before anything is read; the streamed body is counted too,
    since a chunked request declares no length.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await PayloadTooLarge(self.max_bytes).to_response(scope["path"])(scope, receive, send)
            return
        if declared == -1:
            response = problem_response(
                status=400, code="bad_request", detail="Invalid Content-Length.", instance=scope["path"]
            )
            await response(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the app's body read: FastAPI passes HTTPExceptions through to the
                    # problem handlers.
                    raise PayloadTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared length, None if absent, -1 if unparseable."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return -1
            return length if length >= 0 else -1
    return None


class CatchAllMiddleware:
    """Any exception nothing else handled: logged with its traceback, answered 500 ``internal``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error", extra={"method": scope.get("method"), "path": scope.get("path")})
            if started:
                # Too late for an error response; the server drops the connection.
                raise
            await internal_error_response(scope["path"])(scope, receive, send)
