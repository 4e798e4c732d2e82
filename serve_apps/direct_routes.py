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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Router
from starlette.types import Receive, Scope, Send

from serve_apps.http_api import HTTPProblem, problem_response

__all__ = ["DirectRoutes", "Handler"]

Handler = Callable[[Request], Awaitable[Any]]


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
            response = JSONResponse(await handler(Request(scope, receive, send)))
        except HTTPProblem as exc:
            response = problem_response(exc)
        await response(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The request's path below the app's mount point, as Starlette's router matches it."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path
