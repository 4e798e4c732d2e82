"""The ingest's FastAPI application object and the HTTP helpers every route module shares.

Routes are methods of the Serve ingress class and of its mixins (``serve_apps.ingress``,
``serve_apps.nightscout``), all registered on this one ``api``; an ``HTTPProblem`` raised
anywhere is answered as JSON with a reason, never as a 500. The API's docs (``/docs``,
``/redoc``) load Swagger UI and ReDoc from the app itself (``fastapi-offline``), not from a
CDN, so they work on networks without internet.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ValidationError

from cgm_ray import __version__

api = FastAPIOffline(title="cgm-ray ingest", version=__version__,
                     description="CGM readings in, alerts and history out; Nightscout v1 "
                     "compatible. Every request needs a credential: the header `api-secret: "
                     "sha1hex(secret)`, `?token=` or `Authorization: Bearer <token>`.")


class HTTPProblem(Exception):
    """An error answered as JSON with a reason (never a 500)."""

    def __init__(self, status: int, message: str, description: str,
                 headers: dict[str, str] | None = None) -> None:
        self.status, self.message, self.description = status, message, description
        self.headers = headers


def problem_response(exc: HTTPProblem) -> JSONResponse:
    """The API's error answer: ``{"status", "message", "description"}`` with the status."""
    return JSONResponse({"status": exc.status, "message": exc.message,
                         "description": exc.description}, status_code=exc.status,
                        headers=exc.headers)


@api.exception_handler(HTTPProblem)
async def _problem(request: Request, exc: HTTPProblem) -> JSONResponse:
    return problem_response(exc)


def example(value: int | str) -> dict:
    """A query parameter's documented example. Without one, the document Serve serves says
    ``"example": {}``: FastAPI marks "no example" with a sentinel object, which Serve's copy
    of the app (pickled) no longer recognises."""
    return {"default": {"value": value}}


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[7:] if value.lower().startswith("bearer ") else None


def parse_model(model: type[BaseModel], body: bytes) -> BaseModel:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(map(str, err["loc"])) or "body"
        status = 400 if err["type"] == "json_invalid" else 422
        raise HTTPProblem(status, "Bad Request" if status == 400 else "Unprocessable Entity",
                          f"{field}: {err['msg']}") from None


def int_param(q, *names: str) -> int | None:
    for name in names:
        value = q.get(name)
        if value is not None:
            try:
                return max(-(1 << 62), min(1 << 62, int(float(value))))
            except (ValueError, OverflowError):  # OverflowError: "inf"
                raise HTTPProblem(400, "Bad Request", f"{name}: not a number") from None
    return None


# No per-request access log lines: ~3% of the ingress's CPU at a thousand requests a second;
