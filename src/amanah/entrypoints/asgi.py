"""The ASGI application: thin routes that call the application layer, and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from amanah import __version__
from amanah.bootstrap import Container
from amanah.domain.errors import AmanahError, Forbidden, NotFound, ValidationError
from amanah.entrypoints.web import webchat
from amanah.entrypoints.web.headers import SecurityHeaders
from amanah.entrypoints.web.limits import BodySizeLimit

log = logging.getLogger(__name__)
WEB = Path(__file__).parent / "web"


def create_app(container: Container) -> FastAPI:
    """Build the app for one container. No work at import time; all state comes from ``container``."""
    settings = container.settings

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The channel worker (inbox -> replies -> outbox -> Graph) runs in this process unless
        # AMANAH_RUN_WORKER_IN_SERVER=false (then run `amanah worker` beside the server).
        worker = None
        runtime = container.channels
        if settings.run_worker_in_server and runtime is not None and runtime.enabled:
            from amanah.adapters.channels.worker import make_worker

            worker = make_worker(container)
            worker.start(in_server=True)
        try:
            yield
        finally:
            if worker is not None:
                await asyncio.to_thread(worker.stop)
            writer = container.extras.get("inbox_writer")
            if writer is not None:
                await asyncio.to_thread(writer.close)

    app = FastAPI(
        title="Amanah", version=__version__, docs_url="/api/docs", redoc_url=None, lifespan=lifespan
    )
    app.state.container = container
    templates = Jinja2Templates(directory=str(WEB / "templates"))

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret.get_secret_value(),
        session_cookie="amanah_session",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.base_url.startswith("https://"),
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # outermost: every response, 413s included
    app.mount("/static", StaticFiles(directory=str(WEB / "static")), name="static")
    app.include_router(webchat.router(container, templates))
    for extra in container.routers:
        app.include_router(extra(container, templates))
    fast_paths = container.extras.get("webhook_endpoints")
    if fast_paths:
        from amanah.entrypoints.web.webhooks import WebhookFastPath

        # Outermost: webhook acks skip sessions and routing (the body limit still applies first).
        app.add_middleware(WebhookFastPath, endpoints=fast_paths, max_bytes=settings.max_body_bytes)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]) or "body", "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"error": "invalid_request", "detail": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and "text/html" in request.headers.get("accept", ""):
            return PlainTextResponse("Not found", status_code=404)
        return JSONResponse({"error": "http_error", "detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(AmanahError)
    async def domain_error(request: Request, exc: AmanahError) -> JSONResponse:
        status = 422 if isinstance(exc, ValidationError) else 404 if isinstance(exc, NotFound) else 403
        if not isinstance(exc, ValidationError | NotFound | Forbidden):
            status = 503
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": "internal_error", "detail": "something went wrong; it was logged"}, status_code=500
        )

    return app
