"""An ASGI front that hands the hottest routes straight to their handlers, past FastAPI.

A request to a FastAPI app passes its middleware stack (errors, exceptions, exit stack, body
limit, telemetry), its router and, for the route found, dependency solving and response
validation before the handler runs. With one reading a request, FastAPI's and Starlette's
own code was 21% of the ingress replica's event loop (py-spy at 2,700 requests/s: ~0.07 ms
a request, more than the handler's own work). For the routes given here the front makes
the handler's ``Request`` itself, awaits the handler, and answers its value as JSON or an
``HTTPProblem`` as the API's error answer, as FastAPI's route would (``problem_response``);
every other request goes through the FastAPI app as before, and any other exception is left
to Serve (a 500, as FastAPI's would be). The routes stay declared on the app, which
documents them (OpenAPI) and names them in Serve's request metrics.

The handler's ``Request`` is a ``DirectRequest``: Starlette's, with the lookups a handler
makes on every request cheap (each header lookup scanned and decoded the raw list; an empty
query string was parsed), and the answer is sent as two ASGI messages, not built as a
``JSONResponse``: ~5 us less a request, measured in-process at 12 requests a write.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.routing import BaseRoute, Router
from starlette.types import Receive, Scope, Send

from serve_apps.http_api import HTTPProblem, problem_response

__all__ = ["DirectRequest", "DirectRoutes", "Handler"]

Handler = Callable[[Request], Awaitable[Any]]

# As Starlette's JSONResponse renders a body (compact, UTF-8, no NaN), encoder made once.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_CONTENT_TYPE = (b"content-type", b"application/json")
_NO_QUERY = QueryParams(b"")


class _IndexedHeaders(Headers):
    """Request headers with a dict behind lookups; the first value of a repeated header,
    as ``Headers`` answers."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope=scope)
        self._first = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(self._list)}

    def __getitem__(self, key: str) -> str:
        return self._first[key.lower()]

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, str) and key.lower() in self._first

    def get(self, key: str, default: Any = None) -> Any:
        return self._first.get(key.lower(), default)


class DirectRequest(Request):
    """A ``Request`` whose header lookups are dict lookups and whose empty query string is
    not parsed; everything else is Starlette's."""

    @property
    def headers(self) -> Headers:
        if not hasattr(self, "_headers"):
            self._headers = _IndexedHeaders(self.scope)
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        return super().query_params if self.scope["query_string"] else _NO_QUERY


class DirectRoutes:
    """``app``, with the requests of ``handlers`` (by method and path) sent to them directly.

    Raises ``ValueError`` for a handler whose route ``app`` does not document (OpenAPI).
    """

    def __init__(self, app: FastAPI, handlers: Mapping[tuple[str, str], Handler]) -> None:
        paths = app.openapi()["paths"]
        if undocumented := sorted((method, path) for method, path in handlers
                                  if method.lower() not in paths.get(path, {})):
            raise ValueError(f"routes the app does not declare: {undocumented}")
        self.app = app
        self._handlers = dict(handlers)

    # Serve matches a request against these to name its route in the request metrics.
    @property
    def routes(self) -> list[BaseRoute]:
        return self.app.routes

    @property
    def router(self) -> Router:
        return self.app.router

    def add_exception_handler(self, exc_class: type[Exception], handler: Callable) -> None:
        """Serve registers its own exceptions' answers (503 on back-pressure) here."""
        self.app.add_exception_handler(exc_class, handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (self._handlers.get((scope["method"], _route_path(scope)))
                   if scope["type"] == "http" else None)
        if handler is None:
            await self.app(scope, receive, send)
            return
        try:
            value = await handler(DirectRequest(scope, receive, send))
        except HTTPProblem as exc:
            await problem_response(exc)(scope, receive, send)
            return
        body = _ENCODER.encode(value).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()), _CONTENT_TYPE]})
        await send({"type": "http.response.body", "body": body})


def _route_path(scope: Scope) -> str:
    """The request's path below the app's mount point, as Starlette's router matches it."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path
