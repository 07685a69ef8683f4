"""The FastAPI application: ``create_app(settings)`` wires storage, database, registry, jobs, routes and limits.

Nothing happens at import. The lifespan (start-up) creates the storage folder and the database
tables, registers the ``--model`` run folders, loads every registered model once (so the first
request does not pay for it), starts the training job manager and, with ``demo``, trains the
sample model in the background.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from pixlearn import __version__
from pixlearn.serve.apidocs import install_docs
from pixlearn.serve.auth import ApiKeyMiddleware
from pixlearn.serve.db import make_engine, metadata
from pixlearn.serve.errors import ApiError, install_error_handlers
from pixlearn.serve.limits import BodyLimitMiddleware, ConcurrencyLimitMiddleware, TimeoutMiddleware
from pixlearn.serve.registry import ModelRegistry
from pixlearn.serve.security import install_security
from pixlearn.serve.settings import ServeSettings

__all__ = ["create_app", "STATIC_DIR"]

log = logging.getLogger("pixlearn.serve")

#: The web page's files (index.html, app.js, style.css), served at ``/`` and ``/static``.
STATIC_DIR = Path(__file__).with_name("static")

_DESCRIPTION = """\
Analyse images (dominant colours, quality, labels from your classifiers, COCO objects, faces, text), run pixlearn's
classical ops and recipes, classify images with registered models, detect objects (`POST /v1/detect`: the built-in
`coco-yolox-nano` or a trained detector), find and name faces (`/v1/faces/...`: enrol people into a gallery, identify
them, verify two photos), read the text in images (`POST /v1/text`), search by image in collections
(`/v1/collections`), train classifiers and detectors from an uploaded zip (a folder per class, or COCO / YOLO /
Pascal VOC boxes), and serve them over the Open Inference Protocol v2.

With API keys configured, send `X-API-Key: <key>` or `Authorization: Bearer <key>`.
Errors are JSON with the right 4xx: `{"error": {"code": "...", "message": "..."}}` on the `/v1` routes
(`code` is a stable name such as `image_decode_error` or `payload_too_large`), and the Open Inference
Protocol's own `{"error": "..."}` on the `/v2` routes.

A web page on another origin may send state-changing requests (POST, DELETE) only when the server was
started with `--cors-origin ORIGIN`; programs that send no `Origin` header are not affected.
"""


def _startup(app: FastAPI, settings: ServeSettings) -> None:
    from pixlearn.serve import trainings  # its tables attach to `metadata`

    settings.storage.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    metadata.create_all(engine)
    registry = ModelRegistry(engine, settings.storage)
    for run_dir, general in [*((r, False) for r in settings.models), *((r, True) for r in settings.general_models)]:
        record = registry.register_run(run_dir, source="cli", general=general)
        log.info("registered %smodel %s from %s", "general " if general else "", record["name"], run_dir)
    from pixlearn.serve.routes_analyze import start_labeller_warmup

    start_labeller_warmup()  # the ImageNet labeller of /v1/analyze, loaded in a thread when its weights are there
    for name in registry.names():
        try:
            registry.load(name)
        except Exception as exc:  # a stale entry must not stop the service; requests for it answer 503
            log.warning("model %s is registered but cannot be loaded: %s", name, exc)
    app.state.engine = engine
    app.state.registry = registry
    app.state.jobs = trainings.JobManager(settings, engine, registry)
    app.state.jobs.start()
    app.state.demo = None
    if settings.demo:
        from pixlearn.serve.demo import DemoTrainer

        app.state.demo = DemoTrainer(settings, registry)
        app.state.demo.start()


def _shutdown(app: FastAPI) -> None:
    demo = getattr(app.state, "demo", None)
    if demo is not None:
        demo.stop()
    jobs = getattr(app.state, "jobs", None)
    if jobs is not None:
        jobs.shutdown()
    engine = getattr(app.state, "engine", None)
    if engine is not None:
        engine.dispose()


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServeSettings = app.state.settings
    app.state.ready = False
    app.state.pool = None
    try:
        if settings.workers:  # CPU work runs in these processes, killed at a request's deadline
            from pixlearn.serve.workers import WorkerPool

            pool = WorkerPool(settings.workers, memory_mb=settings.worker_memory)
            app.state.pool = await anyio.to_thread.run_sync(pool.start)
        _startup(app, settings)
        app.state.ready = True
        yield
    finally:
        app.state.ready = False
        _shutdown(app)
        if app.state.pool is not None:
            await anyio.to_thread.run_sync(app.state.pool.shutdown)
            app.state.pool = None


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The pixlearn service as an ASGI app (run it with uvicorn, or ``pixlearn serve``).

    Parameters
    ----------
    settings : ServeSettings, optional
        Default: ``ServeSettings()`` (environment variables, then defaults).

    Examples
    --------
    >>> import tempfile
    >>> app = create_app(ServeSettings(storage=tempfile.mkdtemp()))
    >>> "/v1/analyze" in app.openapi()["paths"]
    True
    """
    from pixlearn.serve import oip, routes_analyze, routes_classify, routes_collections, routes_detect, routes_faces, \
        routes_models, routes_ops, routes_text, trainings

    settings = settings or ServeSettings()
    app = FastAPI(title="pixlearn", version=__version__, description=_DESCRIPTION, lifespan=_lifespan,
                  docs_url=None, redoc_url=None)  # apidocs serves /docs and /redoc from vendored files
    app.state.settings = settings
    app.state.ready = False
    install_error_handlers(app)
    install_docs(app)

    app.include_router(routes_models.router)
    app.include_router(routes_analyze.router)
    app.include_router(routes_ops.router)
    app.include_router(routes_classify.router)
    app.include_router(routes_detect.router)
    app.include_router(routes_faces.router)
    app.include_router(routes_text.router)
    app.include_router(routes_collections.router)
    app.include_router(trainings.router)
    app.include_router(oip.router)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        page = STATIC_DIR / "index.html"
        if not page.is_file():
            raise ApiError("the web page is not installed (static/index.html is missing); the REST API is at /docs",
                           status=404)
        return FileResponse(page, media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")

    # Added innermost first: a request meets auth, then the body limit, the concurrency limit, the timeout.
    app.add_middleware(TimeoutMiddleware, timeout_s=settings.timeout_s, pool=lambda: getattr(app.state, "pool", None))
    app.add_middleware(ConcurrencyLimitMiddleware, limit=settings.concurrency, max_queue=settings.max_queue,
                       queue_timeout_s=settings.queue_timeout_s)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(ApiKeyMiddleware, keys=settings.api_keys)
    # Outermost: cross-site refusal and CORS before auth, security headers on every answer.
    install_security(app, cors_origins=settings.cors_origins, allowed_hosts=settings.allowed_hosts)
    return app
