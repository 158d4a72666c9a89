"""``/docs`` (Swagger UI) and ``/redoc`` served offline from a package's assets.

FastAPI's defaults load both from a CDN, which kfpd never reaches for (and a server on an
isolated network cannot): the pages were blank. The assets come from the
``fastapi-standalone-docs`` wheel; the pages keep FastAPI's own HTML. Their CSP allows the
inline bootstrap script these two pages need and nothing from another origin.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_standalone_docs
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_standalone_docs.__file__).with_name("static")
ASSET_PREFIX = "/docs-assets"
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)


def install(app: FastAPI) -> None:
    """Add /docs and /redoc (create the app with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSET_PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    def swagger() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — API",
            swagger_js_url=f"{ASSET_PREFIX}/swagger/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSET_PREFIX}/swagger/swagger-ui.css",
            swagger_favicon_url=f"{ASSET_PREFIX}/fastapi/favicon.png",
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} — API",
            redoc_js_url=f"{ASSET_PREFIX}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{ASSET_PREFIX}/fastapi/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    app.add_api_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
