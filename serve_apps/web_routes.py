"""The web app: one page and its assets, served by the ingress itself at ``/``.

The files ship in the package (``serve_apps/web/``) and are read once at import; only the
names listed there are served, so no request reaches the filesystem. Every answer carries a
strict Content-Security-Policy (no inline script or style, connections to this origin only)
and an ETag, so browsers revalidate instead of downloading again. The page uses relative
URLs only, so it works under any route prefix (``serve deploy``, KubeRay). No ``from
__future__ import annotations``: Serve rewrites each route's ``self`` from its signature.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response

from serve_apps.http_api import HTTPProblem, api
from serve_apps.ingress_base import IngressBase

WEB_DIR = Path(__file__).resolve().parent / "web"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", "": "text/plain"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
                    "referrer-policy": "no-referrer", "cache-control": "no-cache"}


@dataclass(frozen=True)
class Asset:
    """A file of the web app, as served."""

    body: bytes
    media_type: str
    etag: str


def _load_assets() -> dict[str, Asset]:
    assets = {}
    for path in sorted(WEB_DIR.rglob("*")):
        if path.is_file():
            body = path.read_bytes()
            assets[path.relative_to(WEB_DIR).as_posix()] = Asset(
                body, MEDIA_TYPES.get(path.suffix, MEDIA_TYPES[""]),
                f'"{hashlib.sha256(body).hexdigest()[:20]}"')
    return assets


ASSETS = _load_assets()


def _answer(asset: Asset, request: Request) -> Response:
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers={"etag": asset.etag, **SECURITY_HEADERS})
    return Response(asset.body, media_type=asset.media_type,
                    headers={"etag": asset.etag, **SECURITY_HEADERS})


class WebApp(IngressBase):
    """``/`` (the page) and ``/app/{name}`` (its scripts, styles and vendored libraries)."""

    @api.get("/", include_in_schema=False)
    async def web_page(self, request: Request) -> Response:
        return _answer(ASSETS["index.html"], request)

    @api.get("/app/{name:path}", include_in_schema=False)
    async def web_asset(self, name: str, request: Request) -> Response:
        asset = ASSETS.get(name)
        if asset is None or name == "index.html":
            raise HTTPProblem(404, "Not Found", f"no such file of the web app: {name[:80]!r}")
        return _answer(asset, request)
