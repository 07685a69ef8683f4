"""Start or join a Ray cluster for ``--engine ray``: checks of ``--workers`` and ``--address``, quiet start-up."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from enum import Enum
from typing import Any

from pixlearn._core.errors import ConfigError, PixlearnError

__all__ = ["MAX_WORKERS", "DEFAULT_WORKERS", "Engine", "RayNotInstalledError", "RayConnectionError", "check_address", "check_workers", "import_ray", "quiet_ray_data",
           "ray_cluster"]

#: The most model actors / recipe workers one job asks for.
MAX_WORKERS = 64
#: Model actors / recipe workers when ``--workers`` is not given.
DEFAULT_WORKERS = 2


class Engine(str, Enum):
    """Where ``pixlearn predict`` and ``pixlearn process`` run: this process (and its workers), or Ray Data."""

    local = "local"
    ray = "ray"

_HOST_PORT = re.compile(r"^(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


class RayNotInstalledError(ConfigError):
    """``--engine ray`` without Ray installed."""


class RayConnectionError(PixlearnError, ConnectionError):
    """``--address`` names no Ray cluster this machine can join."""


def import_ray() -> Any:
    """``import ray`` (with Ray Data), or a typed error naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayNotInstalledError(
            f"--engine ray needs Ray with Ray Data, which is not installed ({exc}); install it with "
            "pip install 'pixlearn[ray]' (or use --engine local)") from exc
    return ray


def check_workers(workers: int) -> int:
    """``workers`` as given when it is an int in 1..64, else a :class:`ConfigError` naming the range."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"workers must be an integer in 1..{MAX_WORKERS} (model actors / recipe workers on Ray), "
                          f"got {workers!r}; pass --workers N")
    return workers


def check_address(address: str | None) -> str | None:
    """``None`` (start a local cluster), ``"auto"`` (the cluster this machine belongs to), ``ray://host:port``
    (Ray Client) or ``host:port`` (the head node's GCS); anything else is a :class:`ConfigError`."""
    if address is None:
        return None
    text = str(address).strip()
    if text == "auto" or _HOST_PORT.match(text):
        return text
    raise ConfigError(f"--address {address!r} is not a Ray cluster address; give ray://HOST:PORT (Ray Client, "
                      "port 10001 by default), HOST:PORT of the head node, or auto (the cluster this machine joined "
                      "with 'ray start'); leave it out to start a local cluster")


def _quiet_data_context(ray: Any) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # pixlearn shows its own count on stderr
    for name in ("enable_operator_progress_bars", "enable_progress_bar_name_truncation"):
        if hasattr(ctx, name):
            setattr(ctx, name, False)
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False


@contextlib.contextmanager
def quiet_ray_data() -> Iterator[None]:
    """Ray Data's own log lines (start, progress-bar notice, finish) off: pixlearn prints its own count."""
    logger = logging.getLogger("ray.data")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


@contextlib.contextmanager
def ray_cluster(address: str | None = None, workers: int = 2) -> Iterator[Any]:
    """Join the Ray cluster at ``address`` or start a local one with ``workers`` CPUs; yields the ``ray`` module.

    A cluster this process is already connected to is used as it is and left running; only what this
    context started (or joined) is shut down at its end.

    Raises
    ------
    RayNotInstalledError
        Ray is not installed (``pip install 'pixlearn[ray]'``).
    ConfigError
        ``workers`` outside 1..64 or a malformed ``address``.
    RayConnectionError
        Ray could not start or join the cluster; the message names the address and the fix.
    """
    check_workers(workers)
    address = check_address(address)
    ray = import_ray()
    if ray.is_initialized():
        _quiet_data_context(ray)
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
                              "configure_logging": True}
    if address is None:
        kwargs["num_cpus"] = workers
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError... for one cause
        where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
        fix = ("check that the head node runs ('ray start --head' there), that the host and port are right and "
               "reachable from here (Ray Client needs pip install 'ray[client]'), or leave --address out to start a "
               "local cluster") if address else "check the free memory and /tmp space, or pass --address of a running cluster"
        raise RayConnectionError(f"could not start or join {where}: {type(exc).__name__}: {exc}; {fix}") from exc
    try:
        _quiet_data_context(ray)
        yield ray
    finally:
        ray.shutdown()
