"""``pixlearn serve``: the REST API and the web page on uvicorn."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["serve", "register"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 exposes the service to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).", min=0, max=65535)] = 8000,
    storage: Annotated[Optional[Path], typer.Option("--storage", help="Data folder: database, uploads, trained models (env PIXLEARN_STORAGE; default ./pixlearn-data).", show_default=False)] = None,
    db: Annotated[Optional[str], typer.Option("--db", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/pixlearn (env PIXLEARN_DB; default SQLite in the storage folder).", show_default=False)] = None,
    api_key: Annotated[Optional[list[str]], typer.Option("--api-key", help="Accept this API key (repeat for several) (env PIXLEARN_API_KEYS, comma-separated). None: no auth.", show_default=False)] = None,
    model: Annotated[Optional[list[Path]], typer.Option("--model", help="Register this model at start-up: a run folder of pixlearn train classify or detect, or an exported classifier or detector (pixlearn export RUN --format onnx: its folder or its .onnx file, run by onnxruntime); repeatable.", show_default=False)] = None,
    detector_weights: Annotated[Optional[Path], typer.Option("--detector-weights", help="The built-in COCO detector's file (yolox_nano_coco80.onnx) of /v1/detect and /v1/analyze?features=objects. Default: that file in the local weights folders ($PIXLEARN_WEIGHTS, <cache>/weights).", show_default=False)] = None,
    general_model: Annotated[Optional[list[Path]], typer.Option("--general-model", help="Register this run folder as a general labeller: /v1/analyze shows its labels on every image, not only when asked with models=NAME; repeatable.", show_default=False)] = None,
    allow_root: Annotated[Optional[list[Path]], typer.Option("--allow-root", help="Folder whose images /v1/analyze may read by path; repeatable. None: path inputs are refused.", show_default=False)] = None,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="Largest request body (413 above).", min=0.001)] = 50,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds a request may run (504 after; its CPU work is stopped).", min=0.001)] = 60,
    body_timeout: Annotated[float, typer.Option("--body-timeout", help="Seconds a request body may send nothing (408 after: a stalled upload).", min=0.001)] = 10,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Processes for CPU work (ops, recipes, colours, quality, decoding); 0 runs it in threads, which a timeout cannot stop. Default: the CPU cores available.", min=0, max=1024, show_default=False)] = None,
    worker_memory_mb: Annotated[Optional[float], typer.Option("--worker-memory-mb", help="Memory (address space, MB) each CPU worker may use; a request needing more gets 413. Default: 3/4 of the machine's memory over the workers (at least 2048); 0: no cap.", min=0, show_default=False)] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", help="Requests handled at once (reading, waiting for or running on a worker); more wait in the queue. Default: 4 per worker, at least 16.", min=1, show_default=False)] = None,
    queue: Annotated[int, typer.Option("--queue", help="Requests that may wait for a slot beyond --concurrency (429 when full; health routes are exempt).", min=0)] = 64,
    queue_timeout: Annotated[float, typer.Option("--queue-timeout", help="Seconds a queued request waits for a slot before 429.", min=0)] = 10,
    training_workers: Annotated[int, typer.Option("--training-workers", help="Training jobs run at once (each in its own process).", min=0)] = 1,
    cors_origin: Annotated[Optional[list[str]], typer.Option("--cors-origin", help="Let web pages of this origin (scheme://host[:port], e.g. http://localhost:5173) call the API; repeatable. Other sites' pages are refused (403) on POST/DELETE; programs without an Origin header are not affected.", show_default=False)] = None,
    allowed_host: Annotated[Optional[list[str]], typer.Option("--allowed-host", help="A host name the server answers to (the Host header of requests); repeatable. Others get 421, which stops DNS-rebinding pages. On a loopback --host, localhost, 127.0.0.1 and ::1 are always allowed and other names only when listed; on other addresses, any name unless some are listed.", show_default=False)] = None,
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Train a small digits classifier in the background at start-up (when it is not registered yet), so the page has a model to try.")] = False,
    open_browser: Annotated[bool, typer.Option("--open-browser/--no-open-browser", help="Open the page in a web browser once the server listens.")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level: critical, error, warning, info, debug.")] = "info",
) -> None:
    """Serve the REST API (/docs), the Open Inference Protocol v2 (/v2) and the web page (/).

    Examples: `pixlearn serve --demo`, `pixlearn serve --model runs/classify/pets --api-key $KEY`.
    """
    import uvicorn

    from pixlearn.serve.app import create_app
    from pixlearn.serve.db import check_database, safe_url
    from pixlearn.serve.registry import read_run_card
    from pixlearn.serve.settings import ServeSettings, env_api_keys

    fields: dict = {"host": host, "port": port, "max_body_mb": max_body_mb, "timeout_s": timeout,
                    "body_timeout_s": body_timeout, "max_concurrency": concurrency, "max_queue": queue,
                    "queue_timeout_s": queue_timeout, "training_workers": training_workers, "demo": demo,
                    "api_keys": list(api_key or []) + [k for k in env_api_keys() if k not in (api_key or [])],
                    "models": [p.expanduser().resolve() for p in (model or [])],
                    "general_models": [p.expanduser().resolve() for p in (general_model or [])],
                    "allowed_roots": [p.expanduser().resolve() for p in (allow_root or [])]}
    if cors_origin:
        from pixlearn.serve.security import normalize_origin

        try:
            fields["cors_origins"] = [normalize_origin(o) for o in cors_origin]
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--cors-origin") from None
    hosts = list(allowed_host or [])
    if host.strip("[]") in _LOOPBACK:  # a loopback server always answers to its loopback names
        from pixlearn.serve.security import LOOPBACK_HOSTS

        hosts = [*LOOPBACK_HOSTS, *hosts]
    if hosts:
        from pixlearn.serve.security import normalize_host

        try:
            fields["allowed_hosts"] = [normalize_host(h) for h in hosts]
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--allowed-host") from None
    if workers is not None:
        fields["workers"] = workers
    if worker_memory_mb is not None:
        fields["worker_memory_mb"] = worker_memory_mb
    if storage is not None:
        fields["storage"] = storage.expanduser().resolve()
    if db is not None:
        fields["db"] = db
    if detector_weights is not None:
        if not detector_weights.expanduser().is_file():
            raise typer.BadParameter(f"{detector_weights}: no such file; give the path of yolox_nano_coco80.onnx",
                                     param_hint="--detector-weights")
        fields["yolox_weights"] = detector_weights.expanduser().resolve()
    settings = ServeSettings(**fields)
    settings.storage = settings.storage.expanduser().resolve()
    for run in [*settings.models, *settings.general_models]:  # fail before listening, with the reason
        read_run_card(run)
    for root in settings.allowed_roots:
        if not root.is_dir():
            raise typer.BadParameter(f"{root} is not a folder", param_hint="--allow-root")
    check_database(settings.database_url)
    if settings.port == 0:
        settings.port = _free_port(settings.host)
    if settings.host not in _LOOPBACK and not settings.api_keys:
        sys.stderr.write(f"warning: listening on {settings.host} without an API key: anyone who can reach this "
                         "machine can use the service; add --api-key KEY\n")
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{'127.0.0.1' if settings.host in ('0.0.0.0', '') else shown}:{settings.port}/"
    sys.stderr.write(f"pixlearn serve: {url}  (API docs: {url}docs; storage: {settings.storage}; "
                     f"database: {safe_url(settings.database_url)}{'; auth: API key' if settings.api_keys else ''}; "
                     f"{settings.workers} CPU worker(s), {settings.concurrency} request(s) at once)\n")
    sys.stderr.flush()
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.5, webbrowser.open, args=(url,)).start()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level,
                timeout_graceful_shutdown=5)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
