"""The service's settings: one typed model, filled from CLI flags, environment variables and defaults.

Environment variables (read when a field is not given explicitly):

- ``PIXLEARN_STORAGE``: the data folder (default ``./pixlearn-data``).
- ``PIXLEARN_DB``: a SQLAlchemy URL (default ``sqlite:///<storage>/pixlearn.db``), e.g.
  ``postgresql+psycopg://user:password@host/pixlearn``.
- ``PIXLEARN_API_KEYS`` (comma-separated) or ``PIXLEARN_API_KEY``: the accepted API keys; none means no auth.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ServeSettings", "env_api_keys"]


def env_api_keys() -> list[str]:
    """API keys from ``PIXLEARN_API_KEYS`` (comma-separated) and ``PIXLEARN_API_KEY``."""
    raw = os.environ.get("PIXLEARN_API_KEYS", "")
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    single = os.environ.get("PIXLEARN_API_KEY", "").strip()
    if single and single not in keys:
        keys.append(single)
    return keys


def _default_workers() -> int:
    from pixlearn.serve.workers import default_workers

    return default_workers()


def _env_storage() -> Path:
    return Path(os.environ.get("PIXLEARN_STORAGE") or "./pixlearn-data")


class ServeSettings(BaseModel):
    """Everything ``pixlearn serve`` can be told; unknown fields are rejected.

    Examples
    --------
    >>> s = ServeSettings(storage="/tmp/px", api_keys=["k1"])
    >>> s.database_url, s.max_body_bytes, s.auth_enabled
    ('sqlite:////tmp/px/pixlearn.db', 52428800, True)
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    storage: Path = Field(default_factory=_env_storage)
    db: str | None = Field(default_factory=lambda: os.environ.get("PIXLEARN_DB") or None)
    api_keys: list[str] = Field(default_factory=env_api_keys)
    max_body_mb: float = Field(50, gt=0)
    timeout_s: float = Field(60, gt=0)
    #: Seconds a request body may send nothing before it is answered 408 (a stalled upload).
    body_timeout_s: float = Field(10, gt=0)
    #: Worker processes for CPU work (ops, recipes, colours, quality, decoding); 0 runs it in threads, which
    #: cannot be stopped at the deadline. Default: the CPU cores this process may use.
    workers: int = Field(default_factory=_default_workers, ge=0, le=1024)
    #: Address space each CPU worker may use, in MB (past it a request is answered 413). None: three quarters of
    #: the machine's memory shared among the workers, at least 2048; 0: no cap.
    worker_memory_mb: float | None = Field(None, ge=0)
    #: Requests handled at once (reading their body, waiting for or running on a worker). Default: four per
    #: worker, at least 16: the workers bound the CPU, this bounds the memory of bodies being read.
    max_concurrency: int | None = Field(None, ge=1)
    #: Requests beyond ``max_concurrency`` that wait for a slot (first come, first served) before 429.
    max_queue: int = Field(64, ge=0)
    #: Seconds a queued request waits for a slot before 429.
    queue_timeout_s: float = Field(10, ge=0)
    max_archive_images: int = Field(256, ge=1)
    allowed_roots: list[Path] = Field(default_factory=list)
    models: list[Path] = Field(default_factory=list)
    #: Run folders registered as general labellers: /v1/analyze shows their labels without models=NAME.
    general_models: list[Path] = Field(default_factory=list)
    training_workers: int = Field(1, ge=0)
    max_archive_mb: float = Field(512, gt=0)
    max_archive_ratio: float = Field(200, gt=1)
    min_images_per_class: int = Field(2, ge=1)
    #: Largest decoded image accepted (pixels, checked from the header before decoding).
    max_pixels: int = Field(50_000_000, ge=1)
    #: The built-in COCO detector's file (YOLOX-Nano ONNX) of /v1/detect and features=objects. None: the first
    #: ``yolox_nano_coco80.onnx`` in the local weights folders (PIXLEARN_WEIGHTS, <cache>/weights).
    yolox_weights: Path | None = None
    #: Train a small digits classifier in the background at start-up when it is not registered yet.
    demo: bool = False
    #: Origins (``scheme://host[:port]``) whose web pages may call the API (CORS); other sites' pages are refused.
    cors_origins: list[str] = Field(default_factory=list)
    #: Host names the server answers to (others get 421: DNS-rebinding protection); empty: any.
    #: ``pixlearn serve`` on a loopback address defaults to localhost, 127.0.0.1 and ::1.
    allowed_hosts: list[str] = Field(default_factory=list)

    @field_validator("api_keys")
    @classmethod
    def _strip_keys(cls, keys: list[str]) -> list[str]:
        return [k.strip() for k in keys if k and k.strip()]

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        from pixlearn.serve.security import normalize_origin

        return list(dict.fromkeys(normalize_origin(o) for o in origins))  # ConfigError is a ValueError

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, hosts: list[str]) -> list[str]:
        from pixlearn.serve.security import normalize_host

        return list(dict.fromkeys(normalize_host(h) for h in hosts))

    @property
    def database_url(self) -> str:
        """``db``, or a SQLite file in the storage folder."""
        return self.db or f"sqlite:///{self.storage}/pixlearn.db"

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def concurrency(self) -> int:
        """Requests handled at once: ``max_concurrency``, or by default four per worker, at least 16."""
        return self.max_concurrency or max(16, 4 * self.workers)

    @property
    def worker_memory(self) -> float | None:
        """MB each worker may use: ``worker_memory_mb``, or 3/4 of the physical memory over the workers (>= 2048)."""
        if self.worker_memory_mb is not None:
            return self.worker_memory_mb or None
        try:
            total_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (AttributeError, ValueError, OSError):  # not POSIX
            return None
        return max(2048.0, 0.75 * total_mb / max(self.workers, 1))

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    @property
    def models_dir(self) -> Path:
        """Where models trained by the service keep their run folders."""
        return self.storage / "models"
